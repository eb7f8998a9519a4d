"""The classifier: a timm ConvNeXt (or any timm model) with one logit per label, never downloading weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.errors import BundleError, UsageError

log = logging.getLogger(__name__)

__all__ = ["create_model", "head_prefix", "load_weights", "read_state_dict"]

_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")


def read_state_dict(path: str | Path, allow_torch: bool = True) -> dict[str, Any]:
    """Tensors of a weights file: safetensors, or (user-supplied files only) torch.load(weights_only=True).

    Args:
        path: a .safetensors file, or a .pt/.pth/.bin file when `allow_torch`.
        allow_torch: accept torch files, loaded with `weights_only=True` (no arbitrary code runs).

    Raises:
        UsageError: the file is missing. BundleError: it is not a readable weights file.
    """
    torch = require("torch")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors" or not allow_torch:
        st = require("safetensors.torch")
        try:
            return st.load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises SafetensorError or OSError on a foreign file
            raise BundleError(f"{path} is not a safetensors file ({err})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise BundleError(
            f"{path} is not a torch weights file loadable with weights_only=True ({err})"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):  # common wrappers of training checkpoints
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise BundleError(f"{path} does not hold a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def head_prefix(model: Any) -> str:
    """The state-dict prefix of a timm model's classifier head ("head.fc" for ConvNeXt)."""
    return model.default_cfg.get("classifier", "head.fc") if hasattr(model, "default_cfg") else "head.fc"


def load_weights(model: Any, state: dict[str, Any], source: str = "checkpoint") -> list[str]:
    """Load `state` into `model`, skipping the classifier head (with a warning) where its shape differs.

    Backbone keys must all match; a head of another size (ImageNet's 1000 classes) is left at its init,
    except that a head with more outputs than the saved one (auxiliary outputs after the five labels) takes
    the saved rows as its first ones.

    Returns:
        The names of the model keys left at their initial values.
    """
    own = model.state_dict()
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in own):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    head = head_prefix(model)
    keep, skipped = {}, []
    for k, v in state.items():
        if k not in own:
            if k.startswith(head):
                skipped.append(k)
                continue
            raise BundleError(f"{source}: unexpected key {k!r} for this architecture")
        if tuple(own[k].shape) != tuple(v.shape):
            grown_stem = _widen_patch_stem(model, k, v, own[k])
            if grown_stem is not None:
                keep[k] = grown_stem
                continue
            if k.startswith(head) and own[k].shape[1:] == v.shape[1:] and own[k].shape[0] > v.shape[0]:
                # the saved labels' rows of a head that has auxiliary outputs after them (aux_findings)
                grown = own[k].clone()
                grown[: v.shape[0]] = v
                keep[k] = grown
                continue
            if k.startswith(head):
                skipped.append(k)
                continue
            raise BundleError(
                f"{source}: {k} has shape {tuple(v.shape)}, the model wants {tuple(own[k].shape)}"
            )
        keep[k] = v
    missing = [k for k in own if k not in keep]
    bad = [k for k in missing if not k.startswith(head)]
    if bad:
        raise BundleError(f"{source}: missing {len(bad)} backbone key(s), e.g. {bad[0]!r}")
    if skipped or missing:
        log.warning(
            "%s: classifier head not loaded (%d key(s) differ); it starts from random init",
            source,
            len(missing),
        )
    model.load_state_dict(keep, strict=False)
    return missing


def _widen_patch_stem(model: Any, key: str, saved: Any, want: Any) -> Any:
    """A k x k patchify stem's kernel spread over an (m k) x (m k) one, or None where that does not apply.

    Each weight is copied over an m x m block and divided by m*m, so the wide stem on an m-times larger
    image computes exactly what the saved stem computed on that image area-averaged by m, and the rest of
    the network starts from its trained weights. (timm keeps a ConvNeXt's output stride at 32, so with an
    8x8 stem its last stage runs dilated at twice its former resolution: the whole model starts close to,
    not exactly at, the saved one.)
    """
    first = model.default_cfg.get("first_conv") if hasattr(model, "default_cfg") else None
    if not first or key != f"{first}.weight" or saved.ndim != 4 or want.ndim != 4:
        return None
    conv = model.get_submodule(first)
    if tuple(conv.stride) != tuple(conv.kernel_size) or tuple(want.shape[:2]) != tuple(saved.shape[:2]):
        return None  # not a patchify stem, or other channels
    (kh, kw), (wh, ww) = saved.shape[2:], want.shape[2:]
    m = wh // kh
    if m < 2 or wh != m * kh or ww != m * kw:
        return None
    log.info("%s: %dx%d stem spread over %dx%d (input %dx larger)", key, kh, kw, wh, ww, m)
    return saved.repeat_interleave(m, dim=2).repeat_interleave(m, dim=3) / (m * m)


def create_model(
    name: str,
    num_classes: int = len(LABELS),
    drop_rate: float = 0.0,
    checkpoint: str | Path | None = None,
    drop_path_rate: float = 0.0,
    **model_kwargs: Any,
) -> Any:
    """A timm model with `num_classes` logits (apply a sigmoid for probabilities); never downloads.

    Args:
        name: timm model name, e.g. "convnext_atto" or "convnext_base".
        num_classes: number of outputs.
        drop_rate: dropout before the classifier.
        checkpoint: optional weights file (safetensors, or torch weights loaded with weights_only=True),
            e.g. ImageNet weights fetched elsewhere; a differing head is skipped with a warning.
        drop_path_rate: stochastic depth.
        **model_kwargs: extra timm constructor arguments (e.g. `depths`, `dims` for a tiny test model).
    """
    timm = require("timm")
    try:
        model = timm.create_model(
            name,
            pretrained=False,
            num_classes=num_classes,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            **model_kwargs,
        )
    except Exception as err:  # unknown name or kwargs: timm raises RuntimeError / TypeError
        raise UsageError(f"timm cannot build model {name!r}: {err}") from None
    if checkpoint:
        load_weights(model, read_state_dict(checkpoint), source=str(checkpoint))
    return model
