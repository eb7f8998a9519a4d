"""The runtime stays lean: importing it pulls in no heavy module and writes nothing."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch", "torchvision", "timm", "ultralytics", "albumentations", "tensorrt", "wfdb", "sklearn",
    "matplotlib", "onnx", "yaml", "edgeecg.train", "edgeecg.export",
)  # fmt: skip


def test_import_edgeecg_and_cli_is_lean(tmp_path):
    code = (
        "import sys, edgeecg, edgeecg.cli, edgeecg.bundle, edgeecg.backends, edgeecg.pipeline, edgeecg.camera;"
        "import edgeecg.commands.infer, edgeecg.commands.eval, edgeecg.commands.synth;"
        f"print(','.join(m for m in {HEAVY!r} + ('onnxruntime',) if m in sys.modules))"
    )
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, check=True
    )
    assert out.stdout.strip() == "", f"importing edgeecg pulled in: {out.stdout.strip()}"
    assert list(tmp_path.iterdir()) == [], "importing edgeecg wrote files"


def test_runtime_sources_never_import_heavy_modules_at_top_level():
    offenders = []
    for path in (ROOT / "edgeecg").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: functions may import lazily through edgeecg._lazy
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in HEAVY or n.startswith(HEAVY)
            ]
    assert offenders == []


def test_runtime_never_imports_ultralytics_anywhere():
    # AGPL: not even lazily.
    hits = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "edgeecg").rglob("*.py")
        if "import ultralytics" in p.read_text(encoding="utf-8")
        or "from ultralytics" in p.read_text(encoding="utf-8")
    ]
    assert hits == []


def test_help_is_fast_and_clean():
    out = subprocess.run([sys.executable, "-m", "edgeecg.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("synth", "infer", "camera", "eval"):
        assert name in out.stdout
