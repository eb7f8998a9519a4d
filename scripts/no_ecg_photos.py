"""Real photographs with no ECG, for the verifier: scikit-image's sample photos (public domain or CC0, as
their docstrings in `skimage.data` state), written as PNG into a training and a development folder.

    pip install scikit-image   # once; a training-time dependency only
    python scripts/no_ecg_photos.py [--out build/no_ecg_photos] [--kit-wrinkles PATH/TO/ecg-image-kit]

The split is fixed by name: textures, text and objects train; everyday photos (a person, a cat, a cup, a
rocket...) are held back for choosing the threshold and for the figures. Only images whose licence allows it.

With --kit-wrinkles (a checkout of github.com/alphanumericslab/ecg-image-kit, BSD-3), its 19 photographs of
crumpled blank paper (codes/ecg-image-generator/CreasesWrinkles/wrinkles-dataset) go into heldout/: real
no-ECG photos that nothing is trained or tuned on, and hard ones (paper).
"""

from __future__ import annotations

import argparse
from pathlib import Path

TRAIN = ("brick", "grass", "gravel", "coins", "text", "cell", "clock", "microaneurysms")
DEV = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="build/no_ecg_photos", help="output dir (train/ and dev/ inside)")
    p.add_argument(
        "--kit-wrinkles", type=Path, help="a checkout of ecg-image-kit: its wrinkle photos -> heldout/"
    )
    args = p.parse_args()
    if args.kit_wrinkles is not None:
        src = args.kit_wrinkles / "codes" / "ecg-image-generator" / "CreasesWrinkles" / "wrinkles-dataset"
        photos = sorted(src.glob("*.jpg"))
        if not photos:
            raise SystemExit(f"no_ecg_photos: {src}: no wrinkle photos (*.jpg) there")
        out = Path(args.out) / "heldout"
        out.mkdir(parents=True, exist_ok=True)
        for f in photos:
            (out / f"kit-wrinkles-{f.name}").write_bytes(f.read_bytes())
        print(f"{out}: {len(photos)} photos")
    try:
        import cv2
        import skimage.data as data
    except ImportError as e:
        raise SystemExit(
            f"needs scikit-image and opencv ({e.name} missing): pip install scikit-image"
        ) from None
    for split, names in (("train", TRAIN), ("dev", DEV)):
        out = Path(args.out) / split
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            img = getattr(data, name)()
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            else:
                img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(out / f"{name}.png"), img)
        print(f"{out}: {len(names)} photos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
