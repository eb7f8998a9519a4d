"""Thin CUDA helpers for the TensorRT runner: device buffers, pinned host buffers, streams, CUDA graphs.

cuda-python (`cuda.bindings.runtime`, or the older `cuda.cudart`) is preferred; pycuda is accepted where it
is installed instead (no CUDA graphs then). Every call checks its status and raises BackendError with the
CUDA error name. Nothing here is imported unless the TensorRT backend is chosen.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeecg._lazy import available, require
from edgeecg.errors import BackendError, MissingExtraError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceInfo:
    """The GPU a plan must match: name, compute capability ("8.7"), number of SMs and the full TensorRT version
    ("10.3.0.30": TensorRT needs major, minor, patch and build to match). `board` is the Jetson module's
    device-tree model ("" elsewhere), recorded for people: the SM count already tells AGX Orin (16), Orin NX
    (8) and Orin Nano 4 GB (4) apart, which all report "Orin", 8.7."""

    name: str
    compute_capability: str
    tensorrt: str
    sm_count: int = 0
    board: str = ""

    @property
    def sm(self) -> str:
        """ "sm_87" style tag."""
        return "sm_" + self.compute_capability.replace(".", "")


def _cudart() -> Any:
    """The cuda-python runtime module, new layout first."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        if available(name):
            return require(name)
    raise MissingExtraError("cuda-python is not installed; install it with: pip install 'edgeecg[gpu]'")


def _native_handle() -> Any:
    """cuda.bindings.utils.get_cuda_native_handle where this cuda-python has it, else None."""
    if available("cuda.bindings.utils"):
        return getattr(require("cuda.bindings.utils"), "get_cuda_native_handle", None)
    return None


