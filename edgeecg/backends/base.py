"""The Runner protocol (docs/design.md section 4): one loaded model behind one small interface.

Public methods validate and time; subclasses implement the `_..._impl` methods. A runner is a context
manager: `activate()` allocates (session, engine, buffers), `deactivate()` frees them.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg.errors import BackendError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output. Dynamic dims are None."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def check(self, array: np.ndarray) -> None:
        """Raise BackendError when `array` does not fit this spec."""
        if array.dtype != self.dtype:
            raise BackendError(f"input '{self.name}' must be {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.shape):
            raise BackendError(
                f"input '{self.name}' must have {len(self.shape)} dims, got shape {array.shape}"
            )
        for want, got in zip(self.shape, array.shape, strict=True):
            if want is not None and want != got:
                raise BackendError(f"input '{self.name}' must have shape {self.shape}, got {array.shape}")


class Runner(abc.ABC):
    """Base of every backend runner.

    Args:
        path: the model file (ONNX model, TensorRT plan, torch checkpoint).
        name: a label for logs and timings.
    """

    #: Backend name, as used by `--backend`.
    backend: str = ""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.is_active = False
        self.last_inference_time: float | None = None  # seconds of the last infer() call

    # -- lifecycle ---------------------------------------------------------------------------------
    def activate(self) -> None:
        """Load the model and allocate what inference needs. Idempotent."""
        if not self.is_active:
            self._activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        """Free everything `activate` allocated. Idempotent."""
        if self.is_active:
            self._deactivate_impl()
            self.is_active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # -- metadata ----------------------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs."""
        self._require_active()
        return self._inputs_impl()

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs."""
        self._require_active()
        return self._outputs_impl()

    # -- inference ---------------------------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run the model.

        Args:
            feed: input name -> array, or one array for a single-input model.

        Returns:
            Output name -> numpy array (host memory, owned by the caller).
        """
        self._require_active()
        specs = self.inputs
        if isinstance(feed, np.ndarray):
            if len(specs) != 1:
                raise BackendError(f"{self.name} has {len(specs)} inputs; pass a dict of arrays")
            feed = {specs[0].name: feed}
        names = {s.name for s in specs}
        if set(feed) != names:
            raise BackendError(f"{self.name} expects inputs {sorted(names)}, got {sorted(feed)}")
        for spec in specs:
            spec.check(feed[spec.name])
        start = time.perf_counter()
        out = self._infer_impl(feed)
        self.last_inference_time = time.perf_counter() - start
        return out

    def _require_active(self) -> None:
        if not self.is_active:
            raise BackendError(
                f"runner {self.name} is not active: use it as a context manager or call activate()"
            )

    # -- for subclasses --------------------------------------------------------------------------
    @abc.abstractmethod
    def _activate_impl(self) -> None: ...

    @abc.abstractmethod
    def _deactivate_impl(self) -> None: ...

    @abc.abstractmethod
    def _inputs_impl(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def _outputs_impl(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass
class ClassifierLoad:
    """What a backend's `classifier_runners` needs to build the classifier's runners from a bundle.

    Attributes:
        manifest: the bundle manifest.
        bundle: the bundle directory.
        variant: the manifest's classifier variant to run ({"members": [...], "fused": {...}, ...}).
        precision: that variant's name ("fp32", "fp16", "int8w").
        fused: run the fused ensemble graph instead of the members.
        threads: CPU threads (0: the library's default).
        cuda_graph: TensorRT: replay a CUDA graph for batch-1 calls.
        verify: check sha256 values of files read outside the bundle's own verification (checkpoints).
    """

    manifest: dict[str, Any]
    bundle: Path
    variant: dict[str, Any]
    precision: str
    fused: bool
    threads: int = 0
    cuda_graph: bool = False
    verify: bool = True


@dataclass
class ClassifierRunners:
    """A backend's answer: the runners in ensemble order, the bundle files they load (verified by the caller
    before loading), and the largest batch they take (None: any)."""

    runners: list[Runner]
    files: list[str] = field(default_factory=list)
    max_batch: int | None = None
