"""Which simulated findings a model catches and which it confuses: AUROC per subtype on a synthetic test set.

    python scripts/subtype_report.py PREDICTIONS.csv DATASET [--json OUT]

PREDICTIONS.csv is what `edgeecg eval DATASET --out DIR` writes (DIR/predictions.csv); DATASET is an
`edgeecg synth` directory made from the simulator (not from WFDB records). Its labels.csv names each
record's subtypes (territory and age of an MI, kind of conduction defect, ST/T findings) in the `findings`
column; for sets written before that column existed, each single-style set's record is simulated again
from the dataset's seed (item i draws from the generator seeded by (seed, i), so the same code gives the
same record; the labels are checked against labels.csv). For every class it prints the AUROC of each
subtype's positives against all negatives, and the mean probability the model gives negatives that carry
each other finding: the confounders. Then the AUROC of each page layout the renderer drew (3x4 with a lead II
strip, 6x2, 12x1; geometry.jsonl's `layout`, or for older sets read from its lead boxes). `--json` writes {"classes": ..., "layouts": ...}.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg import LABELS  # noqa: E402
from edgeecg.errors import UsageError  # noqa: E402
from edgeecg.metrics import roc_auc  # noqa: E402
from edgeecg.synth.dataset import item_rng  # noqa: E402
from edgeecg.synth.waveforms import simulate  # noqa: E402


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUROC of positives `pos` against negatives `neg` (scores); NaN when either is empty."""
    return roc_auc(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])


def subtypes_of(dataset: Path, names: list[str], labels: np.ndarray) -> list[list[str]]:
    rows = list(csv.DictReader((dataset / "labels.csv").open()))
    if rows and "findings" in rows[0]:
        by_name = {r["image"]: [f for f in r["findings"].split(";") if f] for r in rows}
        found = [by_name.get(n) or by_name.get(_relative(n, dataset)) for n in names]
        if any(f is None for f in found):
            raise UsageError(f"some predicted images are not in {dataset}/labels.csv")
        return found
    meta = json.loads((dataset / "synth.json").read_text())
    if meta.get("style") == "mix":
        raise UsageError("mixed-style sets draw the style first; give a single-style set")
    if meta.get("records"):
        raise UsageError(f"{dataset} was made from WFDB records: its subtypes cannot be simulated again")
    out = []
    for name, truth in zip(names, labels, strict=True):
        index = int(re.search(r"(\d+)\.\w+$", name).group(1))
        rng = item_rng(int(meta["seed"]), index)
        if rng.random() < float(meta.get("negatives", 0.0)):
            raise UsageError(f"{name} is a no-ECG negative; it has no record")
        record = simulate(rng)  # the dataset's first draws after the negative flag (single-style sets)
        if [record.labels[k] for k in LABELS] != list(truth):
            raise UsageError(f"{name}: the simulated labels differ from labels.csv (another code version?)")
        out.append(list(record.meta["subtypes"]))
    return out


def _relative(name: str, dataset: Path) -> str:
    """edgeecg eval names images by the path it was given; labels.csv names them inside the dataset."""
    try:
        return Path(name).resolve().relative_to(dataset.resolve()).as_posix()
    except ValueError:
        return name


