"""The logic around TensorRT, on CPU: plan choice and fallback, batch limits, CUDA graphs, leaks.

TensorRT cannot run here, so `tensorrt` and the CUDA calls are the fakes of fake_trt.py (whose plans run
their ONNX model in ONNX Runtime); everything else is the real runner, pipeline and bundle code.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import fake_trt  # tests/backends/fake_trt.py (pytest puts this folder on the path)
import numpy as np
import pytest

import edgeecg.backends.tensorrt as trt_backend
from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.backends.tensorrt import TensorRTRunner, plan_problem, tensorrt_usable
from edgeecg.bundle import sha256_file
from edgeecg.errors import BackendError
from edgeecg.pipeline import Pipeline

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_tiny"


@pytest.fixture
def gpu(monkeypatch):
    """This process sees a fake Orin NX with TensorRT 10.3.0.30; returns the fake CUDA api."""
    api = fake_trt.Api()
    trt = fake_trt.module(api)
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", trt)
    monkeypatch.setattr(trt_backend, "cuda_api", lambda: api)
    monkeypatch.setattr(trt_backend, "gpu_present", lambda: True)
    monkeypatch.setattr(trt_backend, "current_device", lambda index=0: fake_trt.DEVICE)
    monkeypatch.setattr(trt_backend, "_LOGGER", None)
    api.trt = trt
    return api


def _entry(file: str, target: str, bundle: Path, max_batch: int, precision: str = "fp32", **kw) -> dict:
    dev = fake_trt.DEVICE
    return {
        "file": file,
        "sha256": sha256_file(bundle / file),
        "target": target,
        "precision": precision,
        "gpu": dev.name,
        "compute_capability": dev.compute_capability,
        "sm_count": dev.sm_count,
        "tensorrt": dev.tensorrt,
        "batch_sizes": [1, max_batch] if max_batch > 1 else [1],
        **kw,
    }


def plan_bundle(tmp_path: Path, tensorrt: str = fake_trt.VERSION, detector: bool = True) -> Path:
    """bundle_tiny with fake plans for its fused ensemble (batch <= 4) and its detector."""
    out = tmp_path / "bundle"
    shutil.copytree(BUNDLE, out)
    fake_trt.write_plan(out / "plans" / "fused.plan", out / "ensemble.onnx", 4, tensorrt)
    engines = [_entry("plans/fused.plan", "fused", out, 4)]
    if detector:
        fake_trt.write_plan(out / "plans" / "detector.plan", out / "detector.onnx", 1, tensorrt)
        engines.append(_entry("plans/detector.plan", "detector", out, 1))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["engines"] = engines
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.mark.parametrize("graph", [False, True])
def test_runner_matches_onnxruntime_and_frees_everything(gpu, tmp_path, graph):
    plan = fake_trt.write_plan(tmp_path / "ens.plan", BUNDLE / "ensemble.onnx", max_batch=4)
    rng = np.random.default_rng(0)
    with (
        TensorRTRunner(plan, cuda_graph=graph) as trt_r,
        OnnxRuntimeRunner(BUNDLE / "ensemble.onnx") as ort_r,
    ):
        for batch in (1, 3, 1, 4, 1, 2):
            x = rng.standard_normal((batch, 3, 64, 128)).astype(np.float32)
            got, want = trt_r.infer(x), ort_r.infer(x)
            np.testing.assert_allclose(got["member_probs"], want["member_probs"], atol=1e-6)
            np.testing.assert_allclose(got["prob"], want["prob"], atol=1e-6)
        with pytest.raises(BackendError, match="largest profile shape"):
            trt_r.infer(np.zeros((5, 3, 64, 128), np.float32))
    # one graph for batch 1, reused by all three batch-1 calls; every buffer, stream and graph freed
    assert (gpu.graphs_made, gpu.launches) == ((1, 3) if graph else (0, 0))
    assert gpu.graphs_destroyed == gpu.graphs_made
    assert not gpu.buffers and gpu.streams == 0
    assert len(gpu.trt.loggers) == 1, "one TensorRT logger per process"


def test_failed_capture_destroys_its_graph_and_is_tried_again(gpu, tmp_path):
    plan = fake_trt.write_plan(tmp_path / "ens.plan", BUNDLE / "ensemble.onnx", max_batch=2)
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 128)).astype(np.float32)
    with TensorRTRunner(plan, cuda_graph=True) as runner:
        gpu.fail_capture = True
        with pytest.raises(BackendError, match="during graph capture"):
            runner.infer(x)
        assert gpu.graphs_destroyed == gpu.graphs_made == 1
        gpu.fail_capture = False
        with OnnxRuntimeRunner(BUNDLE / "ensemble.onnx") as ort_r:
            np.testing.assert_allclose(runner.infer(x)["prob"], ort_r.infer(x)["prob"], atol=1e-6)
        assert gpu.graphs_made == 2 and gpu.launches == 1
    assert gpu.graphs_destroyed == 2 and not gpu.buffers


def test_no_execution_context_is_a_clear_error(gpu, tmp_path, monkeypatch):
    plan = fake_trt.write_plan(tmp_path / "ens.plan", BUNDLE / "ensemble.onnx")
    monkeypatch.setattr(fake_trt.Engine, "create_execution_context", lambda self: None)
    with pytest.raises(BackendError, match="could not create an execution context"), TensorRTRunner(plan):
        pass
    assert not gpu.buffers and gpu.streams == 0


def test_a_rejected_profile_shape_is_an_error_not_garbage(gpu, tmp_path, monkeypatch):
    plan = fake_trt.write_plan(tmp_path / "ens.plan", BUNDLE / "ensemble.onnx")
    monkeypatch.setattr(fake_trt.Context, "set_input_shape", lambda self, name, shape: False)
    with pytest.raises(BackendError, match="rejected input shape"), TensorRTRunner(plan):
        pass
    assert not gpu.buffers and gpu.streams == 0


def test_plan_of_another_tensorrt_build_does_not_load(gpu, tmp_path):
    good = fake_trt.write_plan(tmp_path / "good.plan", BUNDLE / "fold0.onnx")
    other = fake_trt.write_plan(tmp_path / "other.plan", BUNDLE / "fold0.onnx", tensorrt="10.3.0.26")
    assert plan_problem(good) is None
    problem = plan_problem(other)
    assert "cannot load other.plan" in problem and "\n" not in problem
    with pytest.raises(BackendError, match="built for another GPU or TensorRT build"), TensorRTRunner(other):
        pass


def test_auto_uses_plans_that_load_and_falls_back_from_ones_that_do_not(gpu, tmp_path, caplog):
    good = plan_bundle(tmp_path / "good")
    manifest = json.loads((good / "manifest.json").read_text())
    assert tensorrt_usable(manifest, ["fused"], "fp32", good)
    # the manifest claims this machine's key, but the plan was made by another TensorRT build: a null engine
    stale = plan_bundle(tmp_path / "stale", tensorrt="10.3.0.26")
    manifest = json.loads((stale / "manifest.json").read_text())
    with caplog.at_level(logging.WARNING, logger="edgeecg.backends.tensorrt"):
        assert not tensorrt_usable(manifest, ["fused"], "fp32", stale)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "ONNX Runtime instead" in lines[0] and "cannot load fused.plan" in lines[0]


def _photo() -> np.ndarray:
    img = cv2.imread(str(Path(__file__).resolve().parents[2] / "examples" / "photo_mi.jpg"))
    assert img is not None
    return img


def test_pipeline_on_tensorrt_plans_agrees_with_onnxruntime_and_clamps_its_batch(gpu, tmp_path):
    bundle = plan_bundle(tmp_path)
    img = _photo()
    with Pipeline.from_bundle(bundle, backend="auto", batch_size=8) as trt_p:
        assert trt_p.backend == "tensorrt"
        assert trt_p.batch_size == 4, "the fused plan's profile takes at most 4"
        assert {type(r) for r in trt_p.ensemble.runners} == {TensorRTRunner}
        assert any(isinstance(r, TensorRTRunner) and r.name == "detector" for r in trt_p._extra)
        got = trt_p.run([img] * 6, ["a", "b", "c", "d", "e", "f"])
    with Pipeline.from_bundle(bundle, backend="onnxruntime", batch_size=8) as ort_p:
        want = ort_p.run([img], ["a"])[0]
    assert len(got) == 6
    assert not want.rejected and want.probabilities
    for r in got:
        assert r.box == want.box and r.backend == "tensorrt"
        assert r.probabilities == pytest.approx(want.probabilities, abs=1e-5)


def test_pipeline_auto_falls_back_when_a_plan_does_not_load(gpu, tmp_path):
    bundle = plan_bundle(tmp_path, tensorrt="10.3.0.26")
    with Pipeline.from_bundle(bundle, backend="auto") as p:
        assert p.backend == "onnxruntime"
        assert not any(isinstance(r, TensorRTRunner) for r in [*p.ensemble.runners, *p._extra])


def test_detector_plan_that_does_not_load_runs_in_onnxruntime(gpu, tmp_path):
    bundle = plan_bundle(tmp_path)
    fake_trt.write_plan(bundle / "plans" / "detector.plan", bundle / "detector.onnx", 1, "9.9.9.9")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["engines"][1]["sha256"] = sha256_file(bundle / "plans" / "detector.plan")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with Pipeline.from_bundle(bundle, backend="tensorrt") as p:
        det = next(r for r in p._extra if r.name == "detector")
        assert isinstance(det, OnnxRuntimeRunner)
        assert p.run([_photo()], ["a"])[0].probabilities is not None


def test_run_plan_chunks_by_the_profile_and_frees_everything(gpu, tmp_path):
    """The export's parity run goes through the runtime's runner (no torch): any batch, in chunks."""
    from edgeecg.export.tensorrt_build import run_plan

    plan = fake_trt.write_plan(tmp_path / "m.plan", BUNDLE / "fold0.onnx", max_batch=4)
    x = np.random.default_rng(2).standard_normal((11, 3, 64, 128)).astype(np.float32)
    got = run_plan(plan, x, 4)["logits"]
    with OnnxRuntimeRunner(BUNDLE / "fold0.onnx") as ort_r:
        np.testing.assert_allclose(got, ort_r.infer(x)["logits"], atol=1e-5)
    assert got.dtype == np.float32 and not gpu.buffers and gpu.streams == 0
