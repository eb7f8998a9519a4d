"""TensorRT runner (TensorRT 10/11 Python API) and plan selection from the bundle manifest.

A plan is only valid on the GPU model, compute capability, SM count and exact TensorRT build it was made
with, so the manifest keys every plan by those (docs/design.md section 3) and `select_plan` picks the one that fits
this machine, or says which build command makes one; `tensorrt_usable` also deserialises the chosen plans,
the only compatibility check TensorRT has, so `auto` falls back to ONNX Runtime instead of failing. The runner deserialises the plan, allocates device
buffers for the largest shape of the optimisation profile plus pinned host buffers, and runs
`execute_async_v3` on its own CUDA stream; at batch 1 it can replay a captured CUDA graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg._lazy import available, require
from edgeecg.backends.base import ClassifierLoad, ClassifierRunners, Runner, TensorSpec
from edgeecg.backends.cuda import DeviceInfo, cuda_api, current_device, gpu_present, host_array
from edgeecg.errors import BackendError, UsageError

log = logging.getLogger(__name__)


# -- plan selection (pure; tested on CPU) --------------------------------------------------------
def _norm_gpu(name: str) -> str:
    return " ".join(str(name).lower().replace("nvidia ", "").split())


def _trt_version(version: str) -> tuple[str, ...]:
    """The whole TensorRT version a plan depends on: plans and timing caches need major, minor, patch *and*
    build to match ("10.3.0.30" -> 10, 3, 0, 30)."""
    return tuple(p for p in str(version).strip().split(".") if p)


def plan_matches(entry: dict[str, Any], device: DeviceInfo, target: str, precision: str) -> bool:
    """True when the manifest's engine `entry` was built for `target`/`precision` on this `device`: same GPU
    model, compute capability, SM count and full TensorRT version."""
    return (
        entry.get("target") == target
        and entry.get("precision") == precision
        and _norm_gpu(entry.get("gpu", "")) == _norm_gpu(device.name)
        and str(entry.get("compute_capability")) == device.compute_capability
        and int(entry.get("sm_count") or 0) == device.sm_count
        and _trt_version(entry.get("tensorrt", "")) == _trt_version(device.tensorrt)
    )


def describe(device: DeviceInfo) -> str:
    """'Orin (sm_87, 8 SMs, TensorRT 10.3.0.30)': how messages name a plan's machine."""
    return f"{device.name} ({device.sm}, {device.sm_count} SMs, TensorRT {device.tensorrt})"


def _entry_device(e: dict[str, Any]) -> DeviceInfo:
    return DeviceInfo(
        str(e.get("gpu")),
        str(e.get("compute_capability", "")),
        str(e.get("tensorrt")),
        int(e.get("sm_count") or 0),
    )


