"""The classifier ensemble per backend and batch size, on the CPU: torch eager (the members' checkpoints),
ONNX Runtime with one session per member, and ONNX Runtime with the one fused graph.

All three go through the pipeline's `Ensemble` (sigmoid, mean, per-member probabilities), so they do the
same work. Ratios between them (report.py) are what the targets judge: absolute times on shared machines
drift too much.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchsuite import BenchSettings

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.backends.torch import TorchRunner
from edgeecg.pipeline import Ensemble

SETTINGS = BenchSettings.from_env()  # batch sizes are needed at collection time
CPU = ["CPUExecutionProvider"]
BACKENDS = ["torch-eager", "onnxruntime-members", "onnxruntime-fused"]


def _ensemble(kind: str, models, threads: int) -> Ensemble:
    if kind == "torch-eager":
        return Ensemble(
            [TorchRunner(c, threads=threads, name=f"member:{i}") for i, c in enumerate(models.checkpoints)]
        )
    if kind == "onnxruntime-members":
        runners = [
            OnnxRuntimeRunner(f, threads=threads, providers=CPU, name=f"member:{i}")
            for i, f in enumerate(models.member_files())
        ]
        return Ensemble(runners)
    fused = models.manifest["classifier"]["variants"]["fp32"]["fused"]
    runner = OnnxRuntimeRunner(models.fused_file(), threads=threads, providers=CPU, name="fused")
    return Ensemble([runner], fused_outputs=dict(fused["outputs"]))


@pytest.fixture(scope="module", params=BACKENDS)
def ensemble(request, models, settings):
    ens = _ensemble(request.param, models, settings.threads)
    ens.activate()
    yield request.param, ens
    ens.deactivate()


def _batch(settings: BenchSettings, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.standard_normal((n, 3, settings.height, settings.width)).astype(np.float32)  # [N, 3, H, W]


@pytest.mark.parametrize("batch", SETTINGS.batch_sizes)
def test_ensemble(bench, benchmark, ensemble, settings, batch):
    kind, ens = ensemble
    benchmark.group = f"ensemble of {settings.folds} (CPU, batch {batch})"
    x = _batch(settings, batch)
    mean, members = bench(
        lambda: ens(x),
        case=f"ensemble/{kind}/b{batch}",
        batch=batch,
        backend=kind.split("-")[0],
        members=settings.folds,
    )
    assert mean.shape == (batch, 5) and members.shape == (batch, settings.folds, 5)
