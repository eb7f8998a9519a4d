"""scripts/lead_map_report.py: a lead-maps run's map head scored per channel on a synthetic set."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("albumentations")


def test_report_on_a_tiny_run(tmp_path, load_script, capsys):
    from edgeecg import LEADS
    from edgeecg.synth.dataset import SynthConfig, write_dataset
    from edgeecg.train.config import config_from_dict
    from edgeecg.train.leadmaps import map_channels
    from edgeecg.train.stages import run_stage1

    for name, seed in (("train", 5), ("test", 6)):
        cfg = SynthConfig(out=str(tmp_path / name), n=16, seed=seed, style="scan", size=(256, 192))
        write_dataset(cfg, progress=False)
    cfg = config_from_dict(
        {
            "model": "convnext_atto",
            "model_kwargs": {"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32]},
            "input_height": 128,  # 8 x 16 cells: a 3x4 page's lead boxes fill whole cells
            "input_width": 256,
            "batch_size": 8,
            "epochs": 2,
            "threads": 1,
            "progress": False,
            "sources": [{"path": str(tmp_path / "train")}],
            "val_fraction": 0.25,
            "preprocess": "warp_clahe",
            "lead_maps": 1.0,
            "ema_decay": 0.9,
        }
    )
    run_stage1(cfg, tmp_path / "run")
    state = tmp_path / "run" / "stage1" / "last.state.safetensors"
    report = load_script("lead_map_report")
    out = tmp_path / "maps.json"
    assert report.main([str(state), str(tmp_path / "test"), "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert list(table) == map_channels()
    for name in map_channels()[: len(LEADS)]:  # every page shows all 12 leads
        assert table[name]["positives"] > 0 and not math.isnan(table[name]["auroc"])
    assert "lead V6" in capsys.readouterr().out


def test_clear_errors(tmp_path, load_script, capsys):
    report = load_script("lead_map_report")
    assert report.main([str(tmp_path / "none.safetensors"), str(tmp_path)]) == 2
    assert "no state file" in capsys.readouterr().err
