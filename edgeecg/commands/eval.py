"""`edgeecg eval DATASET --bundle DIR`: evaluate a model bundle on a labelled dataset.

DATASET is a dataset dir (DIR/labels.csv) or a CSV with an image column and the five label columns.
Images go through the same runtime pipeline as `edgeecg infer` (detector, crop or warp, CLAHE,
ensemble). The report gives per-class AUROC and macro AUROC from the ensemble's mean probability, and
sensitivity, specificity and F1 at the bundle's thresholds, both for the mean probability and for the
members' hard majority vote, plus the same for each member. Images that fail or are rejected (no ECG
found) are counted and left out of the metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS
from edgeecg.commands import add_model_arguments, open_pipeline
from edgeecg.errors import InputError, UsageError
from edgeecg.metrics import classification_report, ensemble_votes
from edgeecg.plots import plot_roc

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `edgeecg eval`."""
    parser.add_argument("dataset", metavar="DATASET", help="dataset dir (with labels.csv) or a labels CSV")
    add_model_arguments(parser)
    parser.add_argument("--image-column", default="image", help="CSV column with image paths (default image)")
    parser.add_argument(
        "--label-columns",
        metavar="MI=col,AF=col,...",
        help="CSV column of each label when not named MI, AF, HYP, CD, STTC",
    )
    parser.add_argument("--limit", type=int, default=0, metavar="N", help="evaluate only the first N images")
    parser.add_argument("--out", metavar="DIR", help="write report.json, predictions.csv and ROC PNGs here")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of a table")


def read_labels(
    dataset: str | Path, image_column: str = "image", label_columns: dict | None = None
) -> tuple[list[Path], np.ndarray]:
    """Image paths and 0/1 labels [n, 5] of a dataset dir or CSV (paths relative to the CSV's folder)."""
    path = Path(dataset)
    csv_path = path / "labels.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise UsageError(f"no labels CSV at {csv_path}")
    cols = {k: (label_columns or {}).get(k, k) for k in LABELS}
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (image_column, *cols.values()) if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise UsageError(f"{csv_path} lists no images")
    paths = [
        Path(r[image_column]) if Path(r[image_column]).is_absolute() else csv_path.parent / r[image_column]
        for r in rows
    ]
    try:
        y = np.array([[int(float(r[cols[k]])) for k in LABELS] for r in rows], dtype=np.int64)
    except ValueError as err:
        raise InputError(f"{csv_path}: label columns must hold 0/1 ({err})") from None
    return paths, y


def build_report(
    y: np.ndarray, mean: np.ndarray, members: np.ndarray | None, thresholds: np.ndarray
) -> dict[str, Any]:
    """The evaluation report from labels [n, 5], mean probabilities [n, 5], member probabilities [M, n, 5].

    Returns:
        {"ensemble_mean": ..., "ensemble_votes": ..., "members": [...]}, each a
        `edgeecg.metrics.classification_report`. Votes need member probabilities (else omitted).
    """
    report: dict[str, Any] = {"ensemble_mean": classification_report(y, mean, thresholds, LABELS)}
    if members is not None and len(members):
        _, decision = ensemble_votes(members, thresholds)
        report["ensemble_votes"] = classification_report(y, mean, thresholds, LABELS, decisions=decision)
        report["members"] = [classification_report(y, m, thresholds, LABELS) for m in members]
    return report


def _fmt(v: float | None) -> str:
    return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the ensemble's per-class metrics."""
    mean = report["ensemble_mean"]
    votes = report.get("ensemble_votes", {}).get("per_class", {})
    lines = [
        f"{'label':<6} {'AUROC':>6} {'sens':>6} {'spec':>6} {'F1':>6} {'thr':>6} {'F1vote':>6} {'pos':>5}"
    ]
    for k in LABELS:
        c = mean["per_class"][k]
        fv = votes.get(k, {}).get("f1")
        lines.append(
            f"{k:<6} {_fmt(c['auroc']):>6} {_fmt(c['sensitivity']):>6} {_fmt(c['specificity']):>6} "
            f"{_fmt(c['f1']):>6} {_fmt(c['threshold']):>6} {_fmt(fv):>6} {c['positives']:>5}"
        )
    lines.append(f"macro AUROC {_fmt(mean['macro_auroc'])} over {mean['n']} images")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run `edgeecg eval`."""

    label_columns = None
    if args.label_columns:
        try:
            label_columns = dict(p.split("=", 1) for p in args.label_columns.split(","))
        except ValueError:
            raise UsageError("--label-columns wants MI=col,AF=col,...") from None
    paths, y = read_labels(args.dataset, args.image_column, label_columns)
    if args.limit:
        paths, y = paths[: args.limit], y[: args.limit]
    kept, mean, members, failed, rejected = [], [], [], 0, 0
    with open_pipeline(args) as pipe:
        thresholds = np.asarray(pipe.thresholds, dtype=np.float64)
        for i, r in enumerate(pipe.run_paths(paths)):
            if r.error is not None:
                failed += 1
                log.warning("%s: %s", r.image, r.error)
                continue
            if r.rejected or r.probabilities is None:
                rejected += 1
                continue
            kept.append(i)
            mean.append([r.probabilities[k] for k in LABELS])
            if r.member_probabilities:
                members.append([[m[k] for k in LABELS] for m in r.member_probabilities])
    if not kept:
        raise InputError("no image of the dataset could be classified")
    yk = y[kept]
    mean_arr = np.asarray(mean, dtype=np.float64)
    member_arr = (
        np.asarray(members, dtype=np.float64).transpose(1, 0, 2) if len(members) == len(kept) else None
    )  # [n, M, 5] -> [M, n, 5]
    report = build_report(yk, mean_arr, member_arr, thresholds)
    report.update(
        dataset=str(args.dataset),
        bundle=str(args.bundle or "default"),
        n_images=len(paths),
        n_failed=failed,
        n_rejected=rejected,
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        with open(out / "predictions.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", *LABELS, *(f"p_{k}" for k in LABELS)])
            for j, i in enumerate(kept):
                w.writerow([str(paths[i]), *yk[j], *(f"{v:.6f}" for v in mean_arr[j])])
        plot_roc(yk, mean_arr, out, prefix="roc", title="ensemble")
    print(json.dumps(report, indent=2) if args.json else format_table(report), file=sys.stdout)
    return 1 if failed else 0
