"""`edgeecg-selfcheck`: does the TensorRT path work on this device? One table for a bug report.

    edgeecg-selfcheck                       # the default bundle, plans built into a temporary copy
    edgeecg-selfcheck --bundle B --keep B2  # your bundle; keep the copy with its plans
    edgeecg-selfcheck --json                # the same as one JSON object

It builds the plans (`edgeecg-export --engines` on a copy: the user's bundle is never touched), checks their
parity against ONNX Runtime, and times the whole pipeline on an example photo with ONNX Runtime and with
TensorRT, with and without CUDA graphs. Exit 0 when every check passed, 1 when one failed, 2 when this machine
cannot build plans (the table says why).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import statistics
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg import __version__
from edgeecg._lazy import available
from edgeecg.backends.cuda import cuda_versions, gpu_status
from edgeecg.bundle import default_bundle_dir, load_manifest
from edgeecg.errors import EdgeECGError
from edgeecg.export.bundle_writer import ExportConfig, add_engines, engine_support
from edgeecg.export.tensorrt_build import detect_target
from edgeecg.pipeline import Pipeline
from edgeecg.synth.scenes import make_scene
from edgeecg.synth.waveforms import simulate

# Imported inside functions, so they load only when used: optional or heavy libraries (onnxruntime,
# tensorrt).

log = logging.getLogger(__name__)

EXAMPLE = "photo_mi.jpg"


def environment() -> dict[str, Any]:
    """What a TensorRT bug report needs: versions, the GPU and the plan key. Never raises."""
    import onnxruntime as ort  # (a runtime dependency; imported when asked)

    env: dict[str, Any] = {
        "edgeecg": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "onnxruntime": f"{ort.__version__} ({', '.join(ort.get_available_providers())})",
        "tensorrt": None,
        "cuda_python": _dist_version("cuda-python") or _dist_version("cuda-bindings"),
        **{f"cuda_{k}": v for k, v in cuda_versions().items()},
    }
    if available("tensorrt"):
        import tensorrt as trt

        env["tensorrt"] = str(trt.__version__)
    ok, why = gpu_status()
    env["gpu_usable"], env["gpu_problem"] = ok, why
    if ok and env["tensorrt"]:
        try:
            t = detect_target()
            env.update(gpu=t.gpu, compute_capability=t.compute_capability, sm_count=t.sm_count)
            env.update(board=t.board or None, plan_key=t.key)
        except EdgeECGError as err:
            env["gpu_problem"] = str(err)
    return env


def _dist_version(name: str) -> str | None:

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def time_pipeline(bundle: Path, image: Any, backend: str, runs: int, **kw: Any) -> dict[str, Any]:
    """p50 and p90 wall milliseconds of one photo through the whole pipeline (after warm-up calls)."""

    with Pipeline.from_bundle(bundle, backend=backend, batch_size=1, **kw) as pipe:
        for _ in range(3):
            first = pipe.run([image])[0]
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            pipe.run([image])
            times.append(1e3 * (time.perf_counter() - t0))
    times.sort()
    return {
        "backend": pipe.backend,
        "p50_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 2),
        "probabilities": first.probabilities,
        "rejected": first.rejected,
    }


def _max_prob_change(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    if not a.get("probabilities") or not b.get("probabilities"):
        return None
    return max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"])


def run_checks(bundle: Path, image: Any, runs: int, batch_sizes: tuple[int, ...], keep: Path | None) -> dict:
    """The whole self-check; the report's "status" is "ok", "failed" or "cannot-build"."""

    report: dict[str, Any] = {"environment": environment(), "bundle": str(bundle), "checks": {}}
    checks = report["checks"]
    checks["onnxruntime"] = time_pipeline(bundle, image, "onnxruntime", runs)
    reason = engine_support()
    if reason:
        report.update(status="cannot-build", reason=f"TensorRT plans cannot be built here: {reason}")
        return report
    with tempfile.TemporaryDirectory(prefix="edgeecg-selfcheck-") as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(bundle, copy)  # never touch the user's bundle
        cfg = ExportConfig(
            checkpoints=(),
            out=str(copy),
            batch_sizes=batch_sizes,
            timing_cache=str(Path(tmp) / "timing"),
            command="edgeecg-selfcheck",
        )
        try:
            manifest = add_engines(copy, cfg, lambda msg: log.info("%s", msg))
            report["plans"] = [
                {k: e.get(k) for k in ("target", "precision", "batch_sizes", "build_s", "parity")}
                for e in manifest["engines"]
            ]
            for graph in (False, True):
                name = "tensorrt+graphs" if graph else "tensorrt"
                checks[name] = time_pipeline(copy, image, "tensorrt", runs, cuda_graph=graph)
                checks[name]["max_prob_change_vs_onnxruntime"] = _max_prob_change(
                    checks[name], checks["onnxruntime"]
                )
        except EdgeECGError as err:
            report.update(status="failed", reason=str(err))
            return report
        if keep is not None:
            shutil.copytree(copy, keep, dirs_exist_ok=True)
            report["kept"] = str(keep)
    report["status"] = "ok"
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as aligned `name  value` lines, for pasting into a bug report."""
    rows: list[tuple[str, Any]] = list(report["environment"].items())
    rows.append(("bundle", report["bundle"]))
    for plan in report.get("plans", []):
        par = plan.get("parity") or {}
        diff = par.get("max_abs_prob_diff", par.get("max_abs_output_diff"))
        rows.append(
            (f"plan {plan['target']}", f"{plan['precision']}, batch {plan['batch_sizes']}, built in "
             f"{plan['build_s']} s, parity max abs diff {diff}")
        )  # fmt: skip
    for name, c in report["checks"].items():
        extra = c.get("max_prob_change_vs_onnxruntime")
        change = f", max probability change vs ONNX Runtime {extra:.1e}" if extra is not None else ""
        rows.append((f"pipeline {name}", f"p50 {c['p50_ms']} ms, p90 {c['p90_ms']} ms{change}"))
    rows.append(("status", report["status"] + (f": {report['reason']}" if report.get("reason") else "")))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {'-' if v is None else v}" for k, v in rows)


def _image(path: Path | None) -> Any:
    """The photo to time: `path`, the repository's example, or a synthetic 12 MP phone photo."""
    path = path or Path(__file__).resolve().parents[1] / "examples" / EXAMPLE
    if path.is_file() or path != Path(__file__).resolve().parents[1] / "examples" / EXAMPLE:
        image = cv2.imread(str(path))
        if image is None:
            raise EdgeECGError(f"cannot read {path} as an image")
        return image

    rng = np.random.default_rng(7)
    return make_scene(simulate(rng), "photo", rng, size=(4000, 3000)).image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="edgeecg-selfcheck",
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", type=Path, help="bundle to check (default: the bundled model)")
    p.add_argument(
        "--image",
        type=Path,
        help=f"photo to time (default: examples/{EXAMPLE} in a source checkout, else a 12 MP "
        "photo drawn by edgeecg synth)",
    )
    p.add_argument("--runs", type=int, default=20, help="timed runs per backend (default 20)")
    p.add_argument("--batch-sizes", default="1,4,8", help="classifier plan batch sizes (default 1,4,8)")
    p.add_argument("--keep", type=Path, metavar="DIR", help="copy the bundle with its new plans here")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    bundle = args.bundle or default_bundle_dir()
    try:
        sizes = tuple(int(x) for x in args.batch_sizes.split(","))
        load_manifest(bundle)
        image = _image(args.image)
        report = run_checks(bundle, image, max(1, args.runs), sizes, args.keep)
    except (EdgeECGError, ValueError) as err:
        print(f"edgeecg-selfcheck: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else format_table(report))
    return {"ok": 0, "failed": 1}.get(report["status"], 2)


if __name__ == "__main__":
    sys.exit(main())
