"""A stand-in for the `tensorrt` module and the CUDA calls, for testing the logic around them on CPU.

TensorRT cannot be installed on these machines. The fake keeps to the slice of the TensorRT 10/11 API that
edgeecg calls, and its "plan" is real compute: a small JSON naming an ONNX model that ONNX Runtime runs. Device
memory is host memory and the copies are memmoves, so the runner's buffers, shapes, chunking and CUDA graph
bookkeeping all run for real. Nothing here stands in for what can run here (ONNX Runtime, numpy).
"""

from __future__ import annotations

import ctypes
import json
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgeecg.backends.cuda import DeviceInfo

VERSION = "10.3.0.30"
MAGIC = b"FAKEPLAN"
DEVICE = DeviceInfo("Orin", "8.7", VERSION, sm_count=8, board="NVIDIA Jetson Orin NX Engine Reference")


def write_plan(path: Path, onnx: Path, max_batch: int = 4, tensorrt: str = VERSION) -> Path:
    """A fake plan: ONNX Runtime runs `onnx` for batches 1..max_batch, and only TensorRT `tensorrt` loads it."""
    spec = {"onnx": str(Path(onnx).resolve()), "max_batch": max_batch, "tensorrt": tensorrt}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MAGIC + json.dumps(spec).encode())
    return path


class Api:
    """The CUDA calls TensorRTRunner makes, on host memory; counts what a leak check needs."""

    supports_graphs = True

    def __init__(self) -> None:
        self.buffers: dict[int, ctypes.Array] = {}
        self.streams = 0
        self.capturing = False
        self.captured: list = []
        self.graphs_made = self.graphs_destroyed = self.launches = 0
        self.fail_capture = False

    def set_device(self, index: int) -> None:
        pass

    def _alloc(self, nbytes: int) -> int:
        buf = ctypes.create_string_buffer(max(nbytes, 1))
        self.buffers[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    malloc = malloc_host = _alloc

    def free(self, ptr: int) -> None:
        del self.buffers[ptr]

    free_host = free

    def stream_create(self) -> object:
        self.streams += 1
        return object()

    def stream_handle(self, stream: object) -> int:
        return id(stream)

    def stream_destroy(self, stream: object) -> None:
        self.streams -= 1

    def synchronize(self, stream: object) -> None:
        pass

    def h2d(self, dst: int, src: int, nbytes: int, stream: object) -> None:
        ctypes.memmove(dst, src, nbytes)

    d2h = h2d

    def begin_capture(self, stream: object) -> None:
        self.capturing, self.captured = True, []

    def end_capture(self, stream: object) -> tuple:
        self.capturing = False
        self.graphs_made += 1
        return ("graph", list(self.captured)), ("exec", list(self.captured))

    def graph_launch(self, exec_: tuple, stream: object) -> None:
        self.launches += 1
        for work in exec_[1]:
            work()

    def graph_destroy(self, graph: tuple, exec_: tuple) -> None:
        self.graphs_destroyed += 1


class Engine:
    """A deserialised fake plan: one dynamic-batch input, the ONNX model's outputs."""

    def __init__(self, spec: dict, api: Api, trt: types.ModuleType) -> None:
        self.session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
        self.max_batch, self.api, self.trt = int(spec["max_batch"]), api, trt
        self.ins = {i.name: i.shape for i in self.session.get_inputs()}
        self.outs = {
            o.name: [d if isinstance(d, int) else -1 for d in o.shape] for o in self.session.get_outputs()
        }
        self.refuse_context = False

    @property
    def num_io_tensors(self) -> int:
        return len(self.ins) + len(self.outs)

    def get_tensor_name(self, i: int) -> str:
        return [*self.ins, *self.outs][i]

    def get_tensor_mode(self, name: str):
        return self.trt.TensorIOMode.INPUT if name in self.ins else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str):
        return np.float32

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self.ins:
            return (-1, *self.ins[name][1:])
        return (-1, *self.outs[name][1:])

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple:
        rest = tuple(self.ins[name][1:])
        return (1, *rest), (self.max_batch, *rest), (self.max_batch, *rest)

    def create_execution_context(self):
        return None if self.refuse_context else Context(self)


class Context:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple] = {}
        self.addr: dict[str, int] = {}
        self.reject_shapes = False

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
        if self.reject_shapes or not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self.engine.ins:
            return self.shapes[name]
        batch = next(iter(self.shapes.values()))[0]
        return (batch, *self.engine.outs[name][1:])

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addr[name] = ptr

    def _view(self, name: str, shape: tuple) -> np.ndarray:
        n = int(np.prod(shape)) * 4
        return np.frombuffer((ctypes.c_uint8 * n).from_address(self.addr[name]), np.float32).reshape(shape)

    def _run(self) -> None:
        feed = {n: self._view(n, s).copy() for n, s in self.shapes.items()}
        for name, value in zip(self.engine.outs, self.engine.session.run(None, feed), strict=True):
            self._view(name, value.shape)[...] = value

    def execute_async_v3(self, stream: int) -> bool:
        api = self.engine.api
        if api.capturing:
            if api.fail_capture:
                return False
            api.captured.append(self._run)  # replayed by graph_launch
        else:
            self._run()
        return True


def module(api: Api, version: str = VERSION) -> types.ModuleType:
    """A fake `tensorrt` module whose Runtime loads fake plans of `version` only."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.loggers = []

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            trt.loggers.append(self)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes):
            if not data.startswith(MAGIC):
                return None
            spec = json.loads(data[len(MAGIC) :])
            return Engine(spec, api, trt) if spec["tensorrt"] == version else None

    trt.Logger, trt.Runtime = Logger, Runtime
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.nptype = np.dtype
    return trt
