"""Lead maps (`lead_maps`): which lead lies where and what it shows, as a training-only dense target."""

from __future__ import annotations

import numpy as np
import pytest

from edgeecg import LABELS, LEADS
from edgeecg.errors import UsageError
from edgeecg.train.data import FINDINGS, findings_matrix
from edgeecg.train.leadmaps import (
    GLOBAL_FINDINGS,
    LOCAL_KINDS,
    STRIDE,
    lead_findings,
    lead_mask,
    map_channels,
    map_target,
)

K = len(LOCAL_KINDS) + len(GLOBAL_FINDINGS)


def test_every_finding_has_one_channel():
    assert len(map_channels()) == len(LEADS) + K
    # every finding lands in exactly one channel, local ones only in their territory's leads
    for j, name in enumerate(FINDINGS):
        row = np.zeros(len(FINDINGS), np.float32)
        row[j] = 1
        per_lead = lead_findings(row)
        assert (per_lead.sum(axis=0) > 0).sum() == 1, name
        shown = {LEADS[i] for i in np.flatnonzero(per_lead.sum(axis=1))}
        if name == "anterior MI acute":
            assert shown == {"V1", "V2", "V3", "V4"}
            assert per_lead[:, LOCAL_KINDS.index("MI acute")].sum() == 4
        elif name == "ST depression inferior":
            assert shown == {"II", "III", "aVF"}
        elif name in GLOBAL_FINDINGS:
            assert shown == set(LEADS), name


def _geometry(quad=((0, 0), (200, 0), (200, 100), (0, 100))):
    # a 3x4-like page in a 200x100 image: I top-left, V1 top-right half, the rhythm strip at the bottom
    return {
        "paper_quad": [list(p) for p in quad],
        "lead_boxes": {"I": [0, 0, 100, 50], "V1": [100, 0, 200, 50], "II_rhythm": [0, 50, 200, 100]},
    }


def test_lead_mask_follows_the_warp():
    mask = lead_mask(_geometry(), (32, 64))  # the quad is the whole image: boxes scale by 0.32
    assert mask.shape == (32, 64) and mask.dtype == np.uint8
    assert mask[5, 10] == LEADS.index("I") + 1 and mask[5, 50] == LEADS.index("V1") + 1
    assert mask[25, 30] == LEADS.index("II") + 1  # the rhythm strip is lead II
    # a quad of the left half only: lead I fills the top half of the output, V1 lies outside it
    half = lead_mask(_geometry(((0, 0), (100, 0), (100, 100), (0, 100))), (32, 64))
    assert half[5, 60] == LEADS.index("I") + 1
    assert not (half == LEADS.index("V1") + 1).any()
    assert lead_mask({"paper_quad": [[0, 0], [1, 0], [1, 1], [0, 1]]}, (32, 64)) is None


