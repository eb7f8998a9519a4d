"""TensorRT plans. The `trt` tests skip here and run unchanged on a machine with tensorrt and a GPU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeecg.bundle import load_manifest, verify
from edgeecg.errors import BackendError
from edgeecg.export.bundle_writer import ExportConfig, add_engines, engine_support
from edgeecg.export.tensorrt_build import (
    TrtTarget,
    input_profile,
    profile_shapes,
    save_timing_cache,
    use_timing_cache,
)


def test_profile_and_key():
    assert profile_shapes([8, 1, 4]) == (1, 4, 8)
    assert profile_shapes([1]) == (1, 1, 1)
    assert profile_shapes([4, 8]) == (1, 8, 8), "the minimum is 1: a remainder of 1-3 images still runs"
    with pytest.raises(BackendError):
        profile_shapes([0, 2])
    target = TrtTarget("NVIDIA Tesla T4", "7.5", "10.3.0.26", 40)
    assert target.key == "nvidia-tesla-t4-sm75-40sms-trt10.3.0.26"
    agx, nx = TrtTarget("Orin", "8.7", "10.3.0.30", 16), TrtTarget("Orin", "8.7", "10.3.0.30", 8)
    assert agx.key != nx.key
    assert target.as_entry() == {"gpu": "NVIDIA Tesla T4", "compute_capability": "7.5", "sm_count": 40,
                                 "tensorrt": "10.3.0.26"}  # fmt: skip


class FakeCache:
    def __init__(self, data: bytes, fail: bool = False) -> None:
        self.data, self.fail = data, fail

    def serialize(self):
        if self.fail:
            raise RuntimeError("serialisation failed")
        return memoryview(self.data + b"+grown")


class FakeConfig:
    """The three IBuilderConfig calls the timing cache takes; refuses caches whose bytes are in `refuse`."""

    def __init__(self, refuse=(), give=True, fail=False) -> None:
        self.refuse, self.give, self.fail, self.cache, self.offered = set(refuse), give, fail, None, []

    def create_timing_cache(self, data: bytes) -> FakeCache:
        return FakeCache(bytes(data))

    def set_timing_cache(self, cache: FakeCache, ignore_mismatch: bool) -> bool:
        self.offered.append(cache.data)
        if cache.data in self.refuse:
            return False
        self.cache = cache
        return True

    def get_timing_cache(self):
        return FakeCache(self.cache.data, self.fail) if self.give and self.cache else None


def test_timing_cache_of_another_device_is_replaced_not_trusted(tmp_path, caplog):
    cache_file = tmp_path / "timing-x.cache"
    cache_file.write_bytes(b"other-gpu")
    config = FakeConfig(refuse={b"other-gpu"})
    use_timing_cache(config, cache_file)
    assert config.offered == [b"other-gpu", b""], "refused: retried with an empty cache"
    assert "does not fit this GPU" in caplog.text
    assert save_timing_cache(config, cache_file) and cache_file.read_bytes() == b"+grown"


def test_timing_cache_that_tensorrt_cannot_give_back_leaves_the_build_alone(tmp_path, caplog):
    cache_file = tmp_path / "t" / "timing-x.cache"
    config = FakeConfig()
    use_timing_cache(config, cache_file)
    assert config.offered == [b""]
    for broken in (FakeConfig(give=False), FakeConfig(fail=True)):
        use_timing_cache(broken, cache_file)
        assert not save_timing_cache(broken, cache_file)
    assert not cache_file.exists() and "timing cache not saved" in caplog.text
    assert not list(tmp_path.rglob("*.tmp*")), "no half-written cache left behind"


def test_input_profiles():
    assert input_profile([1, 3, 320, 320], (1, 4, 8)) is None  # static: no profile
    assert input_profile([-1, 3, 256, 512], (1, 4, 8)) == (
        [1, 3, 256, 512],
        [4, 3, 256, 512],
        [8, 3, 256, 512],
    )
    # the rect letterbox detector: any stride multiple up to the export size, batch 1
    assert input_profile([1, 3, -1, -1], (1, 1, 1), (320, 320)) == (
        [1, 3, 32, 32], [1, 3, 320, 320], [1, 3, 320, 320]
    )  # fmt: skip
    assert input_profile([-1, 3, -1, -1], (1, 1, 2), (320, 320), 64)[0] == [1, 3, 64, 64]
    with pytest.raises(BackendError, match="beyond the batch axis"):
        input_profile([1, 3, -1, -1], (1, 1, 1))  # no bound given


def test_without_tensorrt_engines_say_why(bundle, tmp_path):
    if engine_support() is None:
        pytest.skip("TensorRT and a GPU are present here")
    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    with pytest.raises(BackendError, match="cannot build TensorRT plans here"):
        add_engines(copy, ExportConfig(checkpoints=(), out=str(copy)))


@pytest.mark.trt
@pytest.mark.gpu
def test_build_plans_for_bundle_and_check_parity(bundle, tmp_path):
    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    cfg = ExportConfig(
        checkpoints=(),
        out=str(copy),
        batch_sizes=(1, 4),
        parity_samples=16,
        timing_cache=str(tmp_path / "cache"),
    )
    manifest = add_engines(copy, cfg, print)
    verify(copy, load_manifest(copy))
    by_target = {e["target"]: e for e in manifest["engines"]}
    assert set(by_target) == {"fused", "detector"}
    assert by_target["detector"]["parity"]["max_abs_output_diff"] is not None  # checked by the export
    fused = by_target["fused"]
    assert fused["precision"] == "fp16" and fused["batch_sizes"] == [1, 4]
    assert fused["parity"]["max_abs_prob_diff"] <= 1e-2
    assert fused["parity"]["samples"] == 16 and not fused["parity"]["auroc_gated"]  # too few to gate AUROC
    assert list((tmp_path / "cache").glob("timing-*.cache")), "timing cache not persisted"
    # A second build reuses the cache and replaces (not duplicates) this GPU's entries.
    again = add_engines(copy, cfg)
    assert len(again["engines"]) == 2
    # The whole pipeline on those plans: auto picks them, the batch is clamped, results match ONNX Runtime.
    from edgeecg.backends.tensorrt import TensorRTRunner
    from edgeecg.pipeline import Pipeline

    pages = [np.random.default_rng(i).integers(0, 255, (300, 400, 3), np.uint8) for i in range(6)]
    with Pipeline.from_bundle(copy, backend="auto", batch_size=8, use_verifier=False) as trt_p:
        assert trt_p.backend == "tensorrt" and trt_p.batch_size == 4
        assert all(isinstance(r, TensorRTRunner) for r in trt_p.ensemble.runners)
        got = trt_p.run(pages)
    with Pipeline.from_bundle(copy, backend="onnxruntime", use_verifier=False) as ort_p:
        want = ort_p.run(pages)
    for g, w in zip(got, want, strict=True):
        assert g.rejected == w.rejected
        if w.probabilities:
            assert g.probabilities == pytest.approx(w.probabilities, abs=2e-2)


@pytest.mark.trt
@pytest.mark.gpu
def test_strongly_typed_fp16_plan_runs_every_batch_up_to_its_profile(bundle, tmp_path):
    from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
    from edgeecg.backends.tensorrt import TensorRTRunner
    from edgeecg.export.tensorrt_build import build_plan, run_plan

    out, manifest = bundle
    member = manifest["classifier"]["variants"]["fp16"]["members"][0]["file"]
    info = build_plan(out / member, tmp_path / "m.plan", [4, 8], cache_dir=tmp_path)
    assert info["batch_sizes"] == [4, 8]
    x = np.random.default_rng(0).standard_normal((11, 3, 64, 128)).astype(np.float32)
    got = run_plan(tmp_path / "m.plan", x, 8)["logits"]  # 8 + 3: the remainder below the requested sizes
    with OnnxRuntimeRunner(out / member) as ort_r:
        want = ort_r.infer(x)["logits"]
    np.testing.assert_allclose(got, want, atol=5e-2)  # FP16 compute
    with TensorRTRunner(tmp_path / "m.plan") as runner:
        for batch in (1, 3, 8):
            assert runner.infer(x[:batch].astype(runner.inputs[0].dtype))["logits"].shape == (batch, 5)


@pytest.mark.trt
@pytest.mark.gpu
def test_detector_plan_with_dynamic_height_and_width(bundle, tmp_path):
    """The rect letterbox detector: one plan for every stride multiple up to its export size."""
    from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
    from edgeecg.backends.tensorrt import TensorRTRunner
    from edgeecg.export.tensorrt_build import build_plan

    out, manifest = bundle
    det = manifest["detector"]
    h, w = det["input_size"]
    build_plan(out / det["file"], tmp_path / "det.plan", [1], cache_dir=tmp_path, max_hw=(h, w), stride=32)
    rng = np.random.default_rng(0)
    with TensorRTRunner(tmp_path / "det.plan") as trt_r, OnnxRuntimeRunner(out / det["file"]) as ort_r:
        dynamic = trt_r.inputs[0].shape[2] is None
        for size in [(h, w), (h // 2, w), (h, w // 2)] if dynamic else [(h, w)]:
            x = rng.random((1, 3, *size), dtype=np.float32)
            got, want = trt_r.infer(x), ort_r.infer(x)
            for k in want:
                scale = max(1.0, float(np.abs(want[k]).max()))
                assert float(np.abs(got[k] - want[k]).max()) <= 1e-2 * scale
