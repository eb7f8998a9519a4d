"""`edgeecg synth`: generate synthetic paper-ECG images with labels and exact geometry."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (must be new or empty)")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="master seed (same seed: byte-identical output)")
    p.add_argument("--style", default="mix", help="clean, scan, photo or mix (default mix)")
    p.add_argument("--records", help="directory of WFDB records to render instead of simulated ECGs")
    p.add_argument("--size", help="output size WxH, e.g. 1024x768 (default: each style's natural size)")
    p.add_argument(
        "--negatives", type=float, default=0.0, help="fraction of scenes with no ECG (detector negatives)"
    )
    p.add_argument(
        "--aspect",
        help="frame shapes W/H to draw from, e.g. 0.75-2.6, each at the area of --size (default: all --size)",
    )
    p.add_argument(
        "--bare-pages",
        type=float,
        default=0.0,
        help="fraction of ECG pages printed without header and calibration pulse (default 0)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (output does not depend on it)"
    )
    p.add_argument("--jpeg-quality", type=int, default=92, help="JPEG quality of stored images")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from edgeecg.synth.dataset import SynthConfig, parse_aspect, parse_size, write_dataset  # noqa: PLC0415

    cfg = SynthConfig(
        out=args.out,
        n=args.n,
        seed=args.seed,
        style=args.style,
        size=parse_size(args.size) if args.size else None,
        negatives=args.negatives,
        records=args.records,
        workers=args.workers,
        jpeg_quality=args.jpeg_quality,
        aspect=parse_aspect(args.aspect) if args.aspect else None,
        bare=args.bare_pages,
    )
    summary = write_dataset(cfg, progress=not args.no_progress)
    if args.json:
        print(json.dumps(summary))
    else:
        pos = ", ".join(f"{k} {v}" for k, v in summary["positives"].items())
        print(
            f"wrote {summary['images']} images ({summary['ecg_images']} ECG, {summary['negatives']} no-ECG) to {args.out}"
        )
        print(f"positives: {pos}")
    return 0
