"""A tiny end-to-end run through the CLI: stage I, stage II with two folds, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from edgeecg.bundle import sha256_file
from edgeecg.train.cli import main


def _write_config(path, dataset, kwargs, **extra):
    cfg = {
        "model": "convnext_atto",
        "model_kwargs": kwargs,
        "input_height": 64,
        "input_width": 128,
        "batch_size": 8,
        "epochs": 1,
        "threads": 1,
        "progress": False,
        "folds": 2,
        "sources": [{"path": str(dataset), "weight": 1.0}],
        "target": {"path": str(dataset)},
        **extra,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("cache", [False, True])
def test_stage1_stage2_evaluate(tiny_dataset, tiny_kwargs, tmp_path, capsys, cache):
    cfg = _write_config(tmp_path / "cfg.yaml", tiny_dataset, tiny_kwargs, cache=cache)
    run = tmp_path / "run"
    assert main(["stage1", "--config", str(cfg), "--out", str(run)]) == 0
    s1 = run / "stage1"
    for name in (
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "last.state.safetensors",
        "config.yaml",
    ):
        assert (s1 / name).is_file(), name
    side = json.loads((s1 / "best.json").read_text())
    assert side["model"] == "convnext_atto" and side["input"]["channel_order"] == "RGB"
    assert side["labels"] == ["MI", "AF", "HYP", "CD", "STTC"]

    init = s1 / "best.safetensors"
    assert main(["stage2", "--config", str(cfg), "--init", str(init), "--out", str(run)]) == 0
    s2 = run / "stage2"
    with np.load(s2 / "oof.npz") as z:
        index, probs, labels, fold = z["index"], z["probs"], z["labels"], z["fold"]
    assert labels.shape == (32, 5)
    assert np.array_equal(np.sort(index), np.arange(32)), "OOF must cover every sample exactly once"
    assert probs.shape == (32, 5) and set(fold.tolist()) == {0, 1}
    assert ((probs >= 0) & (probs <= 1)).all()
    folds_csv = (s2 / "folds.csv").read_text().splitlines()
    assert len(folds_csv) == 33
    thr = json.loads((s2 / "thresholds.json").read_text())
    assert len(thr["thresholds"]) == 5 and thr["method"] == "youden_j"
    for f in (0, 1):
        assert (s2 / "ensemble" / f"fold{f}.safetensors").is_file()
        member = json.loads((s2 / "ensemble" / f"fold{f}.json").read_text())
        assert member["fold"] == f
        # the member names its stage I pages and the weights it started from, not just its photos
        assert [step["stage"] for step in member["lineage"]] == ["stage1", "stage2"]
        assert member["lineage"][1]["init"]["sha256"] == sha256_file(init)
        assert member["lineage"][1]["data"][0]["path"] == str(tiny_dataset)
    report = json.loads((s2 / "report.json").read_text())
    assert set(report["folds"]) == {"0", "1"} and report["pooled"]["n"] == 32
    assert list(s2.glob("roc_oof_*.png"))

    # One pre-processed file per source, shared by stage I and both folds.
    assert len(list((run / "cache").glob("*.u8"))) == (1 if cache else 0)
    assert main(["evaluate", "--config", str(cfg), "--out", str(run), "--test", str(tiny_dataset)]) == 0
    ev = json.loads((run / "eval" / "report.json").read_text())
    assert len(ev["members"]) == 2 and ev["ensemble_mean"]["n"] == 32
    assert "ensemble_votes" in ev and len(list((run / "eval").glob("roc_ensemble_*.png"))) >= 1


def test_members_load_in_the_exporter(tiny_kwargs, tiny_cfg, tmp_path):
    """The fold checkpoints satisfy edgeecg.export's reader (the consumer of this stage)."""
    ck = pytest.importorskip("edgeecg.export.checkpoints")
    torch = pytest.importorskip("torch")
    from edgeecg.train.checkpoint import save_weights
    from edgeecg.train.loop import _sidecar
    from edgeecg.train.model import create_model

    cfg = tiny_cfg()
    m = create_model("convnext_atto", **tiny_kwargs)
    save_weights(tmp_path / "fold0.safetensors", m.state_dict(), _sidecar(cfg, 0, {}, 0))
    member = ck.read_checkpoint(tmp_path / "fold0.safetensors")
    loaded = ck.load_member(member)
    x = torch.randn(1, 3, 64, 128)
    assert torch.equal(loaded(x), m.eval()(x))


def test_bad_config_key_is_usage_error(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("learning_rate: 1\n")
    assert main(["stage1", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "unknown key(s) learning_rate" in capsys.readouterr().err


@pytest.mark.slow
def test_stage1_under_torchrun_two_cpu_processes(tiny_dataset, tiny_kwargs, tmp_path):
    """DDP through torchrun (gloo on CPU): two ranks train, rank 0 writes the checkpoints."""
    import os
    import subprocess
    import sys

    cfg = _write_config(tmp_path / "cfg.yaml", tiny_dataset, tiny_kwargs)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "edgeecg.train.cli"]
    cmd += ["stage1", "--config", str(cfg), "--out", str(tmp_path / "run")]
    res = subprocess.run(
        cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("stage1: best val macro AUROC") == 1  # only rank 0 reports
    assert (tmp_path / "run" / "stage1" / "best.safetensors").is_file()


def test_stage2_folds_keep_a_patients_images_together(tiny_dataset, tiny_kwargs, tmp_path):
    import csv
    import shutil

    data = tmp_path / "grouped"
    shutil.copytree(tiny_dataset, data)
    rows = list(csv.DictReader((data / "labels.csv").read_text().splitlines()))
    for i, row in enumerate(rows):  # four images per patient, as four pages of one record each
        row["patient"] = f"p{i // 4}"
    with open(data / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    cfg = _write_config(tmp_path / "cfg.yaml", data, tiny_kwargs, cache=False)
    run = tmp_path / "run"
    assert main(["stage2", "--config", str(cfg), "--out", str(run)]) == 0
    fold_of = {
        r["image"]: r["fold"] for r in csv.DictReader((run / "stage2" / "folds.csv").read_text().splitlines())
    }
    by_patient: dict[str, set[str]] = {}
    for row in rows:
        by_patient.setdefault(row["patient"], set()).add(fold_of[row["image"]])
    assert len(by_patient) == 8 and all(len(f) == 1 for f in by_patient.values()), by_patient
    assert {f for fs in by_patient.values() for f in fs} == {"0", "1"}
