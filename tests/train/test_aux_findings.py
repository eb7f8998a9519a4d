"""Auxiliary outputs on the simulator's findings (`aux_findings`): vocabulary, targets, training, saved head."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgeecg import LABELS
from edgeecg.errors import UsageError
from edgeecg.train.data import FINDINGS, findings_matrix


def test_vocabulary_covers_what_the_simulator_writes():
    from edgeecg.synth.waveforms import simulate

    seen = set()
    for i in range(400):
        record = simulate(np.random.default_rng([7, i]))
        seen.update(record.meta.get("subtypes") or ())
    assert seen <= set(FINDINGS), seen - set(FINDINGS)
    assert len(seen) >= len(FINDINGS) - 3  # 400 records draw nearly every kind


def test_findings_matrix():
    m = findings_matrix(["", "RBBB;anterior MI acute", "long QT"])
    assert m.shape == (3, len(FINDINGS)) and m.dtype == np.float32
    assert m[0].sum() == 0
    assert m[1, FINDINGS.index("RBBB")] == 1 and m[1, FINDINGS.index("anterior MI acute")] == 1
    assert m[1].sum() == 2 and m[2, FINDINGS.index("long QT")] == 1
    with pytest.raises(UsageError, match="unknown finding 'WPW'"):
        findings_matrix(["WPW"])


def _synth_set(root):
    from edgeecg.synth.dataset import SynthConfig, write_dataset

    write_dataset(SynthConfig(out=str(root), n=24, seed=5, style="clean", size=(256, 192)), progress=False)
    return root


def test_stage1_with_aux_saves_the_five_label_model(tmp_path, tiny_cfg):
    import torch

    from edgeecg.train.config import DataConfig
    from edgeecg.train.data import ImageFolderSource
    from edgeecg.train.model import create_model, load_weights, read_state_dict
    from edgeecg.train.stages import datasets_for, load_trained, run_stage1

    data = _synth_set(tmp_path / "set")
    src = ImageFolderSource(DataConfig(path=str(data)))
    with open(data / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert np.array_equal(src.findings, findings_matrix([r["findings"] for r in rows]))
    assert src.findings.sum() > 0

    cfg = tiny_cfg(
        sources=[{"path": str(data)}], preprocess="warp_clahe", aux_findings=0.5, epochs=2, val_fraction=0.25
    )
    ds = datasets_for(cfg, [src])
    _, y = ds[0]
    assert y.shape == (len(LABELS) + len(FINDINGS),)
    assert np.array_equal(y[len(LABELS) :].numpy(), src.findings[0])
    assert datasets_for(cfg, [src], train_augment=False).findings is None  # validation: labels only

    res = run_stage1(cfg, tmp_path / "run")
    assert res.epochs_run == 2
    best = tmp_path / "run" / "stage1" / "best.safetensors"
    state = read_state_dict(best)
    assert state["head.fc.weight"].shape[0] == len(LABELS) and state["head.fc.bias"].shape == (len(LABELS),)
    model = load_trained(best)
    assert model(torch.zeros(1, 3, 64, 128)).shape == (1, len(LABELS))

    # Stage II with aux from that checkpoint: the labels' rows are kept, the auxiliary rows start fresh.
    grown = create_model("convnext_atto", num_classes=len(LABELS) + len(FINDINGS), **cfg.model_kwargs)
    left = load_weights(grown, state)
    assert left == []
    assert torch.equal(grown.state_dict()["head.fc.weight"][: len(LABELS)], state["head.fc.weight"])


def test_aux_needs_findings_in_every_source(tiny_dataset, tiny_cfg):
    from edgeecg.train.config import DataConfig
    from edgeecg.train.data import ImageFolderSource
    from edgeecg.train.stages import datasets_for

    cfg = tiny_cfg(aux_findings=1.0)
    src = ImageFolderSource(DataConfig(path=str(tiny_dataset)))  # a user CSV without findings
    assert src.findings is None
    with pytest.raises(UsageError, match="aux_findings needs the simulator"):
        datasets_for(cfg, [src])
    with pytest.raises(UsageError, match="aux_findings must be >= 0"):
        tiny_cfg(aux_findings=-1)


def test_synth_source_carries_findings():
    from edgeecg.train.config import DataConfig
    from edgeecg.train.data import SynthSource

    src = SynthSource(DataConfig(kind="synth", synth_n=40, synth_seed=3, synth_style="clean"))
    assert src.findings.shape == (40, len(FINDINGS)) and src.findings.sum() > 0
    # a finding goes with its label: AF with AF, any MI finding with MI
    assert np.array_equal(src.findings[:, FINDINGS.index("AF")], src.labels[:, LABELS.index("AF")])
    mi = [j for j, f in enumerate(FINDINGS) if " MI " in f]
    assert np.array_equal(src.findings[:, mi].max(axis=1), src.labels[:, LABELS.index("MI")])
