"""TensorRT plans from ONNX: strongly typed networks, one optimisation profile, a persistent timing cache.

TensorRT 11 removed `BuilderFlag.FP16` (and per-layer precision constraints); a STRONGLY_TYPED network takes
every tensor's type from the ONNX instead, so the mixed FP16 ONNX of `edgeecg.export.fp16` decides the
precision (FP32 islands included). The same code builds on TensorRT 10.x (JetPack 6 ships 10.3).

Plans and timing caches are only valid on the GPU model and TensorRT build that made them, so both are keyed
by GPU name, compute capability, SM count and the full TensorRT version (docs/design.md section 3).
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg._lazy import require
from edgeecg.backends.cuda import current_device, gpu_status
from edgeecg.backends.tensorrt import TensorRTRunner, trt_logger
from edgeecg.errors import BackendError

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 1024


@dataclass(frozen=True)
class TrtTarget:
    """The GPU and TensorRT build a plan is made for (a plan is valid only there)."""

    gpu: str
    compute_capability: str
    tensorrt: str
    sm_count: int = 0
    board: str = ""

    @property
    def key(self) -> str:
        """A file-name-safe key, e.g. 'tesla-t4-sm75-40sms-trt10.3.0.30'. It holds the SM count because AGX
        Orin, Orin NX and Orin Nano all report "Orin" 8.7, and a plan built on one fails on another."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-")
        return f"{slug}-sm{self.compute_capability.replace('.', '')}-{self.sm_count}sms-trt{self.tensorrt}"

    def as_entry(self) -> dict[str, Any]:
        """The manifest fields a plan is matched by (and the board, for people)."""
        d = {"gpu": self.gpu, "compute_capability": self.compute_capability, "sm_count": self.sm_count}
        return {**d, "tensorrt": self.tensorrt, **({"board": self.board} if self.board else {})}


def detect_target() -> TrtTarget:
    """The local GPU and TensorRT build, described exactly as the runtime matches plans against them.

    Raises:
        MissingExtraError: tensorrt or cuda-python is not installed (the gpu extra).
        BackendError: no NVIDIA GPU is usable.
    """
    require("tensorrt")

    ok, why = gpu_status()
    if not ok:
        raise BackendError(why or "no NVIDIA GPU here")
    dev = current_device()
    return TrtTarget(dev.name, dev.compute_capability, dev.tensorrt, dev.sm_count, dev.board)


def default_cache_dir() -> Path:
    """Where timing caches live between builds: $EDGEECG_CACHE or ~/.cache/edgeecg, under tensorrt/."""
    base = os.environ.get("EDGEECG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeecg"
    )
    return Path(base) / "tensorrt"


def profile_shapes(batch_sizes: list[int]) -> tuple[int, int, int]:
    """(min, opt, max) batch for one optimisation profile: 1, the median and the largest requested size.

    The minimum is always 1, so the remainder of a batch (3 images with --batch-sizes 4,8) still runs.
    """
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise BackendError(f"batch sizes must be positive integers, got {batch_sizes}")
    return 1, sizes[len(sizes) // 2], sizes[-1]


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
            (min, opt, max) = (1, median, largest). Fixed-batch inputs keep their shape.
        workspace_mb: workspace memory pool limit in MiB.
        cache_dir: directory of persistent timing caches (default `default_cache_dir()`).
        target: the local GPU/TensorRT (detected when None).
        max_hw: for an NCHW input with a dynamic height and width (the detector): the largest (h, w); the
            profile then spans (stride, stride) to max_hw, optimised for max_hw.
        stride: the smallest height/width step of such an input.

    Returns:
        {"gpu", "compute_capability", "sm_count", "tensorrt", ["board",] "batch_sizes", "build_s",
        "timing_cache"}.

    Raises:
        BackendError: parsing or building failed (TensorRT's first errors are in the message).
    """
    trt = require("tensorrt")
    target = target or detect_target()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    logger = trt_logger(trt)
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
    use_timing_cache(config, cache_file)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(
            f"TensorRT could not build a plan from {onnx_path.name} (see the TensorRT log above)"
        )
    build_s = time.perf_counter() - start
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(serialized))

    saved = save_timing_cache(config, cache_file)
    log.info(
        "built %s in %.1f s (timing cache %s)", plan_path.name, build_s, cache_file if saved else "not saved"
    )
    return {
        **target.as_entry(),
        "batch_sizes": built_sizes,
        "build_s": round(build_s, 2),
        "timing_cache": cache_file.name if saved else None,
    }


def use_timing_cache(config: Any, cache_file: Path) -> None:
    """Give the builder the timing cache in `cache_file`, or an empty one when there is none or TensorRT
    refuses it (set_timing_cache returns False when the cache's device or version differs)."""
    data = b""
    if cache_file.is_file():
        try:
            data = cache_file.read_bytes()
        except OSError as err:
            log.warning("timing cache %s unreadable (%s): starting an empty one", cache_file, err.strerror)
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    if data:
        log.warning("timing cache %s does not fit this GPU/TensorRT: starting an empty one", cache_file.name)
        cache = config.create_timing_cache(b"")
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return
    log.warning("TensorRT took no timing cache: this build times every layer afresh")


def save_timing_cache(config: Any, cache_file: Path) -> bool:
    """Persist the builder's (grown) timing cache atomically, so concurrent builds never read half a file.
    False, with one warning, when TensorRT has none to give or cannot serialise it: the plan is still good."""
    try:
        cache = config.get_timing_cache()
        data = cache.serialize() if cache is not None else None
    except Exception as err:  # TensorRT raises its own types; the plan is already written
        log.warning("timing cache not saved: %s", err)
        return False
    if data is None:
        log.warning("timing cache not saved: TensorRT returned none")
        return False
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, cache_file)
    return True


def run_plan(plan_path: str | Path, batch: np.ndarray, max_batch: int) -> dict[str, np.ndarray]:
    """Run a float32 NCHW batch of any size through a plan with the runtime's own cuda-python runner (so
    building and checking plans needs no torch), in chunks of at most `max_batch`; outputs as float32."""

    parts = []
    with TensorRTRunner(plan_path, name=Path(plan_path).name, max_batch=max_batch) as runner:
        dtype = runner.inputs[0].dtype
        for i in range(0, len(batch), max_batch):
            out = runner.infer(np.ascontiguousarray(batch[i : i + max_batch], dtype=dtype))
            parts.append({k: v.astype(np.float32) for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
