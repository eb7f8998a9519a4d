"""`grad_clip`: the gradients' global norm is clipped before each optimiser step, and the norms are logged."""

from __future__ import annotations

import json

import numpy as np


def test_grad_clip_clips_and_logs_the_norms(tmp_path, tiny_dataset, tiny_cfg):
    from edgeecg.train.model import read_state_dict
    from edgeecg.train.stages import run_stage1

    history, weights = {}, {}
    for name, clip in (("off", 0.0), ("on", 1e-3)):
        cfg = tiny_cfg(sources=[{"path": str(tiny_dataset)}], grad_clip=clip, val_fraction=0.25)
        run_stage1(cfg, tmp_path / name)
        history[name] = json.loads((tmp_path / name / "stage1" / "history.json").read_text())
        weights[name] = read_state_dict(tmp_path / name / "stage1" / "last.safetensors")
    assert "grad_norm_median" not in history["off"][0]
    row = history["on"][0]
    # the norms before clipping: far above the clip, so every step was clipped
    assert 1e-3 < row["grad_norm_median"] <= row["grad_norm_max"] and np.isfinite(row["grad_norm_max"])
    assert any(not np.array_equal(weights["on"][k].numpy(), weights["off"][k].numpy()) for k in weights["on"])
