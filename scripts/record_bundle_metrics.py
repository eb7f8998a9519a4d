"""Write an evaluation (`edgeecg eval --json` output) and the recipe into a bundle's manifest.

    python scripts/record_bundle_metrics.py BUNDLE REPORT.json --recipe "..." --test-data DIR \
        [--key validation] [--training-data TEXT] [--realdata EVAL_REALDATA.json]

`--key` names the figures: `validation` (the set every choice was made on: PTB-XL fold 9) or `held_out_test`.
`--realdata` adds `scripts/eval_realdata.py --json` output as `metrics.real_test_sets` (test only).

The manifest is not among the files its sha256 list covers, so the bundle stays verified.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg import LABELS  # noqa: E402
from edgeecg.bundle import load_manifest, verify, write_manifest  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("report", help="JSON written by `edgeecg eval DATASET --bundle BUNDLE --json`")
    p.add_argument("--recipe", required=True, help="the command sequence that made the bundle")
    p.add_argument("--test-data", required=True, help="the dataset the report is about")
    p.add_argument("--key", default="validation", choices=("validation", "held_out_test"))
    p.add_argument(
        "--training-data",
        default="real signals: PTB-XL strat_fold 1-8 (2,010 records, CC BY 4.0), drawn as paper ECGs by "
        "edgeecg synth; fold 9 (267 records) validates; stage I went on from the synthetic-only classifier "
        "(simulated ECGs; git revision 469cbc1, scripts/train_sim.sh)",
        help="what the members learned from, in words",
    )
    p.add_argument("--realdata", help="scripts/eval_realdata.py --json output (test-only figures)")
    args = p.parse_args(argv)
    report = json.loads(Path(args.report).read_text())
    mean = report["ensemble_mean"]
    votes = report.get("ensemble_votes", {})
    figures = {
        "dataset": args.test_data,
        "how": "edgeecg eval through the runtime: detector, corners, warp, CLAHE, ensemble (no ground-truth geometry)",
        "n": report["n_images"],
        "n_rejected": report["n_rejected"],
        "n_failed": report["n_failed"],
        "n_scored": mean["n"],
        "macro_auroc": mean["macro_auroc"],
        "auroc": {k: mean["per_class"][k]["auroc"] for k in LABELS},
        "sensitivity": {k: mean["per_class"][k]["sensitivity"] for k in LABELS},
        "specificity": {k: mean["per_class"][k]["specificity"] for k in LABELS},
        "f1": {k: mean["per_class"][k]["f1"] for k in LABELS},
        "f1_votes": {k: votes.get("per_class", {}).get(k, {}).get("f1") for k in LABELS},
    }
    manifest = load_manifest(args.bundle)
    metrics = manifest.setdefault("metrics", {})
    metrics[args.key] = figures
    if args.realdata:
        metrics["real_test_sets"] = json.loads(Path(args.realdata).read_text())
    prov = manifest.setdefault("provenance", {})
    prov["recipe"] = args.recipe
    prov["training_data"] = args.training_data
    write_manifest(args.bundle, manifest)
    verify(args.bundle, load_manifest(args.bundle))
    print(f"{args.bundle}: {args.key} macro AUROC {mean['macro_auroc']:.3f} over {mean['n']} images recorded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
