"""Telling "no GPU" from "a GPU the CUDA runtime cannot use" (a cuda-python newer than the driver).

cuda-python cannot run on these machines, so the runtime is replaced by a stand-in that fails the way
cuda-python 13 fails on a CUDA 12 driver; the device node is a file standing in for /dev/nvidia0."""

from __future__ import annotations

import logging

import pytest

import edgeecg.backends.cuda as cuda
from edgeecg.errors import BackendError, MissingExtraError


class _OldDriver:
    def device_count(self) -> int:
        raise BackendError("CUDA error cudaErrorInsufficientDriver")


def test_no_device_node_and_no_library_is_no_gpu(monkeypatch, tmp_path):
    monkeypatch.setattr(cuda, "DEVICE_NODES", (str(tmp_path / "nvidia0"),))
    ok, why = cuda.gpu_status()
    assert not ok and why == "no NVIDIA GPU here"
    assert cuda.gpu_present() is False


def test_a_gpu_the_runtime_cannot_use_is_said_once(monkeypatch, tmp_path, caplog):
    node = tmp_path / "nvidia0"
    node.write_text("")
    monkeypatch.setattr(cuda, "DEVICE_NODES", (str(node),))
    monkeypatch.setattr(cuda, "cuda_api", lambda: _OldDriver())
    monkeypatch.setattr(cuda, "_said", set())
    ok, why = cuda.gpu_status()
    assert not ok and "present" in why and "cudaErrorInsufficientDriver" in why and "edgeecg[gpu]" in why
    with caplog.at_level(logging.WARNING, logger="edgeecg.backends.cuda"):
        assert cuda.gpu_present() is False
        assert cuda.gpu_present() is False
    said = [r for r in caplog.records if "cannot use it" in r.getMessage()]
    assert len(said) == 1  # one line, not one per call


def test_a_gpu_without_cuda_python_names_the_extra(monkeypatch, tmp_path):
    node = tmp_path / "nvidia0"
    node.write_text("")
    monkeypatch.setattr(cuda, "DEVICE_NODES", (str(node),))

    def missing():
        raise MissingExtraError(
            "neither cuda-python nor pycuda is installed; install it with: pip install 'edgeecg[gpu]'"
        )

    monkeypatch.setattr(cuda, "cuda_api", missing)
    ok, why = cuda.gpu_status()
    assert not ok and "edgeecg[gpu]" in why


def test_stream_handle_is_the_handle_not_the_wrappers_address():
    """execute_async_v3 takes the stream's handle; getPtr() would give the Python wrapper's own address."""
    runtime = pytest.importorskip("cuda.bindings.runtime")
    from edgeecg.backends.cuda import CudaPython

    assert CudaPython().stream_handle(runtime.cudaStream_t(4321)) == 4321
