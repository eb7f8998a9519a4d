"""`edgeecg infer IMAGE|DIR|GLOB ...`: classify photos or scans of paper ECGs."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from edgeecg import LABELS
from edgeecg.commands import add_model_arguments, open_pipeline
from edgeecg.errors import UsageError
from edgeecg.io import DEFAULT_MAX_PIXELS, iter_inputs

# Imported inside functions, so they load only when used: tqdm, and edgeecg.serve.cluster (the ray extra).

log = logging.getLogger(__name__)

EPILOG = """\
output:
  a table by default; with --json one JSON object per image (JSONL) on stdout, written as each image
  finishes: {"image", "probabilities", "positive", "votes", "member_probabilities", "box", "corners",
  "confidence", "ecg_score", "rejected", "reason", "timings_ms", "backend"} (with --save-debug also
  "debug_image", the montage's path: x.debug.png, or x-2.debug.png for a second x in one run), or
  {"image", "error"} for a file that could not be used. A progress bar goes to stderr when there is more
  than one input.

exit codes:
  0  every input was processed (an image with no ECG found is a result: "rejected")
  1  some inputs failed (unreadable, not an image, too large, ...); the others were still processed
  2  bad usage (unknown option, no inputs, bad bundle choice)

examples:
  edgeecg infer examples/ecg_photo.jpg
  edgeecg infer scans/ --json > results.jsonl
  edgeecg infer 'photos/**/*.jpg' --backend onnxruntime --threads 2 --save-debug debug/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `edgeecg infer`."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "inputs", nargs="+", metavar="IMAGE|DIR|GLOB", help="image files, directories or globs"
    )
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per image (JSONL) on stdout")
    parser.add_argument(
        "--save-debug", metavar="DIR", help="write a montage of the pre-processing stages per image"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="refuse images with more pixels than this, before decoding (default 50000000; 0 disables)",
    )
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="look for images in subdirectories too"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    ray = parser.add_argument_group("scale-out on Ray (the ray extra)")
    ray.add_argument(
        "--ray", action="store_true", help="run on Ray Data: --ray-workers pipelines in parallel"
    )
    ray.add_argument("--ray-workers", type=int, default=2, metavar="N", help="pipelines on Ray (default 2)")
    ray.add_argument("--ray-address", help="the Ray cluster (default: RAY_ADDRESS, else a local one)")


def _table_header() -> str:
    return f"{'image':<36} {'result':<18}" + "".join(f"{lab:>7}" for lab in LABELS) + f"{'ms':>9}"


def _table_row(d: dict) -> str:
    """One table row from a result's JSON object (`Result.to_dict()`, or a line from a Ray worker)."""
    name = d["image"] if len(d["image"]) <= 36 else "…" + d["image"][-35:]
    if "error" in d:
        return f"{name:<36} error: {d['error']}"
    if d["rejected"]:
        return f"{name:<36} rejected: {d['reason']}"
    result = ", ".join(d["positive"]) or "none"
    probs = "".join(
        f"{d['probabilities'][lab]:>6.2f}{'*' if lab in d['positive'] else ' '}" for lab in LABELS
    )
    return f"{name:<36} {result:<18}{probs}{d['timings_ms'].get('total', 0.0):>9.1f}"


def run(args: argparse.Namespace) -> int:
    """Classify every input; print results as they finish. Returns the exit code."""

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if args.threads < 0:
        raise UsageError(f"--threads must not be negative, got {args.threads}")
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    paths = iter_inputs(args.inputs, recursive=args.recursive)
    if not paths:
        raise UsageError("no input images found")

    if args.ray:
        return _run_on_ray(args, paths, max_pixels)
    out = sys.stdout
    failed = 0
    with open_pipeline(args) as pipe:
        bar = None
        if len(paths) > 1 and not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), unit="img", file=sys.stderr, dynamic_ncols=True, leave=False)

        def emit(line: str) -> None:
            if bar is not None:
                bar.write(line, file=out)
            else:
                out.write(line + "\n")
            out.flush()

        if not args.json:
            emit(_table_header())
        try:
            for r in pipe.run_paths(paths, max_pixels=max_pixels, debug_dir=args.save_debug):
                failed += r.error is not None
                emit(r.to_json() if args.json else _table_row(r.to_dict()))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    if failed:
        log.warning("%d of %d inputs failed", failed, len(paths))
    return 1 if failed else 0


def _run_on_ray(args: argparse.Namespace, paths: list, max_pixels: int) -> int:
    """The same output on Ray Data: JSON objects (or table rows) as the workers finish them."""
    from edgeecg.serve.cluster import infer_paths  # (the ray extra)

    if args.ray_workers < 1:
        raise UsageError(f"--ray-workers must be at least 1, got {args.ray_workers}")
    failed = 0
    if not args.json:
        print(_table_header(), flush=True)
    results = infer_paths(
        paths, args.bundle, args.backend, max(1, args.threads), args.batch, max_pixels, args.ray_workers,
        args.ray_address,
    )  # fmt: skip
    for d in results:
        failed += "error" in d
        print(json.dumps(d, separators=(",", ":")) if args.json else _table_row(d), flush=True)
    if failed:
        log.warning("%d of %d inputs failed", failed, len(paths))
    return 1 if failed else 0
