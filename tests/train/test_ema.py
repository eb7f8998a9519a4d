"""A moving average of the weights (`ema_decay`): the update, what is validated and saved, resume."""

from __future__ import annotations

import pytest

from edgeecg.errors import UsageError


def test_update_and_warm_up():
    import torch

    from edgeecg.train.loop import _ema_update

    model, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(3.0)
        ema.weight.fill_(1.0)
        model.running_mean.fill_(5.0)
    _ema_update(ema, model, decay=0.5, updates=1000)  # past the warm-up: e + (p - e) * 0.5
    assert torch.allclose(ema.weight, torch.full((3,), 2.0))
    assert torch.equal(ema.running_mean, model.running_mean)  # statistics are copied, not averaged
    _ema_update(ema, model, decay=0.999, updates=0)  # first update: decay (1 + 0) / (10 + 0) = 0.1
    assert torch.allclose(ema.weight, torch.full((3,), 2.0 + 0.9 * 1.0))


def test_config_range(tiny_cfg):
    for bad in (-0.1, 1.0):
        with pytest.raises(UsageError, match="ema_decay must be in"):
            tiny_cfg(ema_decay=bad)


def test_stage1_saves_the_average_and_resumes(tiny_dataset, tmp_path, tiny_cfg, stage1_killed_and_resumed):
    import torch

    from edgeecg.export.checkpoints import read_tensors
    from edgeecg.train.loop import STATE_FILE
    from edgeecg.train.model import read_state_dict
    from edgeecg.train.stages import run_stage1

    over = {"sources": [{"path": str(tiny_dataset)}], "ema_decay": 0.9, "epochs": 2, "val_fraction": 0.25}
    run_stage1(tiny_cfg(**over), tmp_path / "run")
    out = tmp_path / "run" / "stage1"
    last = read_state_dict(out / "last.safetensors")
    tensors, _ = read_tensors(out / STATE_FILE)
    key = "head.fc.weight"
    assert torch.equal(last[key], tensors[f"model.ema.{key}"])  # the checkpoint is the average ...
    assert not torch.equal(last[key], tensors[f"model.net.{key}"])  # ... not the weights as trained

    resumed = stage1_killed_and_resumed(tiny_cfg(**over), tmp_path / "cut")
    assert all(torch.equal(last[k], resumed[k]) for k in last)