class CudaPython:
    """CUDA runtime calls through cuda-python. Pointers and streams are plain ints / cudaStream_t."""

    supports_graphs = True

    def __init__(self) -> None:
        self.rt = _cudart()
        self._native = _native_handle()

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, name = self.rt.cudaGetErrorName(err)
            raise BackendError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else tuple(rest)

    def device_count(self) -> int:
        return int(self._check(self.rt.cudaGetDeviceCount()))

    def device(self, index: int = 0) -> tuple[str, str, int]:
        """(name, compute capability, SM count) of GPU `index`."""
        prop = self._check(self.rt.cudaGetDeviceProperties(index))
        name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
        return name.split("\x00")[0].strip(), f"{prop.major}.{prop.minor}", int(prop.multiProcessorCount)

    def set_device(self, index: int) -> None:
        self._check(self.rt.cudaSetDevice(index))

    def versions(self) -> tuple[int, int]:
        """(driver, runtime) CUDA versions as CUDA encodes them (12020 = 12.2)."""
        return int(self._check(self.rt.cudaDriverGetVersion())), int(
            self._check(self.rt.cudaRuntimeGetVersion())
        )

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(max(nbytes, 1))))

    def free(self, ptr: int) -> None:
        self._check(self.rt.cudaFree(ptr))

    def malloc_host(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMallocHost(max(nbytes, 1))))

    def free_host(self, ptr: int) -> None:
        self._check(self.rt.cudaFreeHost(ptr))

    def stream_create(self) -> Any:
        return self._check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking))

    def stream_handle(self, stream: Any) -> int:
        """The raw handle execute_async_v3 takes. cuda-bindings 13 deprecates `int(stream)` for
        `get_cuda_native_handle` (12.9+); `stream.getPtr()` would be the wrapper's own address, not the handle."""
        return int(self._native(stream)) if self._native else int(stream)

    def stream_destroy(self, stream: Any) -> None:
        self._check(self.rt.cudaStreamDestroy(stream))

    def synchronize(self, stream: Any) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream))

    def h2d(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def d2h(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def begin_capture(self, stream: Any) -> None:
        # thread-local: other threads' CUDA calls (e.g. a camera thread) must not break the capture
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self.rt.cudaStreamBeginCapture(stream, mode))

    def end_capture(self, stream: Any) -> tuple[Any, Any]:
        """(graph, executable graph) of the capture on `stream`."""
        graph = self._check(self.rt.cudaStreamEndCapture(stream))
        try:
            exec_ = self._check(self.rt.cudaGraphInstantiate(graph, 0))
        except BackendError:
            self.rt.cudaGraphDestroy(graph)  # nothing else holds it
            raise
        return graph, exec_

    def graph_launch(self, exec_: Any, stream: Any) -> None:
        self._check(self.rt.cudaGraphLaunch(exec_, stream))

    def graph_destroy(self, graph: Any, exec_: Any) -> None:
        self._check(self.rt.cudaGraphExecDestroy(exec_))
        self._check(self.rt.cudaGraphDestroy(graph))


class PyCuda:
    """The same calls through pycuda (no CUDA graphs). Creates its own context on the chosen device."""

    supports_graphs = False

    def __init__(self) -> None:
        self.drv = require("pycuda.driver")
        self.drv.init()
        self._ctx = None
        self._allocs: dict[int, Any] = {}

    def device_count(self) -> int:
        return int(self.drv.Device.count())

    def device(self, index: int = 0) -> tuple[str, str, int]:
        dev = self.drv.Device(index)
        major, minor = dev.compute_capability()
        sms = dev.get_attribute(self.drv.device_attribute.MULTIPROCESSOR_COUNT)
        return dev.name().strip(), f"{major}.{minor}", int(sms)

    def set_device(self, index: int) -> None:
        if self._ctx is None:
            self._ctx = self.drv.Device(index).retain_primary_context()
            self._ctx.push()

    def malloc(self, nbytes: int) -> int:
        buf = self.drv.mem_alloc(max(nbytes, 1))
        self._allocs[int(buf)] = buf
        return int(buf)

    def free(self, ptr: int) -> None:
        self._allocs.pop(ptr).free()

    def malloc_host(self, nbytes: int) -> int:
        arr = self.drv.pagelocked_empty(max(nbytes, 1), np.uint8)
        ptr = int(arr.ctypes.data)
        self._allocs[ptr] = arr
        return ptr

    def free_host(self, ptr: int) -> None:
        self._allocs.pop(ptr).base.free()

    def stream_create(self) -> Any:
        return self.drv.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def stream_destroy(self, stream: Any) -> None:
        del stream

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def h2d(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self.drv.memcpy_htod_async(dst, self._host_view(src, nbytes), stream)

    def d2h(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self.drv.memcpy_dtoh_async(self._host_view(dst, nbytes), src, stream)

    @staticmethod
    def _host_view(ptr: int, nbytes: int) -> np.ndarray:
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.pop()
            self._ctx = None


def cuda_api() -> CudaPython | PyCuda:
    """cuda-python when installed, else pycuda; MissingExtraError naming the gpu extra when neither is."""
    if available("cuda.bindings.runtime") or available("cuda.cudart"):
        return CudaPython()
    if available("pycuda.driver"):
        return PyCuda()
    raise MissingExtraError(
        "neither cuda-python nor pycuda is installed; install it with: pip install 'edgeecg[gpu]'"
    )


def host_array(ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A numpy view of `shape`/`dtype` over pinned host memory at `ptr` (no copy)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * max(nbytes, 1)).from_address(ptr))
    return raw[:nbytes].view(dtype).reshape(shape)  # [nbytes] bytes -> shape


#: Where a Jetson names its module ("NVIDIA Jetson AGX Orin Developer Kit").
DEVICE_TREE_MODEL = "/proc/device-tree/model"


def board_model(path: str = DEVICE_TREE_MODEL) -> str:
    """The device-tree model of a Jetson, "" elsewhere."""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").strip("\x00 \n")
    except OSError:
        return ""


def current_device(index: int = 0) -> DeviceInfo:
    """The GPU at `index` and the installed TensorRT version (needs the gpu extra and a GPU)."""
    trt = require("tensorrt")
    api = cuda_api()
    if api.device_count() <= index:
        raise BackendError(f"no NVIDIA GPU {index} found")
    name, cc, sms = api.device(index)
    return DeviceInfo(name, cc, str(trt.__version__), sm_count=sms, board=board_model())


#: Device nodes an NVIDIA driver creates (desktop / data-centre GPUs; Jetson's integrated GPU).
DEVICE_NODES = ("/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0")
_UNUSABLE = "an NVIDIA GPU is present"  # how gpu_status's reason starts when the GPU is there but unusable


def gpu_status() -> tuple[bool, str | None]:
    """(whether a GPU can be used here, why not). A GPU the CUDA runtime cannot talk to (the usual case: the
    cuda-python wheel links a newer CUDA runtime than the driver supports, cudaErrorInsufficientDriver) is
    told apart from no GPU at all, so `auto` falling back to ONNX Runtime can say why."""
    nodes = [n for n in DEVICE_NODES if os.path.exists(n)]
    try:
        count = cuda_api().device_count()
    except MissingExtraError as e:
        return False, str(e) if nodes else "no NVIDIA GPU here"
    except Exception as e:  # the driver, the library or the device refused
        if nodes:
            return False, (
                f"{_UNUSABLE} ({nodes[0]}) but the CUDA runtime cannot use it ({e}); a CUDA 12 "
                "driver (JetPack 6, many T4 hosts) needs cuda-python 12: pip install 'edgeecg[gpu]' pins it, "
                "'edgeecg[gpu-cu13]' is for CUDA 13 drivers"
            )
        return False, "no NVIDIA GPU here"
    return (count > 0), (None if count > 0 else "the CUDA runtime sees no GPU")


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def cuda_versions() -> dict[str, str | None]:
    """{"driver", "runtime"}: the CUDA versions the driver supports and cuda-python links, e.g. "12.2" and
    "13.0" (the pair that explains cudaErrorInsufficientDriver); None where unknown. Never raises."""
    try:
        api = cuda_api()
        driver, runtime = api.versions() if hasattr(api, "versions") else (0, 0)
    except Exception:  # no bindings, or a driver too old to answer
        return {"driver": None, "runtime": None}
    return {
        "driver": _cuda_version(driver) if driver else None,
        "runtime": _cuda_version(runtime) if runtime else None,
    }


_said: set[str] = set()


def gpu_present() -> bool:
    """True when cuda-python or pycuda is installed and sees at least one GPU (never raises). A GPU that is
    there but cannot be used is said once, in one log line."""
    ok, why = gpu_status()
    if not ok and why and why.startswith(_UNUSABLE) and why not in _said:
        _said.add(why)
        log.warning("%s", why)
    return ok
