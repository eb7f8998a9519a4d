"""PyTorch reference runner: a training checkpoint (safetensors + JSON sidecar) rebuilt with timm.

Used to check the exported models against the weights they came from; needs the train extra. The sidecar
(written by edgeecg.train next to each checkpoint, same stem, `.json`) names the timm model ("model" or
"arch"), optional constructor arguments ("model_kwargs"), the number of classes and the "input" spec.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.backends.base import ClassifierLoad, ClassifierRunners, Runner, TensorSpec
from edgeecg.bundle import sha256_file
from edgeecg.errors import BackendError, BundleError
from edgeecg.sidecar import read_json_object

log = logging.getLogger(__name__)


def read_sidecar(checkpoint: str | Path, sidecar: str | Path | None = None) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (default: same path with a .json suffix)."""
    path = Path(sidecar) if sidecar else Path(checkpoint).with_suffix(".json")
    if not path.is_file():
        raise BundleError(f"checkpoint sidecar {path} is missing (it names the model and its input)")
    meta = read_json_object(path)
    if not (meta.get("model") or meta.get("arch")):
        raise BundleError(f"{path} does not name the model ('model': a timm model name)")
    return meta


class TorchRunner(Runner):
    """Runs a training checkpoint in PyTorch (eval mode, no grad): "image" float32 [N,3,H,W] -> "logits".

    Args:
        path: the .safetensors checkpoint.
        sidecar: its JSON sidecar (default: `path` with a .json suffix).
        threads: torch intra-op threads (0 leaves torch's default).
        device: torch device string ("cpu", "cuda").
        name: a label for logs and timings.
    """

    backend = "torch"

    def __init__(
        self,
        path: str | Path,
        sidecar: str | Path | None = None,
        threads: int = 0,
        device: str = "cpu",
        name: str | None = None,
    ) -> None:
        super().__init__(path, name)
        self.sidecar = sidecar
        self.threads = threads
        self.device = device
        self.model = None
        self.meta: dict[str, Any] = {}

    def _activate_impl(self) -> None:
        torch = require("torch")
        timm = require("timm")
        st = require("safetensors.torch")
        self.meta = read_sidecar(self.path, self.sidecar)
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        arch = self.meta.get("model") or self.meta.get("arch")
        kwargs = dict(self.meta.get("model_kwargs") or {})
        num_classes = int(self.meta.get("num_classes", len(LABELS)))
        try:
            model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
            state = st.load_file(str(self.path), device="cpu")
            # training may save a wrapped model: drop a common "model." / "module." prefix
            for prefix in ("module.", "model."):
                if state and all(k.startswith(prefix) for k in state):
                    state = {k[len(prefix) :]: v for k, v in state.items()}
            model.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, ValueError, TypeError) as err:
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BackendError(f"cannot load checkpoint {self.path} as {arch}: {msg}") from None
        self.model = model.eval().to(self.device)
        inp = self.meta.get("input", {})
        h, w = inp.get("height"), inp.get("width")
        self._in = [TensorSpec(inp.get("name", "image"), (None, 3, h, w), np.dtype(np.float32))]
        self._out = [
            TensorSpec(self.meta.get("output_name", "logits"), (None, num_classes), np.dtype(np.float32))
        ]

    def _deactivate_impl(self) -> None:
        self.model = None

    def _inputs_impl(self) -> list[TensorSpec]:
        return list(self._in)

    def _outputs_impl(self) -> list[TensorSpec]:
        return list(self._out)

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = require("torch")
        x = torch.from_numpy(np.ascontiguousarray(feed[self._in[0].name])).to(self.device)
        with torch.inference_mode():
            y = self.model(x)
        if not isinstance(y, torch.Tensor):
            raise BackendError(f"{self.name}: model returned {type(y).__name__}, expected a tensor")
        return {self._out[0].name: y.float().cpu().numpy()}


def member_checkpoint(
    manifest: dict[str, Any], bundle: Path, member: dict[str, Any], index: int, files: list[str], check: bool
) -> tuple[Path, Path | None]:
    """Weights (and sidecar) of a member for the torch backend: inside the bundle ("checkpoint" entry, verified
    with the rest) or the training checkpoint the manifest's provenance names (verified here)."""
    fold = member.get("fold", index)
    ck = member.get("checkpoint")
    if ck:
        files.append(ck["file"])
        return bundle / ck["file"], (bundle / ck["sidecar"] if ck.get("sidecar") else None)
    for entry in (manifest.get("provenance") or {}).get("checkpoints") or []:
        if entry.get("fold") == fold and entry.get("file"):
            path = Path(entry["file"])
            path = path if path.is_absolute() else bundle / path
            if not path.is_file():
                raise BundleError(
                    f"the torch backend needs member {fold}'s training checkpoint {path}, which is absent"
                )
            if check and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                raise BundleError(f"checkpoint {path} does not match the sha256 in the manifest's provenance")
            return path, None
    raise BundleError(f"member {fold} has no checkpoint in the manifest: the torch backend needs one")


def classifier_runners(load: ClassifierLoad) -> ClassifierRunners:
    """One TorchRunner per member, from the checkpoint the bundle or its provenance names."""
    out = ClassifierRunners([])
    for i, m in enumerate(load.variant.get("members") or []):
        weights, sidecar = member_checkpoint(load.manifest, load.bundle, m, i, out.files, load.verify)
        name = f"member:{m.get('fold', i)}"
        out.runners.append(TorchRunner(weights, sidecar=sidecar, threads=load.threads, name=name))
    return out
