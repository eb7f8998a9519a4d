"""TensorRT plans from ONNX: strongly typed networks, one optimisation profile, a persistent timing cache.

TensorRT 11 removed `BuilderFlag.FP16` (and per-layer precision constraints); a STRONGLY_TYPED network takes
every tensor's type from the ONNX instead, so the mixed FP16 ONNX of `edgeecg.export.fp16` decides the
precision (FP32 islands included). The same code builds on TensorRT 10.x (JetPack 6 ships 10.3).

Plans and timing caches are only valid on the GPU model and TensorRT version that built them, so both are
keyed by GPU name, compute capability and TensorRT version (DESIGN.md section 6).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg._lazy import require
from edgeecg.errors import BackendError, EdgeECGError

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 1024


@dataclass(frozen=True)
class TrtTarget:
    """The GPU and TensorRT version a plan is built for (a plan is valid only there)."""

    gpu: str
    compute_capability: str
    tensorrt: str

    @property
    def key(self) -> str:
        """A file-name-safe key, e.g. 'tesla-t4-sm75-trt10.3.0'."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-")
        return f"{slug}-sm{self.compute_capability.replace('.', '')}-trt{self.tensorrt}"


def _gpu_from_torch() -> tuple[str, str] | None:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def _gpu_from_cuda_python() -> tuple[str, str] | None:
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415
    except ImportError:
        try:
            from cuda import cudart  # noqa: PLC0415  (cuda-python < 12.6)
        except ImportError:
            return None
    err, prop = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        return None
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return name.rstrip("\x00"), f"{prop.major}.{prop.minor}"


def _gpu_from_nvidia_smi() -> tuple[str, str] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    return (parts[0], parts[1]) if len(parts) == 2 else None


def detect_target() -> TrtTarget:
    """The local GPU and TensorRT version.

    Raises:
        MissingExtraError: tensorrt is not installed.
        BackendError: no NVIDIA GPU is visible.
    """
    trt = require("tensorrt")
    try:  # the runtime matches plans against exactly this description, so ask it first
        from edgeecg.backends.cuda import current_device  # noqa: PLC0415

        dev = current_device()
        return TrtTarget(gpu=dev.name, compute_capability=dev.compute_capability, tensorrt=dev.tensorrt)
    except (ImportError, EdgeECGError) as err:
        log.debug("edgeecg.backends.cuda cannot describe the GPU (%s); trying torch / cuda-python", err)
    gpu = _gpu_from_torch() or _gpu_from_cuda_python() or _gpu_from_nvidia_smi()
    if gpu is None:
        raise BackendError("no NVIDIA GPU visible (TensorRT plans are built on the GPU that will run them)")
    return TrtTarget(gpu=gpu[0], compute_capability=gpu[1], tensorrt=str(trt.__version__))


def default_cache_dir() -> Path:
    """Where timing caches live between builds: $EDGEECG_CACHE or ~/.cache/edgeecg, under tensorrt/."""
    base = os.environ.get("EDGEECG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeecg"
    )
    return Path(base) / "tensorrt"


