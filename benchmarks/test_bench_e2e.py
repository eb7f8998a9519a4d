"""End to end on the synthetic 12 MP photo, and process start, for the benchmark bundle and (when installed)
the package's default bundle.

"default" is the package's bundle, or the one EDGEECG_BENCH_BUNDLE names.

- end to end from the file: decode, detect, crop or warp, CLAHE, normalise, the ensemble, thresholds
  (`Pipeline.run_paths`, what `edgeecg infer photo.jpg` does per image), batch 1, ONNX Runtime;
- end to end from a decoded frame (`Pipeline.run`, what the camera loop does);
- process start: a fresh interpreter imports edgeecg, checks the bundle (manifest and sha256 of every file
  it loads) and creates the sessions. Timed from outside (the wall time a user waits); the child reports its
  own breakdown and peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchsuite import default_bundle

from edgeecg.pipeline import Pipeline

BUNDLES = ["bench", "default"]

# A fresh process: start the pipeline (timed parts reported), optionally run it on photos, report VmHWM.
_CHILD = r"""
import json, sys, time
def hwm_mb():
    return next((int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")), 0) / 1024
t0 = time.perf_counter()
from edgeecg.pipeline import Pipeline
t1 = time.perf_counter()
pipe = Pipeline.from_bundle(sys.argv[1], backend="onnxruntime", threads=int(sys.argv[2]), batch_size=1)
t2 = time.perf_counter()
pipe.activate()
t3 = time.perf_counter()
report = {"import_s": t1 - t0, "bundle_check_s": t2 - t1, "sessions_s": t3 - t2, "vmhwm_mb": hwm_mb()}
if len(sys.argv) > 3:
    for _ in range(3):
        results = list(pipe.run_paths([sys.argv[3]]))
        assert results[0].ok, results[0].to_dict()
    report["vmhwm_after_run_mb"] = hwm_mb()
print(json.dumps(report))
pipe.close()
"""


def _fresh(bundle: Path, threads: int, photo: Path | None = None) -> dict:
    """Run `_CHILD` in a new interpreter; its report plus the wall time."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(bundle), str(threads), *([str(photo)] if photo else [])],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"fresh process failed: {proc.stderr.strip().splitlines()[-1:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": wall}


def _bundle(which: str, models) -> Path:
    if which == "bench":
        return models.bundle
    d = default_bundle()
    if d is None:
        pytest.skip(
            "no default bundle: edgeecg/assets/default/manifest.json is absent and EDGEECG_BENCH_BUNDLE unset"
        )
    return d


def _provider(pipe: Pipeline) -> str | None:
    """The ONNX Runtime execution provider the classifier runs on (CUDA where onnxruntime-gpu is installed)."""
    session = getattr(pipe.ensemble.runners[0], "session", None)
    return session.get_providers()[0] if session is not None else None


@pytest.fixture(scope="module", params=BUNDLES)
def pipeline(request, models, settings):
    bundle = _bundle(request.param, models)
    with Pipeline.from_bundle(bundle, backend="onnxruntime", threads=settings.threads, batch_size=1) as pipe:
        yield request.param, bundle, pipe


@pytest.mark.benchmark(group="pre-processing as each bundle configures it (photo, decode excluded)")
def test_preprocessing(bench, pipeline, photo_image):
    """The bundle's whole chain before the classifier: detector, crop or corners + refinement + warp, CLAHE,
    and the ECG check where the bundle has one (the default bundle: warp, classical corners, refinement)."""
    which, _, pipe = pipeline
    pre = pipe.preprocessor
    p = bench(lambda: pre(photo_image), case=f"preprocess/{which}", bundle=which, mode=pre.cfg.mode)
    assert p.rejected is None, p.rejected


@pytest.mark.benchmark(group="pre-processing as each bundle configures it (photo, decode excluded)")
def test_preprocessing_without_corner_model(bench, pipeline, photo_image):
    """The same chain with the bundle's corner model left out: what placing the corners costs, side by side."""
    which, _, pipe = pipeline
    pre = pipe.preprocessor
    if pre.corner_model is None:
        pytest.skip(f"the {which} bundle has no corner model")
    placer, pre.corner_model = pre.corner_model, None
    try:
        p = bench(lambda: pre(photo_image), case=f"preprocess/{which}-no-corner-model", bundle=which)
    finally:
        pre.corner_model = placer
    assert p.rejected is None, p.rejected


@pytest.mark.benchmark(group="end to end (photo, ONNX Runtime, batch 1)")
@pytest.mark.parametrize("source", ["file", "array"])
def test_end_to_end(bench, benchmark, pipeline, settings, photo, photo_image, source):
    which, bundle, pipe = pipeline

    def fn():
        return list(pipe.run_paths([photo.path])) if source == "file" else pipe.run([photo_image])

    results = bench(
        fn,
        case=f"e2e/{which}/{source}",
        bundle=which,
        fused=pipe.ensemble.fused_outputs is not None,
        backend=pipe.backend,
        provider=_provider(pipe),
        input=[
            int(pipe.manifest["classifier"]["input"]["height"]),
            int(pipe.manifest["classifier"]["input"]["width"]),
        ],
    )
    assert len(results) == 1 and results[0].ok, results[0].to_dict()
    if source == "file":
        # The pytest process holds every benchmark's models; a fresh process running only this pipeline on
        # the photo gives the honest peak memory of `edgeecg infer` on it.
        fresh = _fresh(bundle, settings.threads, photo.path)
        benchmark.extra_info["peak_rss_mb"] = round(fresh["vmhwm_after_run_mb"], 1)
        benchmark.extra_info["peak_rss_delta_mb"] = round(fresh["vmhwm_after_run_mb"] - fresh["vmhwm_mb"], 1)
        benchmark.extra_info["peak_rss_source"] = (
            "fresh process: VmHWM after 3 runs (+ over the loaded pipeline)"
        )


@pytest.mark.benchmark(group="process start (import, bundle check, sessions)")
@pytest.mark.parametrize("which", BUNDLES)
def test_process_start(bench, benchmark, models, settings, which):
    bundle = _bundle(which, models)
    reports: list[dict] = []

    def start():
        reports.append(_fresh(bundle, settings.threads))

    bench(start, case=f"startup/{which}", rounds=10, warmup=1, bundle=which)
    timed = reports[-len(benchmark.stats.stats.data) :]
    for key in ("import_s", "bundle_check_s", "sessions_s", "vmhwm_mb"):
        vals = sorted(r[key] for r in timed)
        benchmark.extra_info[f"child_median_{key}"] = round(vals[len(vals) // 2], 4)
    # the child's own peak is the honest peak memory of a fresh process
    benchmark.extra_info["peak_rss_mb"] = benchmark.extra_info["child_median_vmhwm_mb"]
    benchmark.extra_info["peak_rss_delta_mb"] = None
    assert timed
