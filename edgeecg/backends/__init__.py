"""Inference backends, one module per engine kind, all implementing `edgeecg.backends.base.Runner`.

Backend modules are imported only when chosen, so a missing extra (tensorrt, torch) costs nothing until used.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeecg.backends.tensorrt import tensorrt_usable
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


def classifier_loader(name: str):
    """The `classifier_runners(ClassifierLoad) -> ClassifierRunners` function of backend `name`: each backend
    knows how a bundle's classifier becomes its runners, so the pipeline wires parts without branching."""
    runner_class(name)  # raises UsageError for an unknown name
    return importlib.import_module(BACKENDS[name].split(":")[0]).classifier_runners


def resolve_backend(
    name: str, manifest: dict, targets: list[str], precision: str, bundle_dir: str | Path | None = None
) -> str:
    """Turn `auto` into a concrete backend: TensorRT when it, a GPU and plans for all `targets` exist, else
    ONNX Runtime. Any other name is checked and returned as is.

    Args:
        name: "auto" or a key of BACKENDS.
        manifest: the bundle manifest (its "engines" list is searched for plans).
        targets: the plan targets the pipeline needs ("fused" or "member:K", ...).
        precision: the classifier precision the plans must have.
        bundle_dir: where the plans are; given, `auto` also checks that they deserialise here.
    """
    if name != "auto":
        runner_class(name)  # raises UsageError for an unknown name
        return name

    return "tensorrt" if tensorrt_usable(manifest, targets, precision, bundle_dir) else "onnxruntime"
