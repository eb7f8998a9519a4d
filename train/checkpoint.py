"""Checkpoints without pickle: safetensors for tensors, JSON for everything else, written atomically.

Two kinds of file:

* Weights for consumers (export, evaluation): `NAME.safetensors` (the model's state dict) plus the JSON
  sidecar `NAME.json` = {format, model, model_kwargs, num_classes, labels, input {height, width, mean,
  std, channel_order}, fold, epoch, metrics, config, sha256 of the weights}. The weights are replaced
  first, the sidecar second; a sidecar whose sha256 does not match its weights is refused on load.
* Resume state: `last.state.safetensors`, ONE file holding the model weights ("model.*"), the optimiser
  moments ("optim.<param>.<name>") and the RNG states ("rng.*") as tensors, and every scalar (epoch,
  optimiser hyper-parameters, scheduler, grad scaler, early stopping, Python/numpy RNG) as a JSON string
  in the safetensors header metadata. One file, replaced with os.replace, so a kill at any instant leaves
  either the old or the new state, never a mix.

Loading refuses anything that is not a safetensors file (a pickle put in place raises BundleError).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.bundle import sha256_file
from edgeecg.errors import BundleError
from edgeecg.export.checkpoints import is_safetensors, load_weights_file, read_tensors

__all__ = [
    "FORMAT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "atomic_write_bytes",
    "atomic_write_json",
    "sha256_file",
    "is_safetensors",
    "save_weights",
    "load_weights_file",
    "read_tensors",
    "save_state",
    "load_state",
    "capture_rng",
    "restore_rng",
]

FORMAT = "edgeecg-checkpoint/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_STATE_KEY = "edgeecg_state"


def _fsync_replace(tmp: Path, path: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file next to `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    _fsync_replace(tmp, path)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON (NaN/inf written as null)."""
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def _save_tensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    st = require("safetensors.torch")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    st.save_file(clean, str(tmp), metadata=metadata)
    _fsync_replace(tmp, path)


def sidecar_path(weights: str | Path) -> Path:
    """`NAME.json` next to `NAME.safetensors`."""
    return Path(weights).with_suffix(".json")


def save_weights(path: str | Path, state_dict: dict[str, Any], sidecar: dict[str, Any]) -> dict[str, Any]:
    """Write model weights and their JSON sidecar atomically (weights first, then the sidecar).

    Args:
        path: the .safetensors file to write.
        state_dict: the model's state dict.
        sidecar: metadata; "format", "labels", "num_classes" and "sha256" are filled in.

    Returns:
        The sidecar as written.
    """
    path = Path(path)
    _save_tensors(path, state_dict, metadata={"format": FORMAT})
    meta = {"format": FORMAT, "labels": list(LABELS), "num_classes": len(LABELS), **sidecar}
    meta["sha256"] = sha256_file(path)
    atomic_write_json(sidecar_path(path), meta)
    return meta


# ---- RNG state -------------------------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, json) snapshot of the torch, CUDA, numpy and Python global RNGs."""
    torch = require("torch")
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.int32).copy())
    version, pystate, gauss = random.getstate()
    scalars = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(pystate), gauss],
    }
    return tensors, scalars


def restore_rng(tensors: dict[str, Any], scalars: dict[str, Any]) -> None:
    """Restore what `capture_rng` took."""
    torch = require("torch")
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    kind, pos, has_gauss, cached = scalars["numpy"]
    keys = tensors["rng.numpy"].numpy().view(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    version, pystate, gauss = scalars["python"]
    random.setstate((version, tuple(pystate), gauss))


# ---- resume state ----------------------------------------------------------------------------------


def save_state(
    path: str | Path,
    model: Any,
    optimizer: Any,
    scalars: dict[str, Any],
    scheduler: Any = None,
    scaler: Any = None,
) -> None:
    """Write everything a resume needs into one safetensors file (tensors) with JSON metadata (scalars).

    Args:
        path: e.g. DIR/last.state.safetensors.
        model: the model (its state dict is stored under "model.").
        optimizer: a torch optimizer; tensors of its per-parameter state are stored under "optim.".
        scalars: JSON-able training state (epoch, early stopping, history, ...).
        scheduler: an LR scheduler with `state_dict()` of plain values, or None.
        scaler: a torch.amp.GradScaler, or None.
    """
    torch = require("torch")
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in opt["state"].items():
        for name, val in pstate.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = val
            else:
                opt_scalars.setdefault(str(pid), {})[name] = val
    rng_tensors, rng_scalars = capture_rng()
    tensors.update(rng_tensors)
    meta = {
        "format": FORMAT,
        "scalars": scalars,
        "optim_param_groups": opt["param_groups"],
        "optim_scalars": opt_scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_scalars,
    }
    _save_tensors(Path(path), tensors, metadata={_STATE_KEY: json.dumps(_jsonable(meta))})


def load_state(
    path: str | Path, model: Any, optimizer: Any, scheduler: Any = None, scaler: Any = None, rng: bool = True
) -> dict[str, Any]:
    """Restore a `save_state` file into the given objects (and the global RNGs); returns the scalars."""
    torch = require("torch")
    tensors, meta_raw = read_tensors(Path(path))
    if _STATE_KEY not in meta_raw:
        raise BundleError(f"{path} holds no training state (no {_STATE_KEY!r} metadata)")
    meta = json.loads(meta_raw[_STATE_KEY])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, vals in meta["optim_scalars"].items():
        state.setdefault(int(pid), {}).update(vals)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optim_param_groups"]})
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    if rng:
        restore_rng(tensors, meta["rng"])
    _ = torch  # torch is needed by the optimizer's own load path
    return meta["scalars"]
