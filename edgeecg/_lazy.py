"""Lazy imports of optional heavy modules, so `--help` stays instant and a missing extra is named."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeecg.errors import MissingExtraError

# Which pip extra provides each optional module.
_EXTRAS = {
    "torch": "train",
    "torchvision": "train",
    "timm": "train",
    "safetensors": "train",
    "albumentations": "train",
    "ultralytics": "train",
    "wfdb": "train",
    "onnx": "train",
    "sklearn": "train",
    "tensorrt": "gpu",
    "cuda": "gpu",
    "pycuda": "gpu",
    "segment_anything": "sam",
    "fastapi": "serve",
    "starlette": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "ray": "ray",
}


def require(module: str) -> ModuleType:
    """Import `module` or raise MissingExtraError naming the extra that installs it.

    Args:
        module: dotted module name, e.g. "timm" or "cuda.bindings.runtime".

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = _EXTRAS.get(top)
        hint = f"pip install 'edgeecg[{extra}]'" if extra else f"pip install {top}"
        raise MissingExtraError(f"{module} is not installed ({err}); install it with: {hint}") from None


def available(module: str) -> bool:
    """True when `module` can be imported (imports it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
