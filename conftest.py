"""Root pytest plugin shared by tests/ and benchmarks/: the environment and the gpu/trt skip rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before torch, albumentations or ultralytics load. Two busy cores make torch stall ~30 ms per op
# without passive OpenMP waits (DESIGN.md section 7); ultralytics must neither probe the network nor write
# settings outside the build directory.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).resolve().parent / "build" / "yolo-config"))


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
    gpu = trt = None  # probed once, and only when a marked test is collected
    for item in items:
        if "gpu" in item.keywords:
            gpu = _has_gpu() if gpu is None else gpu
            if not gpu:
                item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))
        if "trt" in item.keywords:
            trt = _has_trt() if trt is None else trt
            if not trt:
                item.add_marker(pytest.mark.skip(reason="needs TensorRT and an NVIDIA GPU"))