def select_plan(
    manifest: dict[str, Any],
    target: str,
    precision: str,
    device: DeviceInfo | None = None,
    bundle_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The manifest's TensorRT plan entry for `target` ("fused", "member:K", "detector") on this machine.

    Args:
        manifest: the bundle manifest.
        target: which model the plan must hold.
        precision: "fp16", "fp32", ...
        device: the GPU and TensorRT version to match (default: this machine's, needs the gpu extra).
        bundle_dir: used only to name the bundle in the error message.

    Returns:
        The engine entry ({"file", "sha256", "target", "gpu", ...}).

    Raises:
        BackendError: no plan matches; the message names the device and the command that builds one.
    """
    device = device or current_device()
    for entry in manifest.get("engines") or []:
        if plan_matches(entry, device, target, precision):
            return entry
    where = bundle_dir if bundle_dir is not None else "DIR"
    built = sorted({describe(_entry_device(e)) for e in manifest.get("engines") or []})
    have = f" (it has plans for: {'; '.join(built)})" if built else ""
    raise BackendError(
        f"no TensorRT plan for {describe(device)} in this bundle{have}; "
        f"build one with: edgeecg-export --engines --bundle {where}"
    )


_LOGGER: Any = None


def trt_logger(trt: Any) -> Any:
    """The process's one TensorRT logger (TensorRT keeps the first and warns about every further one)."""
    global _LOGGER  # noqa: PLW0603
    if _LOGGER is None:
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def plan_problem(path: str | Path) -> str | None:
    """None when this machine's TensorRT deserialises the plan at `path`, else why not (one line).

    TensorRT has no compatibility check short of deserialising: a plan from another TensorRT build or GPU
    gives a null engine.
    """
    trt = require("tensorrt")
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return f"cannot read {path}: {err.strerror}"
    engine = trt.Runtime(trt_logger(trt)).deserialize_cuda_engine(data)
    if engine is None:
        return f"TensorRT {trt.__version__} cannot load {Path(path).name} (built for another GPU or TensorRT build)"
    del engine
    return None


def tensorrt_usable(
    manifest: dict[str, Any], targets: list[str], precision: str, bundle_dir: str | Path | None = None
) -> bool:
    """True when TensorRT, cuda bindings and a GPU are present, the bundle has a plan for every target and,
    given `bundle_dir`, every such plan deserialises here.

    Never raises: `auto` backend selection uses it to fall back to ONNX Runtime, and says why in one line.
    """
    if not available("tensorrt") or not gpu_present():
        return False
    try:
        device = current_device()
        for t in targets:
            entry = select_plan(manifest, t, precision, device)
            problem = plan_problem(Path(bundle_dir) / entry["file"]) if bundle_dir is not None else None
            if problem:
                raise BackendError(problem)
    except Exception as err:  # any reason TensorRT cannot run here means "use ONNX Runtime"
        log.warning("TensorRT not used, ONNX Runtime instead: %s", err)
        return False
    return True


def plan_max_batch(entry: dict[str, Any]) -> int:
    """The largest batch a plan's optimisation profile takes (its manifest entry's batch sizes)."""
    return max(int(b) for b in entry.get("batch_sizes") or [1])


def plan_targets(variant: dict[str, Any], fused: bool | None) -> list[str]:
    """The plan targets a classifier variant needs: "fused", or "member:K" for each member."""
    if (fused is None and variant.get("fused")) or fused:
        return ["fused"]
    return [f"member:{m.get('fold', i)}" for i, m in enumerate(variant.get("members") or [])]


def classifier_runners(load: ClassifierLoad) -> ClassifierRunners:
    """One runner per plan this machine has for the variant; the smallest plan profile bounds the batch."""
    if load.variant.get("weights") == "int8":
        raise UsageError(f"TensorRT runs fp16/fp32 plans; the {load.precision!r} variant runs in onnxruntime")
    out = ClassifierRunners([])
    for target in plan_targets(load.variant, load.fused):
        entry = select_plan(load.manifest, target, load.precision, bundle_dir=load.bundle)
        out.files.append(entry["file"])
        out.runners.append(
            TensorRTRunner(load.bundle / entry["file"], name=target, cuda_graph=load.cuda_graph)
        )
        out.max_batch = min(out.max_batch or plan_max_batch(entry), plan_max_batch(entry))
    return out


def detector_plan(manifest: dict[str, Any], bundle: Path, precision: str) -> dict[str, Any] | None:
    """The detector's plan entry for this machine when the bundle has one that loads here, else None (the
    detector then runs in ONNX Runtime; a plan that does not load is said in one log line)."""
    for prec in dict.fromkeys((precision, "fp16", "fp32")):
        try:
            entry = select_plan(manifest, "detector", prec, bundle_dir=bundle)
        except BackendError:
            continue
        problem = plan_problem(bundle / entry["file"])
        if problem:
            log.warning("detector in ONNX Runtime: %s", problem)
            return None
        return entry
    log.info("no TensorRT plan for the detector: running it in ONNX Runtime")
    return None


# -- runner --------------------------------------------------------------------------------------
class TensorRTRunner(Runner):
    """Runs a serialised TensorRT plan.

    Args:
        path: the .plan file (verify its sha256 before; the pipeline does).
        name: a label for logs and timings.
        cuda_graph: capture a CUDA graph for batch-1 calls and replay it (cuda-python only).
        device: CUDA device index.
        max_batch: cap the batch the buffers are sized for when the profile allows more.
    """

    backend = "tensorrt"

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        cuda_graph: bool = False,
        device: int = 0,
        max_batch: int | None = None,
    ) -> None:
        super().__init__(path, name)
        self.cuda_graph = cuda_graph
        self.device = device
        self.max_batch = max_batch
        self._reset()

    def _reset(self) -> None:
        self.engine = self.context = self.stream = self.api = None
        self._specs_in: list[TensorSpec] = []
        self._specs_out: list[TensorSpec] = []
        self._dev: dict[str, int] = {}  # tensor name -> device pointer
        self._host: dict[str, int] = {}  # tensor name -> pinned host pointer
        self._capacity: dict[str, int] = {}  # tensor name -> bytes allocated
        self._graph: tuple[Any, Any] | None = None
        self._graph_shapes: dict[str, tuple[int, ...]] | None = None
        self._shapes: dict[str, tuple[int, ...]] = {}

    def _activate_impl(self) -> None:
        trt = require("tensorrt")
        api = cuda_api()
        api.set_device(self.device)
        self.api = api
        try:
            plan = self.path.read_bytes()
        except OSError as err:
            raise BackendError(f"cannot read TensorRT plan {self.path}: {err.strerror}") from None
        runtime = trt.Runtime(trt_logger(trt))
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise BackendError(
                f"TensorRT {trt.__version__} cannot load {self.path}: built for another GPU or TensorRT build"
            )
        self._runtime, self.engine = runtime, engine
        self.context = engine.create_execution_context()
        if self.context is None:
            self.engine = self._runtime = None
            raise BackendError(f"{self.name}: TensorRT could not create an execution context (GPU memory?)")
        self.stream = api.stream_create()
        try:
            self._allocate(trt)
        except Exception:
            self._deactivate_impl()
            raise

    def _allocate(self, trt: Any) -> None:
        engine, ctx = self.engine, self.context
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            spec = TensorSpec(name, tuple(d if d >= 0 else None for d in shape), dtype)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._specs_in.append(spec)
                if -1 in shape:  # dynamic: size buffers for the profile's largest shape
                    shape = tuple(int(d) for d in engine.get_tensor_profile_shape(name, 0)[2])
                    if self.max_batch and shape[0] > self.max_batch:
                        shape = (self.max_batch, *shape[1:])
                if not ctx.set_input_shape(name, shape):
                    raise BackendError(f"{self.name}: TensorRT rejected input shape {shape} for '{name}'")
                self._shapes[name] = shape
            else:
                self._specs_out.append(spec)
        for spec in self._specs_out:  # output shapes follow from the (largest) input shapes just set
            self._shapes[spec.name] = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
        for spec in self._specs_in + self._specs_out:
            nbytes = int(np.prod(self._shapes[spec.name], dtype=np.int64)) * spec.dtype.itemsize
            self._capacity[spec.name] = nbytes
            self._dev[spec.name] = self.api.malloc(nbytes)
            self._host[spec.name] = self.api.malloc_host(nbytes)
            ctx.set_tensor_address(spec.name, self._dev[spec.name])
        log.debug("%s: buffers %s", self.name, self._shapes)

    def _deactivate_impl(self) -> None:
        api = self.api
        if api is not None:
            if self.stream is not None:
                api.synchronize(self.stream)
            if self._graph is not None and api.supports_graphs:
                api.graph_destroy(*self._graph)
            for ptr in self._dev.values():
                api.free(ptr)
            for ptr in self._host.values():
                api.free_host(ptr)
            if self.stream is not None:
                api.stream_destroy(self.stream)
            if hasattr(api, "close"):
                api.close()
        # drop TensorRT objects context first, engine next (the order TensorRT needs)
        self.context = None
        self.engine = None
        self._runtime = None
        self._reset()

    def _inputs_impl(self) -> list[TensorSpec]:
        return list(self._specs_in)

    def _outputs_impl(self) -> list[TensorSpec]:
        return list(self._specs_out)

    def _set_shapes(self, feed: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        for spec in self._specs_in:
            arr = feed[spec.name]
            if arr.nbytes > self._capacity[spec.name]:
                raise BackendError(
                    f"{self.name}: input '{spec.name}' of shape {arr.shape} exceeds the plan's largest "
                    f"profile shape {self._shapes[spec.name]}"
                )
            if not self.context.set_input_shape(spec.name, tuple(arr.shape)):
                raise BackendError(
                    f"{self.name}: TensorRT rejected input shape {arr.shape} for '{spec.name}'"
                )
        return {s.name: tuple(int(d) for d in self.context.get_tensor_shape(s.name)) for s in self._specs_out}

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        api, stream = self.api, self.stream
        out_shapes = self._set_shapes(feed)
        for spec in self._specs_in:
            arr = np.ascontiguousarray(feed[spec.name])
            np.copyto(host_array(self._host[spec.name], arr.shape, spec.dtype), arr)
            api.h2d(self._dev[spec.name], self._host[spec.name], arr.nbytes, stream)
        batch_one = all(feed[s.name].shape[:1] == (1,) for s in self._specs_in)
        if self.cuda_graph and batch_one and api.supports_graphs:
            self._run_graph(out_shapes)
        elif not self.context.execute_async_v3(api.stream_handle(stream)):
            raise BackendError(f"{self.name}: TensorRT execute_async_v3 failed")
        for spec in self._specs_out:
            nbytes = int(np.prod(out_shapes[spec.name], dtype=np.int64)) * spec.dtype.itemsize
            api.d2h(self._host[spec.name], self._dev[spec.name], nbytes, stream)
        api.synchronize(stream)
        # copies: the pinned buffers are reused by the next call
        return {
            s.name: host_array(self._host[s.name], out_shapes[s.name], s.dtype).copy()
            for s in self._specs_out
        }

    def _run_graph(self, out_shapes: dict[str, tuple[int, ...]]) -> None:
        api, stream = self.api, self.stream
        shapes = {s.name: tuple(self.context.get_tensor_shape(s.name)) for s in self._specs_in}
        if self._graph is not None and self._graph_shapes != shapes:
            api.graph_destroy(*self._graph)
            self._graph = None
        if self._graph is None:
            # one plain run first flushes TensorRT's deferred work, which must not be captured
            if not self.context.execute_async_v3(api.stream_handle(stream)):
                raise BackendError(f"{self.name}: TensorRT execute_async_v3 failed")
            api.synchronize(stream)
            api.begin_capture(stream)
            ok = self.context.execute_async_v3(api.stream_handle(stream))
            graph = api.end_capture(stream)
            if not ok:
                api.graph_destroy(*graph)
                raise BackendError(f"{self.name}: TensorRT execute_async_v3 failed during graph capture")
            self._graph, self._graph_shapes = graph, shapes
        api.graph_launch(self._graph[1], stream)
