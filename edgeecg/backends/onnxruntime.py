"""ONNX Runtime runner: CPU with a set thread count, or the CUDA provider where onnxruntime-gpu is installed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg._lazy import require
from edgeecg.backends.base import ClassifierLoad, ClassifierRunners, Runner, TensorSpec
from edgeecg.errors import BackendError

log = logging.getLogger(__name__)

#: Session config for a model whose weights are stored as int8 + DequantizeLinear (bundle "weights": "int8"):
#: ONNX Runtime then folds the constant DequantizeLinear nodes into FP32 weights at session creation instead
#: of dequantizing on every call.
INT8_WEIGHTS_SESSION_CONFIG: dict[str, str] = {"session.disable_quant_qdq": "1"}


def ort_session_config(entry: dict[str, Any] | None) -> dict[str, str] | None:
    """ONNX Runtime session config entries a manifest entry (variant or detector) asks for, or None."""
    if entry and entry.get("weights") == "int8":
        return dict(INT8_WEIGHTS_SESSION_CONFIG)
    return None


_ORT_TYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX model in ONNX Runtime.

    Args:
        path: the .onnx file.
        threads: intra-op threads on CPU (0 lets ONNX Runtime choose).
        providers: ONNX Runtime providers in order of preference; default CUDA when available, then CPU.
        name: a label for logs and timings.
        session_config: session config entries (`SessionOptions.add_session_config_entry`), e.g.
            {"session.disable_quant_qdq": "1"} so ORT folds the DequantizeLinear of int8-stored weights.
        spinning: let the intra-op threads spin-wait between the operators of a run (no wake-up per
            operator) and stop when the run ends (`session.force_spinning_stop`): threads left spinning
            after a run steal the cores the next session needs (5 separate convnext_atto sessions, 2 cores:
            420 ms spinning on, 215 ms off), threads put to sleep between operators wait to be woken (the
            bundled pre-processing on a 12 MP photo, 2 cores, side by side: 37.7 ms off, 35.3 ms on; end
            to end 57.1 ms off, 53.6 ms on; the 5-session stand-in unchanged). False: never spin.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        threads: int = 0,
        providers: list[str] | None = None,
        name: str | None = None,
        session_config: dict[str, str] | None = None,
        spinning: bool = True,
    ) -> None:
        super().__init__(path, name)
        self.threads = threads
        self.providers = providers
        self.session_config = dict(session_config or {})
        self.spinning = spinning
        self.session = None

    def _activate_impl(self) -> None:
        ort = require("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: keep the CLI output clean
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        if self.spinning:
            opts.add_session_config_entry("session.force_spinning_stop", "1")  # ...within a run only
        for key, value in self.session_config.items():
            opts.add_session_config_entry(str(key), str(value))
        available = ort.get_available_providers()
        wanted = self.providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]
        providers = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as err:  # ORT raises its own exception types; turn them into one line
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {msg}") from None
        log.debug("%s on %s", self.path.name, self.session.get_providers())

    def _deactivate_impl(self) -> None:
        self.session = None

    @staticmethod
    def _spec(node) -> TensorSpec:
        if node.type not in _ORT_TYPES:
            raise BackendError(f"unsupported ONNX tensor type {node.type} for '{node.name}'")
        shape = tuple(d if isinstance(d, int) else None for d in node.shape)
        return TensorSpec(node.name, shape, _ORT_TYPES[node.type])

    def _inputs_impl(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self.session.get_inputs()]

    def _outputs_impl(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self.session.get_outputs()]

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        values = self.session.run(names, feed)
        return dict(zip(names, values, strict=True))


def classifier_runners(load: ClassifierLoad) -> ClassifierRunners:
    """One session for the fused graph, or one per member, with the variant's session config."""
    entries = [load.variant["fused"]] if load.fused else list(load.variant.get("members") or [])
    config = ort_session_config(load.variant)
    runners: list[Runner] = [
        OnnxRuntimeRunner(
            load.bundle / e["file"],
            threads=load.threads,
            name="fused" if load.fused else f"member:{e.get('fold', i)}",
            session_config=config,
        )
        for i, e in enumerate(entries)
    ]
    return ClassifierRunners(runners, [e["file"] for e in entries])
