"""Shared test fixtures (the environment and gpu/trt skips live in the root conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """../shared/realdata (real records and photos; test only, never train on it). Skips when absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA


@pytest.fixture(autouse=True)
def _yolo_config_dir(tmp_path_factory, monkeypatch):
    # ultralytics writes a settings file at import; keep it inside the test's temp dir.
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.getbasetemp() / "yolo-config"))
