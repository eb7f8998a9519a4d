#!/usr/bin/env python
"""Check the layering contracts of pyproject.toml ([tool.importlinter]) with import-linter.

train/ and export/ install as edgeecg.train and edgeecg.export (package-dir), which import-linter cannot see
in a source checkout: it walks the edgeecg folder. So the package is laid out here as it installs (every
.py copied under build/import-layers/edgeecg) and checked there. Exit status: lint-imports'.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = {"edgeecg": "edgeecg", "train": "edgeecg/train", "export": "edgeecg/export"}


def lay_out(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    for src, rel in LAYOUT.items():
        for py in (ROOT / src).rglob("*.py"):
            target = dest / rel / py.relative_to(ROOT / src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(py, target)


def main() -> int:
    dest = ROOT / "build" / "import-layers"
    lay_out(dest)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dest), os.environ.get("PYTHONPATH", "")])}
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe) if exe.exists() else "lint-imports", str(ROOT / "pyproject.toml"), "--no-cache"]
    return subprocess.call(cmd, cwd=dest, env=env)


if __name__ == "__main__":
    sys.exit(main())
