"""scripts/env.sh, which every recipe sources: its `timed` helper reports a step's time and keeps its exit
status (a failed step must still stop a `set -e` recipe, also after `[ -f X ] || timed ...`); `scene_set`
makes a synthetic scene set once and keeps it after."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import pytest

ENV = Path(__file__).resolve().parents[1] / "scripts" / "env.sh"


def _bash(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source {ENV}; {script}"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_timed_reports_the_step_and_passes_its_output_through():
    r = _bash("timed 'a step' echo hello")
    assert r.returncode == 0 and r.stdout == "hello\n"
    assert r.stderr.strip() == "[time] a step: 0 min 0 s"


def test_a_failing_step_stops_the_recipe_with_its_status():
    r = _bash("[ -f /nonexistent ] || timed broken bash -c 'exit 3'; echo after")
    assert r.returncode == 3 and "after" not in r.stdout
    assert "[time] broken:" in r.stderr  # the time is reported even so


def test_scene_set_makes_a_set_once_then_keeps_it(tmp_path):
    if not (ENV.parents[1] / ".venv" / "bin" / "edgeecg").is_file():
        pytest.skip("the recipes run the edgeecg of the repository's .venv (scripts/test.sh makes it)")
    make = f"DATA={tmp_path} SIZE=160x120 WORKERS=1; scene_set s 3 5 scan 0.34 --bare-pages 0.5"
    first = _bash(make)
    assert first.returncode == 0, first.stderr
    rows = (tmp_path / "s" / "geometry.jsonl").read_text().splitlines()
    assert len(rows) == 3 and cv2.imread(str(next((tmp_path / "s").rglob("*.jpg")))).shape[:2] == (120, 160)
    again = _bash(make)
    assert again.returncode == 0 and again.stdout.strip() == f"keep {tmp_path}/s"
