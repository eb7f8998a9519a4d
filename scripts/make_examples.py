"""Make the bundled example images: pages of real PTB-XL validation records (fold 9), drawn by our renderer.

    python scripts/make_examples.py [--bundle edgeecg/assets/default]

For each example (a label set and a style) the candidates are the fold-9 records with exactly that label set,
in ecg_id order; each is drawn once (`edgeecg synth --record-list`, seed fixed per style) and the first whose
page the bundle reads right (`edgeecg infer --json`: its positive labels are the record's) becomes the example.
So the examples show the model reading real ECGs right; how often it does is in docs/model-card.md, not here.
Writes examples/*.jpg and the table of examples/README.md. Fold 9 is validation data (never trained on), and
PTB-XL is CC BY 4.0 (attribution in examples/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg import LABELS  # noqa: E402
from edgeecg.synth.real_records import parse_folds, record_index, select_records  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PTBXL = ROOT.parent / "shared" / "realdata" / "ptbxl"
#: file name -> (positive labels, style, frame size, seed)
EXAMPLES = {
    "photo_normal.jpg": ((), "photo", "1600x1200", 2026),
    "photo_mi.jpg": (("MI",), "photo", "1600x1200", 2026),
    "photo_af.jpg": (("AF",), "photo", "1600x1200", 2026),
    "scan_hyp.jpg": (("HYP",), "scan", "1650x1275", 2027),
    "photo_cd.jpg": (("CD",), "photo", "1600x1200", 2026),
    "scan_sttc.jpg": (("STTC",), "scan", "1650x1275", 2027),
}
MAX_CANDIDATES = 40


def _run(cmd: list[str]) -> str:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:3])} failed: {proc.stderr.strip()}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="bundle dir (default: the bundled model)")
    args = p.parse_args(argv)
    bindir = Path(sys.executable).parent
    val = select_records(record_index(PTBXL), parse_folds("9"))
    rows = []
    for name, (positive, style, size, seed) in EXAMPLES.items():
        want = [k for k in LABELS if k in positive]
        cands = [e for e in val if [k for k in LABELS if e.labels[k]] == want]
        cands = sorted(cands, key=lambda e: int(e.record))[:MAX_CANDIDATES]
        with tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "ids.txt"
            listing.write_text("\n".join(e.record for e in cands) + "\n")
            out = Path(tmp) / "set"
            _run([str(bindir / "edgeecg"), "synth", "--records", str(PTBXL), "--record-list", str(listing),
                  "--per-record", "1", "--style", style, "--size", size, "--seed", str(seed),
                  "--jpeg-quality", "88", "--no-progress", "--out", str(out)])  # fmt: skip
            with open(out / "labels.csv", newline="") as f:
                made = list(csv.DictReader(f))
            infer = [
                str(bindir / "edgeecg"),
                "infer",
                "--json",
                "--no-progress",
                *(str(out / r["image"]) for r in made),
            ]
            if args.bundle:
                infer += ["--bundle", args.bundle]
            results = [json.loads(line) for line in _run(infer).splitlines()]
            pick = next((i for i, r in enumerate(results) if r.get("positive") == want), None)
            if pick is None:
                print(f"{name}: none of {len(made)} candidates read right; left as it is")
                continue
            shutil.copyfile(out / made[pick]["image"], ROOT / "examples" / name)
            rec = made[pick]["record"]
            rows.append((name, rec, style, size, seed, pick + 1, len(made), want))
            print(f"{name}: record {rec} (candidate {pick + 1} of {len(made)})")
    table = [
        "| file | PTB-XL ecg_id (fold 9) | drawn as | " + " | ".join(LABELS) + " | read right at candidate |",
        "|---|---|---|" + "---|" * len(LABELS) + "---|",
    ]
    for name, rec, style, size, seed, k, n, want in rows:
        flags = " | ".join("1" if lab in want else "0" for lab in LABELS)
        table.append(f"| `{name}` | {rec} | {style} {size}, seed {seed} | {flags} | {k} of {n} |")
    readme = ROOT / "examples" / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.index("<!-- table -->") + len("<!-- table -->\n"), text.index("<!-- /table -->")
    readme.write_text(text[:start] + "\n".join(table) + "\n" + text[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
