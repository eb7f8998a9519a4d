"""`edgeecg synth`: generate synthetic paper-ECG images with labels and exact geometry."""

from __future__ import annotations

import argparse
import json

from edgeecg.errors import UsageError
from edgeecg.synth.dataset import SynthConfig, parse_aspect, parse_size, write_dataset
from edgeecg.synth.real_records import parse_folds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (must be new or empty)")
    p.add_argument("--n", type=int, help="number of images (with --per-record: records x K, not given)")
    p.add_argument("--seed", type=int, default=0, help="master seed (same seed: byte-identical output)")
    p.add_argument("--style", default="mix", help="clean, scan, photo or mix (default mix)")
    p.add_argument(
        "--records",
        help="directory of WFDB records to render instead of simulated ECGs (PTB-XL: its folder, with "
        "ptbxl_database.csv and scp_statements.csv; CinC headers: labels from their # Dx: line)",
    )
    p.add_argument(
        "--labels",
        metavar="CSV",
        help="the records' labels: PTB-XL's ptbxl_database.csv (scp_statements.csv beside it), or a CSV with "
        "columns record,MI,AF,HYP,CD,STTC (optional NORM, patient, fold)",
    )
    p.add_argument(
        "--folds", help="render only the records of these folds, e.g. 1-8 or 9 (PTB-XL's strat_fold)"
    )
    p.add_argument("--record-list", metavar="FILE", help="render only the record ids listed, one a line")
    p.add_argument(
        "--per-record",
        type=int,
        metavar="K",
        help="render every selected record K times, in order (deterministic; --n is then records x K)",
    )
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
        "--varied-layout",
        type=float,
        default=0.0,
        help="fraction of ECG pages laid out as other printers and generators do: grid to the sheet's edges, "
        "rows packed anywhere on it, other baselines, lead names under the trace (default 0)",
    )
    p.add_argument(
        "--weathered",
        type=float,
        default=0.0,
        help="fraction of images on worn or unusual paper: other grid colours, colour casts, texture, strong "
        "wrinkles and creases, faded print (default 0)",
    )
    p.add_argument(
        "--worn",
        type=float,
        default=0.0,
        help="fraction of images handled hard, as other generators distort pages: folds into panels, "
        "crumpled texture, heavy noise, strong colour temperature (default 0)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (output does not depend on it)"
    )
    p.add_argument("--jpeg-quality", type=int, default=92, help="JPEG quality of stored images")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:

    if args.per_record is None and args.n is None:
        raise UsageError("--n is required (or --per-record K with --records)")
    if args.per_record is not None and args.n is not None:
        raise UsageError("--per-record sets the number of images (records x K): leave out --n")
    cfg = SynthConfig(
        out=args.out,
        n=args.n if args.n is not None else 1,  # per-record: set from the records found
        seed=args.seed,
        style=args.style,
        size=parse_size(args.size) if args.size else None,
        negatives=args.negatives,
        records=args.records,
        workers=args.workers,
        jpeg_quality=args.jpeg_quality,
        aspect=parse_aspect(args.aspect) if args.aspect else None,
        bare=args.bare_pages,
        varied=args.varied_layout,
        weathered=args.weathered,
        worn=args.worn,
        labels=args.labels,
        folds=tuple(sorted(parse_folds(args.folds))) if args.folds else None,
        record_list=args.record_list,
        per_record=args.per_record,
    )
    summary = write_dataset(cfg, progress=not args.no_progress)
    if args.json:
        print(json.dumps(summary))
    else:
        pos = ", ".join(f"{k} {v}" for k, v in summary["positives"].items())
        print(
            f"wrote {summary['images']} images ({summary['ecg_images']} ECG, {summary['negatives']} no-ECG) to {args.out}"
            + (f" from {summary['records']} records" if summary["records"] else "")
        )
        print(f"positives: {pos}")
    return 0
