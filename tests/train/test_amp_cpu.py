"""`amp: on` on a CPU trains in bfloat16 autocast (no loss scaler); `off` and `auto` stay in float32 there."""

from __future__ import annotations

import json

import numpy as np


def test_amp_on_trains_in_bfloat16_on_the_cpu(tmp_path, tiny_dataset, tiny_cfg):
    from edgeecg.train.model import read_state_dict
    from edgeecg.train.stages import run_stage1

    weights, history = {}, {}
    for amp in ("off", "auto", "on"):
        cfg = tiny_cfg(sources=[{"path": str(tiny_dataset)}], amp=amp, val_fraction=0.25)
        run_stage1(cfg, tmp_path / amp)
        weights[amp] = read_state_dict(tmp_path / amp / "stage1" / "last.safetensors")
        history[amp] = json.loads((tmp_path / amp / "stage1" / "history.json").read_text())
    keys = list(weights["off"])
    # auto on a CPU is float32: the same run bit for bit
    assert all(np.array_equal(weights["auto"][k].numpy(), weights["off"][k].numpy()) for k in keys)
    # on: bfloat16 rounding changes the weights, yet training stays finite and saves float32 weights
    assert any(not np.array_equal(weights["on"][k].numpy(), weights["off"][k].numpy()) for k in keys)
    assert all(weights["on"][k].dtype == weights["off"][k].dtype for k in keys)
    assert all(np.isfinite(row["train_loss"]) for row in history["on"])
