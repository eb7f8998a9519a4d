"""Resume after a kill ends in exactly the state of an uninterrupted run (weights, optimiser, RNG)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

CONFIG = {
    "model": "convnext_atto",
    "model_kwargs": {"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32]},
    "input_height": 64,
    "input_width": 128,
    "batch_size": 8,
    "grad_accum": 2,
    "epochs": 3,
    "warmup_epochs": 0.5,
    "lr": 1e-3,
    "drop_rate": 0.3,
    "drop_path_rate": 0.1,
    "threads": 1,
    "progress": False,
}

DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys
    from edgeecg.train.config import config_from_dict
    from edgeecg.train.stages import run_stage1

    dataset, out, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = json.loads(sys.argv[4])
    data["sources"] = [{"path": dataset, "weight": 2.0}, {"path": dataset, "weight": 1.0}]

    def hook(epoch):
        if epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill, right after the epoch's checkpoint

    run_stage1(config_from_dict(data), out, on_epoch_end=hook)
    """
)


class _Killed(Exception):
    pass


def _cfg(dataset):
    from edgeecg.train.config import config_from_dict

    return config_from_dict(
        {**CONFIG, "sources": [{"path": str(dataset), "weight": 2.0}, {"path": str(dataset)}]}
    )


def _assert_same_run(a_dir, b_dir):
    from edgeecg.train.checkpoint import load_weights_file

    for name in ("last.safetensors", "best.safetensors", "last.state.safetensors"):
        a, meta_a = load_weights_file(a_dir / name, verify=False)
        b, meta_b = load_weights_file(b_dir / name, verify=False)
        assert a.keys() == b.keys(), name
        assert meta_a.get("epoch") == meta_b.get("epoch"), name
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs after resume"
    assert (a_dir / "history.json").read_text().count("epoch") == (b_dir / "history.json").read_text().count(
        "epoch"
    )


def test_resume_after_interrupt_matches_uninterrupted(tiny_dataset, tmp_path):
    from edgeecg.train.stages import run_stage1

    cfg = _cfg(tiny_dataset)
    full = run_stage1(cfg, tmp_path / "full")
    assert full.epochs_run == 3

    def stop(epoch):
        if epoch == 0:
            raise _Killed

    with pytest.raises(_Killed):
        run_stage1(cfg, tmp_path / "cut", on_epoch_end=stop)
    torch.rand(100)  # disturb the global RNG as a fresh process would differ; resume must restore it
    resumed = run_stage1(cfg, tmp_path / "cut")
    assert resumed.epochs_run == 3 and resumed.best_epoch == full.best_epoch
    _assert_same_run(tmp_path / "full" / "stage1", tmp_path / "cut" / "stage1")


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tiny_dataset, tmp_path):
    import json

    from edgeecg.train.stages import run_stage1

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # Same config as _cfg, given to the child as JSON.
    killed = subprocess.run(
        [sys.executable, str(script), str(tiny_dataset), str(tmp_path / "killed"), "1", json.dumps(CONFIG)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "killed" / "stage1" / "done.json").exists()
    cfg = _cfg(tiny_dataset)
    run_stage1(cfg, tmp_path / "killed")  # resume in this process
    run_stage1(cfg, tmp_path / "full")
    _assert_same_run(tmp_path / "full" / "stage1", tmp_path / "killed" / "stage1")
