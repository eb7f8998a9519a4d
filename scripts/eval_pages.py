"""Which pages the bundle's pre-processing accepts: the verifier and detector on real and synthetic pages,
with and without an ECG, and whether the verdict holds when the same page comes at another resolution.

    python scripts/eval_pages.py [--bundle B] [--json]

Rows (sets made by scripts/eval_realdata.py, scripts/train_verifier.sh and scripts/no_ecg_photos.py):
  kit_clean, kit_distorted  ../shared/realdata/renders-kit (test only: no choice is made on them), at their
                            stored size and upscaled to 2200x1700
  photos                    ../shared/realdata/photos: 58 real photos and scans of ECGs (test only)
  val9_photo, val9w_photo   fold 9 of PTB-XL as photos, plain and on weathered paper (validation)
  val9_worn                 fold 9 clean printouts at 2200x1700 through scripts/worn_copy.py (folds, crumples,
                            turns, heavy noise, colour temperature; stored at half size, JPEG q85): validation
  test_neg                  held-out synthetic no-ECG scenes (a seed never trained or tuned on)
  photos_dev                real no-ECG photos (scikit-image samples) the threshold was chosen with
  photos_heldout            real no-ECG photos nothing was trained or tuned on (crumpled paper:
                            scripts/no_ecg_photos.py --kit-wrinkles)
  scale 1/2, 1/4            fold-9 photos at 1/2 and 1/4 size: verdicts that differ from full size
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "realdata"


def _images(folder: Path) -> list[Path]:
    from edgeecg.io import IMAGE_EXTENSIONS

    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)


def _verdicts(pipe, files: list[Path], size: tuple[int, int] | None = None, scale: float = 1.0) -> list[bool]:
    """True where the page is accepted (an ECG found)."""
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {f}")
        if size is not None and img.shape[1::-1] != size:
            up = size[0] > img.shape[1]
            img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC if up else cv2.INTER_AREA)
        if scale != 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(pipe.preprocess(img).rejected is None)
    return out


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from edgeecg.pipeline import Pipeline

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", help="bundle dir (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    pipe = Pipeline.from_bundle(args.bundle, threads=1)
    kit = REAL / "renders-kit"
    b = ROOT / "build"
    rows: list[tuple[str, list[Path], bool, dict]] = [
        ("kit_clean (2200x1700)", _images(kit / "clean"), True, {}),
        ("kit_distorted (1100x850)", _images(kit / "distorted"), True, {}),
        ("kit_distorted upscaled to 2200x1700", _images(kit / "distorted"), True, {"size": (2200, 1700)}),
        ("photos (real photos and scans)", _images(REAL / "photos"), True, {}),
        ("val9_photo (fold 9)", _images(ROOT / "data" / "val9_photo" / "images"), True, {}),
        (
            "val9w_photo (fold 9, weathered paper)",
            _images(ROOT / "data" / "val9w_photo" / "images"),
            True,
            {},
        ),
        (
            "val9_worn (fold 9, heavily handled)",
            _images(ROOT / "data" / "val9_worn" / "images"),
            True,
            {},
        ),
        ("test_neg (synthetic, no ECG)", _images(b / "scenes3" / "test_neg" / "images"), False, {}),
        ("photos_dev (real, no ECG; tuned on)", _images(b / "no_ecg_photos" / "dev"), False, {}),
        ("photos_heldout (real, no ECG; held out)", _images(b / "no_ecg_photos" / "heldout"), False, {}),
    ]
    results, verdicts = {}, {}
    for name, files, ecg, kw in rows:
        if not files:
            print(f"skip {name}: no images (see the module doc for how the set is made)", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        v = verdicts[name] = np.array(_verdicts(pipe, files, **kw))
        good = int(v.sum() if ecg else (~v).sum())
        results[name] = {"n": len(v), "correct": good, "kind": "accepted" if ecg else "rejected",
                         "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    base = verdicts.get("val9_photo (fold 9)")  # the same pages at full size, from the rows above
    if base is not None:
        files = _images(ROOT / "data" / "val9_photo" / "images")
        for scale in (0.5, 0.25):
            v = np.array(_verdicts(pipe, files, scale=scale))
            results[f"val9_photo at {scale:g} of its size"] = {
                "n": len(v),
                "correct": int(v.sum()),
                "kind": "accepted",
                "verdict_changed": int((v != base).sum()),
            }
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print("| set | n | result |")
    print("|---|---|---|")
    for name, r in results.items():
        extra = f", verdict changed on {r['verdict_changed']}" if "verdict_changed" in r else ""
        print(f"| {name} | {r['n']} | {r['correct']} {r['kind']} ({r['correct'] / r['n']:.1%}){extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
