"""scripts/env.sh, which every recipe sources: its `timed` helper reports a step's time and keeps its exit
status (a failed step must still stop a `set -e` recipe, also after `[ -f X ] || timed ...`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
