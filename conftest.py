"""Root pytest plugin shared by tests/ and benchmarks/: the environment and the gpu/trt skip rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before torch, albumentations or ultralytics load. Two busy cores make torch stall ~30 ms per op
# without passive OpenMP waits (docs/design.md section 7); ultralytics must neither probe the network nor write
# settings outside the build directory.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).resolve().parent / "build" / "yolo-config"))


def _cuda_python_gpu() -> bool:
    """What the runtime itself sees: cuda-python (or pycuda) talking to a GPU."""
    try:
        from edgeecg.backends.cuda import gpu_present  # noqa: PLC0415

        return gpu_present()
    except Exception:
        return False


def _has_gpu() -> bool:
    """A GPU through torch (training, the torch backend) or through the runtime's CUDA bindings."""
    try:
        import torch  # noqa: PLC0415

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    return _cuda_python_gpu()


def _has_trt() -> bool:
    """TensorRT and a GPU the runtime's own CUDA bindings can use: the TensorRT runner needs exactly those,
    not torch, so a Jetson without NVIDIA's torch wheel still runs the trt tests."""
    try:
        import tensorrt  # noqa: F401, PLC0415
    except ImportError:
        return False
    return _cuda_python_gpu()


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
                item.add_marker(pytest.mark.skip(reason="needs TensorRT and a GPU that cuda-python can use"))
