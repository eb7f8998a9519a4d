"""Score a bundle on real ECGs through the runtime, as a user runs it: fold 9 of PTB-XL (validation), and the
56 test-only records of ../shared/realdata drawn three ways (never tuned on).

    python scripts/eval_realdata.py [--bundle B] [--out runs/realdata_eval] [--json]

Sets (made once under build/realdata/ when missing; test sets only ever scored):
  val9_photo      fold 9 of ../shared/realdata/ptbxl, photo style, every record once, seed 909 (validation)
  records_clean   ../shared/realdata/records drawn by our renderer, clean style (labels: its labels.csv)
  kit_clean       ../shared/realdata/renders-kit/clean (ecg-image-kit, 2200x1700 PNG)
  kit_distorted   ../shared/realdata/renders-kit/distorted (the kit's wrinkles, creases, rotation; 1100x850)
Each row: AUROC per class, macro over all five, macro over HYP, CD and STTC (the test sets have one MI and one
AF positive), how many images were turned away, and the command's wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "realdata"
LABELS = ("MI", "AF", "HYP", "CD", "STTC")
MORPHOLOGY = ("HYP", "CD", "STTC")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def make_sets(build: Path) -> dict[str, Path]:
    """The four datasets (dirs or CSVs), made under `build` where missing."""
    sets = {}
    synth = [
        _bin("edgeecg"),
        "synth",
        "--size",
        "1024x768",
        "--workers",
        "2",
        "--no-progress",
        "--per-record",
        "1",
    ]
    for name, args in {
        "val9_photo": ["--records", str(REAL / "ptbxl"), "--folds", "9", "--style", "photo", "--seed", "909"],
        "records_clean": [
            "--records", str(REAL / "records"), "--labels", str(REAL / "records" / "labels.csv"),
            "--style", "clean", "--seed", "5601",
        ],
    }.items():  # fmt: skip
        out = build / name
        if not (out / "labels.csv").is_file():
            proc = _run([*synth, *args, "--out", str(out)])
            if proc.returncode:
                raise SystemExit(f"synth {name} failed: {proc.stderr.strip()}")
        sets[name] = out
    with open(REAL / "renders-kit" / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for variant in ("clean", "distorted"):
        path = build / f"kit_{variant}.csv"
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["image", *LABELS], lineterminator="\n")
            w.writeheader()
            for r in rows:
                if r["variant"] == variant:
                    w.writerow({"image": str(REAL / "renders-kit" / r["image"]), **{k: r[k] for k in LABELS}})
        sets[f"kit_{variant}"] = path
    return sets


def score(bundle: str | None, dataset: Path, out: Path) -> dict:
    cmd = [_bin("edgeecg"), "eval", str(dataset), "--json", "--out", str(out)]
    if bundle:
        cmd += ["--bundle", bundle]
    t0 = time.perf_counter()
    proc = _run(cmd)
    if proc.returncode:
        raise SystemExit(f"edgeecg eval {dataset} failed: {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    per = report["ensemble_mean"]["per_class"]
    auroc = {k: per[k]["auroc"] for k in LABELS}

    def mean(keys):
        vals = [auroc[k] for k in keys if auroc[k] is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "n": report["n_images"],
        "rejected": report["n_rejected"],
        "failed": report["n_failed"],
        "auroc": auroc,
        "macro": mean(LABELS),
        "macro_hyp_cd_sttc": mean(MORPHOLOGY),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="bundle dir (default: the bundled model)")
    p.add_argument("--out", default="runs/realdata_eval", help="reports per set go here")
    p.add_argument("--only", help="comma list of sets (default: all)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if not REAL.is_dir():
        raise SystemExit(f"{REAL} is not here")
    sets = make_sets(ROOT / "build" / "realdata")
    if args.only:
        sets = {k: v for k, v in sets.items() if k in args.only.split(",")}
    results = {name: score(args.bundle, path, Path(args.out) / name) for name, path in sets.items()}
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    fmt = lambda v: "  n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{'set':<15}" + "".join(f"{k:>7}" for k in LABELS) + "   macro  HYP/CD/STTC  turned away")
    for name, r in results.items():
        cells = "".join(f"{fmt(r['auroc'][k]):>7}" for k in LABELS)
        print(
            f"{name:<15}{cells}   {fmt(r['macro'])}  {fmt(r['macro_hyp_cd_sttc']):>11}  {r['rejected']} of {r['n']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
