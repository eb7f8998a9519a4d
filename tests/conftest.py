"""Shared test fixtures and the skip rules for gpu/trt markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two busy cores make torch stall ~30 ms per op without this (DESIGN.md section 7).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"


def _has_gpu() -> bool:
    try:
        import torch  # noqa: PLC0415

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _has_trt() -> bool:
    try:
        import tensorrt  # noqa: F401, PLC0415
    except ImportError:
        return False
    return _has_gpu()


def pytest_collection_modifyitems(config, items):
    gpu = trt = None
    for item in items:
        if "gpu" in item.keywords:
            gpu = _has_gpu() if gpu is None else gpu
            if not gpu:
                item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))
        if "trt" in item.keywords:
            trt = _has_trt() if trt is None else trt
            if not trt:
                item.add_marker(pytest.mark.skip(reason="needs TensorRT and an NVIDIA GPU"))


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