def test_map_target_shares_and_findings():
    mask = np.zeros((32, 64), np.uint8)
    mask[:, :24] = LEADS.index("V2") + 1  # cell column 1 (x 16..31) is half V2
    mask[:, 24:48] = LEADS.index("aVF") + 1
    per_lead = lead_findings(findings_matrix(["anterior MI old;RBBB"])[0])
    t = map_target(mask, per_lead)
    assert t.shape == (len(LEADS) + K, 32 // STRIDE, 64 // STRIDE)
    v2, avf = t[LEADS.index("V2")], t[LEADS.index("aVF")]
    assert np.allclose(v2[:, 0], 1) and np.allclose(v2[:, 1], 0.5) and np.allclose(v2[:, 2:], 0)
    assert np.allclose(avf[:, 1], 0.5) and np.allclose(avf[:, 2], 1) and np.allclose(avf[:, 3], 0)
    mi_old = t[len(LEADS) + LOCAL_KINDS.index("MI old")]
    assert np.allclose(mi_old[0], [1, 0.5, 0, 0])  # anterior: V2 yes, aVF no
    rbbb = t[len(LEADS) + len(LOCAL_KINDS) + GLOBAL_FINDINGS.index("RBBB")]
    assert np.allclose(rbbb[0], [1, 1, 1, 0])  # on every lead, not on the blank paper


def _synth_set(root, n=24):
    from edgeecg.synth.dataset import SynthConfig, write_dataset

    write_dataset(SynthConfig(out=str(root), n=n, seed=5, style="scan", size=(256, 192)), progress=False)
    return root


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    return _synth_set(tmp_path_factory.mktemp("leadmaps") / "set")


def test_dataset_items_carry_the_map_moved_with_the_image(synth_set, tiny_cfg):
    from edgeecg.train.config import DataConfig
    from edgeecg.train.data import ImageFolderSource
    from edgeecg.train.stages import datasets_for

    src = ImageFolderSource(DataConfig(path=str(synth_set)))
    cfg = tiny_cfg(preprocess="warp_clahe", lead_maps=1.0)
    ds = datasets_for(cfg, [src])
    x, y, m = ds[(3, 11)]
    assert x.shape == (3, 64, 128) and y.shape[0] == len(LABELS) + len(FINDINGS)
    assert m.shape == (len(LEADS) + K, 64 // STRIDE, 128 // STRIDE)
    # the 12 lead channels cover the page's trace area, at most once per cell
    leads = m[: len(LEADS)].numpy()
    assert leads.sum(axis=0).max() <= 1 + 1e-6 and leads.sum() > 0.3 * leads[0].size
    assert datasets_for(cfg, [src], train_augment=False).lead_maps is False  # validation: labels only

    # a strong rotation moves the boxes with the paper: the map differs from the unrotated one
    plain = datasets_for(tiny_cfg(preprocess="warp_clahe", lead_maps=1.0, augment={"rotate_p": 0.0}), [src])
    turned = datasets_for(
        tiny_cfg(preprocess="warp_clahe", lead_maps=1.0, augment={"rotate_p": 1.0, "rotate_limit": 30.0}),
        [src],
    )
    _, mask0 = plain._item(3, 11, with_map=True)
    img1, mask1 = turned._item(3, 11, with_map=True)
    assert mask1.shape == (64, 128) and (mask0 != mask1).mean() > 0.05
    # the rotated mask still marks the paper's inside: its leads sit where the rotated image is not blank
    assert set(np.unique(mask1)) <= set(range(len(LEADS) + 1))


def test_lead_maps_need_the_warp_and_findings(tiny_dataset, synth_set, tiny_cfg):
    from edgeecg.train.config import DataConfig
    from edgeecg.train.data import ImageFolderSource
    from edgeecg.train.stages import datasets_for

    src = ImageFolderSource(DataConfig(path=str(synth_set)))
    with pytest.raises(UsageError, match="lead_maps needs preprocess=warp_clahe"):
        datasets_for(tiny_cfg(preprocess="crop_clahe", lead_maps=1.0), [src])
    user = ImageFolderSource(DataConfig(path=str(tiny_dataset)))  # no findings column
    with pytest.raises(UsageError, match="lead_maps needs the simulator's findings"):
        datasets_for(tiny_cfg(preprocess="warp_clahe", lead_maps=1.0), [user])
    with pytest.raises(UsageError, match="lead_maps must be >= 0"):
        tiny_cfg(lead_maps=-0.5)


def test_stage1_with_lead_maps_saves_the_plain_model_and_resumes(
    synth_set, tmp_path, tiny_cfg, stage1_killed_and_resumed
):
    import torch

    from edgeecg.train.model import read_state_dict
    from edgeecg.train.stages import load_trained, run_stage1

    over = {
        "sources": [{"path": str(synth_set)}],
        "preprocess": "warp_clahe",
        "lead_maps": 1.0,
        "epochs": 2,
        "val_fraction": 0.25,
    }
    res = run_stage1(tiny_cfg(**over), tmp_path / "run")
    assert res.epochs_run == 2
    best = tmp_path / "run" / "stage1" / "best.safetensors"
    state = read_state_dict(best)
    assert not any("map_head" in k for k in state)  # the map head only trains
    assert state["head.fc.weight"].shape[0] == len(LABELS)
    model = load_trained(best)
    assert model(torch.zeros(1, 3, 64, 128)).shape == (1, len(LABELS))
    # the map's loss is part of the training loss: the same run without it logs another loss
    plain = run_stage1(tiny_cfg(**{**over, "lead_maps": 0.0}), tmp_path / "plain")
    assert plain.history[0]["train_loss"] != pytest.approx(res.history[0]["train_loss"], abs=1e-3)

    # killed after epoch 0 and resumed (the map head's weights and moments too): the same final weights
    a = read_state_dict(tmp_path / "run" / "stage1" / "last.safetensors")
    b = stage1_killed_and_resumed(tiny_cfg(**over), tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
