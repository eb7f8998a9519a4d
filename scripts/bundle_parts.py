"""Write a bundle's pre-processing models as the files their trainers write: NAME.onnx with NAME.json beside.

    python scripts/bundle_parts.py [--bundle edgeecg/assets/default] --out runs/shipped_pre

Training's runtime chain (`preprocess: edgeecg`, `runtime_detector` / `runtime_corner_model` /
`runtime_verifier`) reads these, so a classifier can learn through the shipped detector, corner model and
Verifier without retraining them. Each file is checked against the manifest's sha256 first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg.bundle import default_bundle_dir, load_manifest, verify  # noqa: E402

PARTS = ("detector", "corner_model", "verifier")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--bundle", default=str(default_bundle_dir()), help="bundle dir (default: the bundled one)"
    )
    p.add_argument("--out", required=True, help="folder for NAME.onnx + NAME.json")
    args = p.parse_args(argv)
    bundle, out = Path(args.bundle), Path(args.out)
    manifest = load_manifest(bundle)
    verify(bundle, manifest)
    out.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        entry = manifest.get(part)
        if not entry:
            continue
        name = Path(entry["file"]).stem
        shutil.copyfile(bundle / entry["file"], out / f"{name}.onnx")
        fields = {k: v for k, v in entry.items() if k not in ("file", "sha256")}
        (out / f"{name}.json").write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
        print(f"{part}: {out / (name + '.onnx')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
