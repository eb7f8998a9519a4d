"""Record the golden outputs of the bundled default model on the labelled examples.

Run it when the bundled model or its pre-processing changes on purpose, and commit the result with that change:
    .venv/bin/python scripts/make_golden.py
It runs `edgeecg infer --json` on every examples/*.jpg with the bundled default, as a user does, and writes
tests/golden/default_examples.json: the bundle's file hashes and pre-processing settings, and per example its
ensemble and member probabilities, positive labels and verifier score. tests/test_golden.py checks the shipped
outputs against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "default_examples.json"
#: The fields of `edgeecg infer --json` the golden test compares.
FIELDS = ("probabilities", "member_probabilities", "positive", "ecg_score", "rejected")


def bundle_identity() -> dict:
    """What makes the default bundle's outputs what they are: its files' sha256 and its input/pre-processing."""
    manifest = json.loads((ROOT / "edgeecg/assets/default/manifest.json").read_text(encoding="utf-8"))
    sys.path.insert(0, str(ROOT))
    from edgeecg.bundle import iter_file_entries

    return {
        "files": {e["file"]: e["sha256"] for e in iter_file_entries(manifest)},
        "classifier_input": manifest["classifier"]["input"],
        "thresholds": manifest["classifier"]["thresholds"],
        "preprocess": manifest["preprocess"],
    }


def examples() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.jpg"))


def infer_json(paths: list[str], *extra: str) -> list[dict]:
    """`edgeecg infer --json` on `paths` from the repository root, as a user runs it; one dict per image."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "edgeecg.cli", "infer", *paths, "--json", "--no-progress", *extra],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"edgeecg infer failed ({proc.returncode}): {proc.stderr.strip()}")
    return [json.loads(line) for line in proc.stdout.splitlines()]


def main() -> int:
    results = infer_json(examples())
    golden = {
        "made_by": "python scripts/make_golden.py",
        "bundle": bundle_identity(),
        "examples": {r["image"]: {k: r.get(k) for k in FIELDS} for r in results},
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {len(results)} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
