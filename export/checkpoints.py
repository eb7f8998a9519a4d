"""Fold checkpoints as training writes them: safetensors weights plus a JSON sidecar.

Sidecar keys (train/checkpoint.py): "model" (timm name), "num_classes", "input" {height, width, mean, std,
channel_order}, "fold", "metrics", "labels"; optionally "model_kwargs" (extra timm constructor arguments,
e.g. smaller depths/dims in tests). The sidecar sits next to the weights as `NAME.json` or
`NAME.safetensors.json`.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.bundle import sha256_file
from edgeecg.errors import BundleError, UsageError
from edgeecg.sidecar import read_json_object, sidecar_path

log = logging.getLogger(__name__)

_INPUT_KEYS = ("height", "width", "mean", "std", "channel_order")


@dataclass(frozen=True)
class MemberCheckpoint:
    """One fold checkpoint: weights file, its sidecar and hash."""

    weights: Path
    sidecar: dict[str, Any] = field(hash=False, compare=False)
    sha256: str = ""

    @property
    def fold(self) -> int | None:
        """The fold index from the sidecar (None when absent)."""
        fold = self.sidecar.get("fold")
        return int(fold) if fold is not None else None

    @property
    def arch(self) -> str:
        """The timm model name."""
        return str(self.sidecar["model"])

    @property
    def input(self) -> dict[str, Any]:
        """The classifier input description: height, width, mean, std, channel_order."""
        return dict(self.sidecar["input"])


def read_checkpoint(weights: str | Path) -> MemberCheckpoint:
    """Read and check one checkpoint's sidecar (the weights are loaded later, by `load_member`)."""
    weights = Path(weights)
    if not weights.is_file():
        raise UsageError(f"checkpoint {weights} does not exist")
    side = sidecar_path(weights)
    if side is None:
        raise BundleError(f"checkpoint {weights} has no JSON sidecar ({weights.with_suffix('.json').name})")
    meta = read_json_object(side)
    if not isinstance(meta.get("model"), str):
        raise BundleError(f"checkpoint sidecar {side} lacks the timm model name ('model')")
    if int(meta.get("num_classes", len(LABELS))) != len(LABELS):
        raise BundleError(
            f"checkpoint {weights.name} has {meta.get('num_classes')} classes, not {len(LABELS)}"
        )
    if "labels" in meta and list(meta["labels"]) != list(LABELS):
        raise BundleError(f"checkpoint {weights.name} labels {meta['labels']} differ from {list(LABELS)}")
    inp = meta.get("input")
    if not isinstance(inp, dict) or any(k not in inp for k in _INPUT_KEYS):
        raise BundleError(f"checkpoint sidecar {side} 'input' must give {', '.join(_INPUT_KEYS)}")
    return MemberCheckpoint(weights=weights, sidecar=meta, sha256=sha256_file(weights))


def find_checkpoints(paths: list[str | Path]) -> list[MemberCheckpoint]:
    """Checkpoints from directories (every *.safetensors inside, sorted) and files, checked for agreement.

    Raises:
        UsageError: nothing found.
        BundleError: members disagree on architecture or input, or repeat a fold.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.safetensors"))
            if not found:
                raise UsageError(f"no *.safetensors checkpoints in {p}")
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise UsageError("no checkpoints given")
    members = [read_checkpoint(f) for f in files]
    first = members[0]
    for m in members[1:]:
        if m.arch != first.arch or m.sidecar.get("model_kwargs") != first.sidecar.get("model_kwargs"):
            raise BundleError(
                f"checkpoints differ in architecture: {first.arch} vs {m.arch} ({m.weights.name})"
            )
        if any(m.input[k] != first.input[k] for k in _INPUT_KEYS):
            raise BundleError(f"checkpoints differ in their input: {first.weights.name} vs {m.weights.name}")
    folds = [m.fold for m in members if m.fold is not None]
    if len(folds) != len(set(folds)):
        raise BundleError(f"checkpoints repeat a fold: {folds}")
    return members


def _strip_prefix(state: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """Drop a wrapper prefix ('module.', 'model.') when the model's own keys lack it."""
    for prefix in ("module.", "model.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in keys):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def build_model(ckpt: MemberCheckpoint) -> Any:
    """A timm model of the checkpoint's architecture, randomly initialised (no download)."""
    timm = require("timm")
    kwargs = dict(ckpt.sidecar.get("model_kwargs") or {})
    try:
        return timm.create_model(ckpt.arch, pretrained=False, num_classes=len(LABELS), **kwargs)
    except Exception as err:  # timm raises RuntimeError/TypeError for unknown names or kwargs
        raise BundleError(f"timm cannot build {ckpt.arch!r} for {ckpt.weights.name}: {err}") from None


def load_member(ckpt: MemberCheckpoint) -> Any:
    """The checkpoint's model with its weights loaded, in eval mode on the CPU.

    Weights are read by `load_weights_file` below (training resumes through it too): safetensors
    only, never a pickle, and a sidecar whose sha256 does not match its weights is refused.
    """
    model = build_model(ckpt)
    state, _ = load_weights_file(ckpt.weights)
    state = _strip_prefix(state, set(model.state_dict()))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise BundleError(f"weights of {ckpt.weights.name} do not fit {ckpt.arch}: {first}") from None
    return model.eval()


# -- reading what training wrote (training imports these: export never imports training) -----------
def is_safetensors(path: str | Path) -> bool:
    """True when the file starts with a safetensors header (u64 length, then a JSON object)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + n <= size


def read_tensors(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; anything else (a pickle above all) is refused."""
    if not path.is_file():
        raise BundleError(f"checkpoint {path} does not exist")
    if not is_safetensors(path):
        raise BundleError(f"{path} is not a safetensors file; edgeecg never unpickles checkpoints")
    safetensors = require("safetensors")
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as err:
        raise BundleError(f"{path} is not a readable safetensors file ({err})") from None
    return tensors, meta


def load_weights_file(path: str | Path, verify: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, sidecar) of weights written by `save_weights`; refuses pickles and mismatched sidecars."""
    path = Path(path)
    tensors, _ = read_tensors(path)
    side = path.with_suffix(".json")
    meta: dict[str, Any] = {}
    if side.is_file():
        meta = read_json_object(side)
        if verify and meta.get("sha256") and meta["sha256"] != sha256_file(path):
            raise BundleError(
                f"{side.name} does not describe {path.name} (sha256 differs): a write was interrupted"
            )
    return tensors, meta
