"""Benchmark settings and fixtures: fixed thread counts, passive OpenMP waits, cached models, one timing helper.

Every benchmark goes through the `bench` fixture: untimed warm-up calls, then as many timed rounds as fit
the time budget (between the minimum and maximum), one call per round, so that the raw round times in the
JSON are single calls and p50/p95/p99 can be read from them. Peak memory (VmHWM, see
`benchsuite.PeakRss`) is recorded for the timed rounds. Settings come from EDGEECG_BENCH_* variables.
"""

from __future__ import annotations

import os
import time

# The environment (OMP_WAIT_POLICY etc.) is set by the root conftest.py before anything heavy loads.
import pytest
from benchsuite import (
    BenchModels,
    BenchSettings,
    PeakRss,
    Photo,
    build_models,
    make_photo,
    plan_rounds,
    set_threads,
)


@pytest.fixture(scope="session")
def settings() -> BenchSettings:
    """The suite's settings (EDGEECG_BENCH_* environment variables)."""
    return BenchSettings.from_env()


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads(settings: BenchSettings):
    set_threads(settings.threads)
    yield


@pytest.fixture(scope="session")
def models(settings: BenchSettings) -> BenchModels:
    """The random-init benchmark bundle (built once, cached in build/bench-models/)."""
    return build_models(settings)


@pytest.fixture(scope="session")
def photo(settings: BenchSettings) -> Photo:
    """The synthetic 12 MP phone photo (cached)."""
    return make_photo(settings)


@pytest.fixture(scope="session")
def photo_image(photo: Photo):
    """The photo, decoded (BGR)."""
    return photo.read()


class Bench:
    """Times one function with the settings' warm-up and round budget; fills extra_info."""

    def __init__(self, benchmark, settings: BenchSettings) -> None:
        self.benchmark = benchmark
        self.settings = settings

    def rounds_for(self, fn) -> int:
        if self.settings.min_rounds >= self.settings.max_rounds:
            return self.settings.max_rounds
        t0 = time.perf_counter()
        fn()
        return plan_rounds(self.settings, time.perf_counter() - t0)

    def __call__(
        self, fn, *, case: str, batch: int = 1, warmup: int | None = None, rounds: int | None = None, **info
    ):
        """Time `fn` (no arguments).

        Args:
            fn: the call to time; on a GPU it must synchronise before it returns.
            case: stable id of the measurement (the report finds ratios by it), e.g. "ensemble/fused/b1".
            batch: images per call (throughput = batch / time).
            warmup: untimed calls first (default: the settings').
            rounds: timed rounds (default: from the budget); never more than the settings' maximum.
            **info: more extra_info fields (backend, precision, flops, gpu, ...).

        Returns:
            What the last call of `fn` returned.
        """
        for _ in range(self.settings.warmup if warmup is None else warmup):
            fn()
        rounds = self.rounds_for(fn) if rounds is None else max(1, min(rounds, self.settings.max_rounds))
        with PeakRss() as mem:
            out = self.benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
        self.benchmark.extra_info.update(case=case, batch=batch, **mem.info(), **info)
        return out


@pytest.fixture
def bench(benchmark, settings: BenchSettings) -> Bench:
    """The timing helper (see `Bench.__call__`)."""
    return Bench(benchmark, settings)


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md  # noqa: PLC0415
    import platform  # noqa: PLC0415

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in (
        "numpy",
        "opencv-python-headless",
        "onnxruntime",
        "onnxruntime-gpu",
        "torch",
        "timm",
        "ultralytics",
    ):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt_cu12"):
        try:
            out["tensorrt"] = md.version(dist)
            break
        except md.PackageNotFoundError:
            continue
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform  # noqa: PLC0415

    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    import sys  # noqa: PLC0415

    torch = sys.modules.get("torch")
    try:
        return torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001  (a broken driver only loses the name)
        return None


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record what report.py prints: settings, versions, CPU and GPU, the exact command."""
    import shlex  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from datetime import datetime, timezone  # noqa: PLC0415

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    output_json["edgeecg"] = {
        "settings": BenchSettings.from_env().describe(),
        "versions": _versions(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "gpu": _gpu(),
        "command": os.environ.get("EDGEECG_BENCH_COMMAND")
        or shlex.join([sys.executable, "-m", "pytest", *sys.argv[1:]]),
        "env": {
            k: v
            for k, v in os.environ.items()
            if (k.startswith("EDGEECG_BENCH_") and k != "EDGEECG_BENCH_COMMAND") or k.startswith("OMP_")
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