def read_predictions(pred_csv: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(image names, labels [n, 5], probabilities [n, 5]) of edgeecg eval's predictions.csv."""
    rows = list(csv.DictReader(pred_csv.open()))
    if not rows or any(f"p_{k}" not in rows[0] for k in LABELS):
        raise UsageError(f"{pred_csv} has no p_<label> columns (is it edgeecg eval's predictions.csv?)")
    names = [r["image"] for r in rows]
    y = np.array([[int(r[k]) for k in LABELS] for r in rows])
    p = np.array([[float(r[f"p_{k}"]) for k in LABELS] for r in rows])
    return names, y, p


def report(pred_csv: Path, dataset: Path) -> dict:
    names, y, p = read_predictions(pred_csv)
    subs = subtypes_of(dataset, names, y)
    every = sorted({s for ss in subs for s in ss})
    out: dict = {}
    for j, label in enumerate(LABELS):
        neg = p[y[:, j] == 0, j]
        positives: dict[str, dict] = {}
        confounders: dict[str, dict] = {}
        for s in every:
            has = np.array([s in ss for ss in subs])
            pos_s = p[(y[:, j] == 1) & has, j]
            neg_s = p[(y[:, j] == 0) & has, j]
            if len(pos_s):
                positives[s] = {"n": int(len(pos_s)), "auroc": auroc(pos_s, neg)}
            if len(neg_s):
                confounders[s] = {"n": int(len(neg_s)), "mean_p": float(neg_s.mean())}
        plain = np.array([len(ss) == 0 for ss in subs])
        out[label] = {
            "auroc": auroc(p[y[:, j] == 1, j], neg),
            "mean_p_positive": float(p[y[:, j] == 1, j].mean()),
            "mean_p_normal_ecg": float(p[plain & (y[:, j] == 0), j].mean()) if plain.any() else None,
            "subtypes": positives,
            "negatives_with": confounders,
        }
    return out


def layout_of(boxes: dict) -> str:
    """The page layout from one geometry.jsonl record's lead boxes: 3x4 has the lead II strip; in 6x2 V1 sits
    beside I, in 12x1 below it (compared along the page, so a tilted photo reads the same)."""
    if "II_rhythm" in boxes:
        return "3x4"
    (ax, ay, bx, by), (cx, cy, dx, dy) = boxes["I"], boxes["V1"]
    across, down = (cx + dx - ax - bx) / 2, (cy + dy - ay - by) / 2
    return "6x2" if abs(across) > abs(down) else "12x1"


def layout_report(pred_csv: Path, dataset: Path) -> dict:
    """{layout: {n, auroc: {label: AUROC}, macro}} over the images of each page layout; {} without geometry."""
    geo_path = dataset / "geometry.jsonl"
    if not geo_path.is_file():
        return {}
    layout = {}
    for line in geo_path.read_text().splitlines():
        g = json.loads(line)
        if g.get("layout"):  # edgeecg synth writes it; older sets only have the boxes
            layout[g["image"]] = g["layout"]
        elif g.get("lead_boxes"):
            layout[g["image"]] = layout_of(g["lead_boxes"])
    names, y, p = read_predictions(pred_csv)
    out = {}
    for lay in ("3x4", "6x2", "12x1"):
        sel = np.array([layout.get(_relative(n, dataset)) == lay for n in names])
        if not sel.any():
            continue
        per = {k: auroc(p[sel & (y[:, j] == 1), j], p[sel & (y[:, j] == 0), j]) for j, k in enumerate(LABELS)}
        finite = [v for v in per.values() if np.isfinite(v)]
        out[lay] = {"n": int(sel.sum()), "auroc": per, "macro": float(np.mean(finite)) if finite else None}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", type=Path, help="predictions.csv from edgeecg eval --out")
    ap.add_argument("dataset", type=Path, help="the simulator-made edgeecg synth directory it was run on")
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args()
    try:
        rep = report(args.predictions, args.dataset)
        layouts = layout_report(args.predictions, args.dataset)
    except (UsageError, OSError, ValueError, KeyError) as err:
        print(f"subtype_report: error: {err}", file=sys.stderr)
        return 2
    for label, r in rep.items():
        print(f"{label}: AUROC {r['auroc']:.3f}; mean p: positives {r['mean_p_positive']:.2f}, "
              f"normal ECGs {r['mean_p_normal_ecg']:.2f}")  # fmt: skip
        ranked = sorted(r["subtypes"].items(), key=lambda kv: kv[1]["auroc"])
        print("  positives by subtype (AUROC against all negatives): "
              + "; ".join(f"{s} {v['auroc']:.3f} (n {v['n']})" for s, v in ranked))  # fmt: skip
        worst = sorted(r["negatives_with"].items(), key=lambda kv: -kv[1]["mean_p"])[:5]
        print("  negatives it scores highest, by their other findings (mean p): "
              + "; ".join(f"{s} {v['mean_p']:.2f} (n {v['n']})" for s, v in worst))  # fmt: skip
    for lay, r in layouts.items():
        macro = "n/a" if r["macro"] is None else f"{r['macro']:.3f}"
        print(f"layout {lay} (n {r['n']}): macro AUROC {macro}; "
              + ", ".join(f"{k} {v:.3f}" for k, v in r["auroc"].items()))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"classes": rep, "layouts": layouts}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
