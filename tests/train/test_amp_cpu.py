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


def test_validation_under_bfloat16_autocast_ranks_as_float32_does(tiny_dataset, tiny_cfg):
    import torch

    from edgeecg.train.loop import predict
    from edgeecg.train.model import create_model
    from edgeecg.train.stages import datasets_for, open_source

    cfg = tiny_cfg(sources=[{"path": str(tiny_dataset)}], cache=False)
    ds = datasets_for(cfg, [open_source(cfg, cfg.sources[0], "unused")], train_augment=False)
    torch.manual_seed(0)
    net = create_model(cfg.model, **cfg.model_kwargs)
    fp32 = predict(net, ds, 8, "cpu")
    bf16 = predict(net, ds, 8, "cpu", amp_dtype=torch.bfloat16)
    assert fp32.shape == bf16.shape == (len(ds), 5)
    assert not np.array_equal(fp32, bf16)  # the autocast did run
    assert np.abs(fp32 - bf16).max() < 0.02  # ~3 significant digits: enough to rank pages for AUROC
    assert net.training  # predict restores the mode it found