def profile_shapes(batch_sizes: list[int]) -> tuple[int, int, int]:
    """(min, opt, max) batch for one optimisation profile: smallest, median, largest of the requested sizes."""
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise BackendError(f"batch sizes must be positive integers, got {batch_sizes}")
    return sizes[0], sizes[len(sizes) // 2], sizes[-1]


def input_profile(
    shape: list[int], batch: tuple[int, int, int], max_hw: tuple[int, int] | None = None, stride: int = 32
) -> tuple[list[int], list[int], list[int]] | None:
    """(min, opt, max) shapes of one input for the optimisation profile, or None when it is fully static.

    A dynamic batch axis spans `batch` (min, opt, max); a dynamic height/width of an NCHW input (the rect
    letterbox detector) spans (stride, stride) to `max_hw`, optimised for `max_hw`.
    """
    low, high = list(shape[1:]), list(shape[1:])
    if len(shape) == 4 and max_hw is not None and (shape[2] < 0 or shape[3] < 0):
        low[1:], high[1:] = [stride, stride], [int(max_hw[0]), int(max_hw[1])]
    if any(d < 0 for d in low + high):
        raise BackendError(f"input {shape} is dynamic beyond the batch axis")
    if shape[0] >= 0 and low == high:
        return None
    b = batch if shape[0] < 0 else (shape[0],) * 3
    return [b[0], *low], [b[1], *high], [b[2], *high]


def build_plan(
    onnx_path: str | Path,
    plan_path: str | Path,
    batch_sizes: list[int],
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    cache_dir: str | Path | None = None,
    target: TrtTarget | None = None,
    max_hw: tuple[int, int] | None = None,
    stride: int = 32,
) -> dict[str, Any]:
    """Build a strongly typed TensorRT plan from an ONNX model.

    Args:
        onnx_path: the ONNX model (its tensor types decide the precision: use the mixed FP16 ONNX for FP16).
        plan_path: where the serialised plan goes.
        batch_sizes: batch sizes the plan must run; inputs with a dynamic batch axis get one profile
            (min, opt, max) = (smallest, median, largest). Fixed-batch inputs keep their shape.
        workspace_mb: workspace memory pool limit in MiB.
        cache_dir: directory of persistent timing caches (default `default_cache_dir()`).
        target: the local GPU/TensorRT (detected when None).
        max_hw: for an NCHW input with a dynamic height and width (the detector): the largest (h, w); the
            profile then spans (stride, stride) to max_hw, optimised for max_hw.
        stride: the smallest height/width step of such an input.

    Returns:
        {"gpu", "compute_capability", "tensorrt", "batch_sizes", "build_s", "timing_cache"}.

    Raises:
        BackendError: parsing or building failed (TensorRT's first errors are in the message).
    """
    trt = require("tensorrt")
    target = target or detect_target()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)

    lo, opt, hi = profile_shapes(batch_sizes)
    profile = builder.create_optimization_profile()
    dynamic = False
    built_sizes: list[int] = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        try:
            shapes = input_profile(shape, (lo, opt, hi), max_hw, stride)
        except BackendError as err:
            raise BackendError(f"{onnx_path.name}: {tensor.name}: {err}") from None
        if shapes is not None:
            dynamic = True
            profile.set_shape(tensor.name, *shapes)
        if shape[0] >= 0:
            built_sizes = [shape[0]]
    if dynamic:
        config.add_optimization_profile(profile)
    if not built_sizes:  # a dynamic batch axis
        built_sizes = sorted({int(b) for b in batch_sizes})

    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_file = cache_dir / f"timing-{target.key}.cache"
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(
            f"TensorRT could not build a plan from {onnx_path.name} (see the TensorRT log above)"
        )
    build_s = time.perf_counter() - start
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(serialized))

    # Persist the (grown) timing cache atomically, so concurrent builds never read half a file.
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    os.replace(tmp, cache_file)
    log.info("built %s in %.1f s (timing cache %s)", plan_path.name, build_s, cache_file)
    return {
        "gpu": target.gpu,
        "compute_capability": target.compute_capability,
        "tensorrt": target.tensorrt,
        "batch_sizes": built_sizes,
        "build_s": round(build_s, 2),
        "timing_cache": cache_file.name,
    }


class PlanExecutor:
    """Runs a plan for parity checks, with device buffers from torch (the export extra has torch).

    Args:
        plan_path: the serialised plan.
    """

    def __init__(self, plan_path: str | Path) -> None:
        trt = require("tensorrt")
        torch = require("torch")
        if not torch.cuda.is_available():
            raise BackendError("running a TensorRT plan needs a CUDA-enabled torch for parity checks")
        self._trt, self._torch = trt, torch
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
        if self.engine is None:
            raise BackendError(
                f"TensorRT cannot deserialise {Path(plan_path).name} (built for another GPU/TRT?)"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        first = self.inputs[0]
        batch = int(self.engine.get_tensor_shape(first)[0])
        if batch < 0:  # dynamic batch: the profile's max shape bounds it
            batch = int(self.engine.get_tensor_profile_shape(first, 0)[2][0])
        self.max_batch = max(1, batch)

    def _torch_dtype(self, name: str) -> Any:
        np_dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
        return {np.dtype(np.float32): self._torch.float32, np.dtype(np.float16): self._torch.float16}.get(
            np_dtype, self._torch.float32
        )

    def _run_chunk(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        name = self.inputs[0]
        x = torch.from_numpy(np.ascontiguousarray(batch)).to("cuda", self._torch_dtype(name))
        self.context.set_input_shape(name, tuple(x.shape))
        self.context.set_tensor_address(name, x.data_ptr())
        outs = {}
        for out in self.outputs:
            shape = tuple(self.context.get_tensor_shape(out))
            outs[out] = torch.empty(shape, dtype=self._torch_dtype(out), device="cuda")
            self.context.set_tensor_address(out, outs[out].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError("TensorRT execute_async_v3 failed")
        stream.synchronize()
        return {k: v.float().cpu().numpy() for k, v in outs.items()}

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run a float32 NCHW batch of any size (split into chunks the plan accepts); outputs as float32."""
        parts = [self._run_chunk(batch[i : i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in self.outputs}
