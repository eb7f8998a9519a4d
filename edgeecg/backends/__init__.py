"""Inference backends, one module per engine kind, all implementing `edgeecg.backends.base.Runner`.

Backend modules are imported only when chosen, so a missing extra (tensorrt, torch) costs nothing until used.
"""

from __future__ import annotations

import importlib

from edgeecg.errors import UsageError

#: backend name -> "module:class". `auto` is resolved by the pipeline from the bundle and the machine.
BACKENDS: dict[str, str] = {
    "onnxruntime": "edgeecg.backends.onnxruntime:OnnxRuntimeRunner",
    "tensorrt": "edgeecg.backends.tensorrt:TensorRTRunner",
    "torch": "edgeecg.backends.torch:TorchRunner",
}


def runner_class(name: str) -> type:
    """The Runner class registered under `name`."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)} or auto)")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)
