"""A validation set of heavily handled printouts: every image of a synth dataset through
`edgeecg.synth.artefacts.heavy_wear` (folds, crumples, a turn with black corners, heavy noise, a strong
colour temperature), stored smaller as JPEG, labels.csv copied, so `edgeecg eval` scores it.

    python scripts/worn_copy.py data/val9_clean_big data/val9_worn --seed 4242 --scale 0.5 --quality 85

It draws fold-9 pages the way another generator (ecg-image-kit) distorts its own: a validation stand-in for
pages our renderer did not draw. The turn moves the page, so no geometry.jsonl is written.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edgeecg.synth.artefacts import heavy_wear


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="a synth dataset (images/ and labels.csv)")
    p.add_argument("out", type=Path, help="output dataset dir")
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--scale", type=float, default=0.5, help="resize factor after the wear (default 0.5)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    args = p.parse_args()
    if not (args.src / "labels.csv").is_file():
        print(f"worn_copy: {args.src}: no labels.csv (not a synth dataset)", file=sys.stderr)
        return 2
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    shutil.copy(args.src / "labels.csv", args.out / "labels.csv")
    files = sorted((args.src / "images").iterdir())
    for i, f in enumerate(tqdm(files, desc="worn", unit="img")):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            print(f"worn_copy: skipping unreadable {f}", file=sys.stderr)
            continue
        out = heavy_wear(img, np.random.default_rng([args.seed, i]))
        if args.scale != 1.0:
            out = cv2.resize(out, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(args.out / "images" / f"{f.stem}.jpg"), out, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
