"""Checkpoints are safetensors + JSON, never pickle, and the resume state round-trips exactly."""

from __future__ import annotations

import pickle

import pytest

from edgeecg.errors import BundleError
from edgeecg.train.checkpoint import load_state, load_weights_file, save_state, save_weights
from edgeecg.train.model import create_model

torch = pytest.importorskip("torch")


TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32]}


def _model():
    return create_model("convnext_atto", **TINY)


def test_weights_round_trip_with_sidecar(tmp_path):
    m = _model()
    meta = save_weights(tmp_path / "w.safetensors", m.state_dict(), {"model": "convnext_atto", "epoch": 3})
    state, side = load_weights_file(tmp_path / "w.safetensors")
    assert (
        side["epoch"] == 3
        and side["labels"] == ["MI", "AF", "HYP", "CD", "STTC"]
        and side["sha256"] == meta["sha256"]
    )
    for k, v in m.state_dict().items():
        assert torch.equal(state[k], v), k
    assert (tmp_path / "w.safetensors").read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle


def test_pickle_put_in_place_is_refused(tmp_path):
    m = _model()
    path = tmp_path / "best.safetensors"
    with open(path, "wb") as f:
        pickle.dump({k: v for k, v in m.state_dict().items()}, f)
    with pytest.raises(BundleError, match="not a safetensors file"):
        load_weights_file(path)
    torch.save(m.state_dict(), tmp_path / "state.safetensors")  # torch.save is a pickle too
    with pytest.raises(BundleError):
        load_state(tmp_path / "state.safetensors", m, torch.optim.AdamW(m.parameters()))


def test_sidecar_that_does_not_match_its_weights_is_refused(tmp_path):
    m = _model()
    save_weights(tmp_path / "w.safetensors", m.state_dict(), {"model": "convnext_atto"})
    side = (tmp_path / "w.json").read_text()
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    save_weights(tmp_path / "w.safetensors", m.state_dict(), {"model": "convnext_atto"})
    (tmp_path / "w.json").write_text(side)  # as if killed between the two replaces
    with pytest.raises(BundleError, match="sha256"):
        load_weights_file(tmp_path / "w.safetensors")


def test_resume_state_restores_optimizer_scheduler_and_rng(tmp_path):
    torch.manual_seed(0)
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    x = torch.randn(2, 3, 32, 64)
    for _ in range(2):
        m(x).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    save_state(tmp_path / "s.safetensors", m, opt, {"epoch": 1, "best_score": 0.5}, sched)
    expect_rand = torch.rand(3)

    m2 = _model()
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 1.0 / (1 + s))
    scalars = load_state(tmp_path / "s.safetensors", m2, opt2, sched2)
    assert scalars == {"epoch": 1, "best_score": 0.5}
    assert torch.equal(torch.rand(3), expect_rand)  # torch RNG restored
    assert sched2.last_epoch == sched.last_epoch and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    # One more identical step on both gives identical weights: the optimiser moments came back exactly.
    for model, o in ((m, opt), (m2, opt2)):
        model(x).sum().backward()
        o.step()
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_create_model_skips_a_mismatched_head(tmp_path, caplog):
    src = create_model("convnext_atto", num_classes=10, **TINY)
    save_weights(tmp_path / "in.safetensors", src.state_dict(), {"model": "convnext_atto"})
    m = create_model("convnext_atto", checkpoint=tmp_path / "in.safetensors", **TINY)
    assert m.head.fc.out_features == 5
    assert torch.equal(m.stem[0].weight, src.stem[0].weight)
    assert "head not loaded" in caplog.text


def test_a_4x4_stem_checkpoint_spreads_over_an_8x8_stem(tmp_path):
    """The wide stem on a 2x image computes exactly what the saved stem computed on it 2x2-averaged."""
    torch.manual_seed(0)
    small = create_model("convnext_atto", **TINY).eval()
    save_weights(tmp_path / "s.safetensors", small.state_dict(), {"model": "convnext_atto"})
    wide = create_model("convnext_atto", patch_size=8, checkpoint=tmp_path / "s.safetensors", **TINY).eval()
    assert tuple(wide.stem[0].weight.shape[2:]) == (8, 8)
    x = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        want = small.stem(torch.nn.functional.avg_pool2d(x, 2))
        got = wide.stem(x)
        assert wide(x).shape == (2, 5)
    assert torch.allclose(got, want, atol=1e-5)
    for k, v in small.state_dict().items():  # everything after the stem's kernel is the saved weights
        if k != "stem.0.weight":
            assert torch.equal(wide.state_dict()[k], v), k
    # 4x4 into 6x6 is no whole-number widening: an error naming the stem, not a silent skip
    with pytest.raises(BundleError, match="stem"):
        create_model("convnext_atto", patch_size=6, checkpoint=tmp_path / "s.safetensors", **TINY)
