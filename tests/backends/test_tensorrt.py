"""TensorRT backend: plan selection and error messages on CPU; the runner itself on a GPU with TensorRT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeecg._lazy import available
from edgeecg.backends import resolve_backend, runner_class
from edgeecg.backends.cuda import DeviceInfo
from edgeecg.backends.tensorrt import TensorRTRunner, plan_matches, select_plan, tensorrt_usable
from edgeecg.errors import BackendError, MissingExtraError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUNDLE = FIXTURES / "bundle_tiny"

T4 = DeviceInfo("Tesla T4", "7.5", "10.3.0.26", sm_count=40)
ORIN = DeviceInfo("Orin", "8.7", "10.3.0.30", sm_count=16, board="NVIDIA Jetson AGX Orin Developer Kit")


def engine(**kw) -> dict:
    base = {
        "file": "plans/x.plan",
        "sha256": "0" * 64,
        "target": "fused",
        "gpu": "Tesla T4",
        "compute_capability": "7.5",
        "sm_count": 40,
        "tensorrt": "10.3.0.26",
        "precision": "fp16",
        "batch_sizes": [1, 8],
    }
    return {**base, **kw}


def test_select_plan_picks_the_matching_key():
    manifest = {
        "engines": [
            engine(file="a.plan", precision="fp32"),
            engine(file="b.plan", gpu="Orin", compute_capability="8.7", sm_count=16, tensorrt="10.3.0.30"),
            engine(file="c.plan"),
            engine(file="d.plan", target="member:0"),
        ]
    }
    assert select_plan(manifest, "fused", "fp16", T4)["file"] == "c.plan"
    assert select_plan(manifest, "fused", "fp16", ORIN)["file"] == "b.plan"
    assert select_plan(manifest, "fused", "fp32", T4)["file"] == "a.plan"
    assert select_plan(manifest, "member:0", "fp16", T4)["file"] == "d.plan"


def test_gpu_name_match_ignores_case_and_vendor_prefix():
    assert plan_matches(engine(gpu="NVIDIA  tesla T4"), T4, "fused", "fp16")


@pytest.mark.parametrize(
    "change",
    [
        {"tensorrt": "10.4.0.26"},
        {"tensorrt": "11.0.0.26"},
        {"tensorrt": "10.3.0.27"},  # another build of the same release: TensorRT refuses its plans
        {"tensorrt": "10.3.0"},
        {"sm_count": 20},
        {"sm_count": None},  # a plan recorded before SM counts were: rebuild rather than risk it
        {"compute_capability": "8.6"},
        {"gpu": "A10"},
        {"precision": "int8"},
        {"target": "detector"},
    ],
)
def test_any_key_difference_means_no_match(change):
    assert not plan_matches(engine(**change), T4, "fused", "fp16")


def test_orin_modules_do_not_share_plans():
    """AGX Orin, Orin NX and Orin Nano all say "Orin" 8.7; their SM counts (16, 8, 4) tell them apart."""
    agx = engine(gpu="Orin", compute_capability="8.7", sm_count=16, tensorrt="10.3.0.30")
    nx = DeviceInfo("Orin", "8.7", "10.3.0.30", sm_count=8)
    assert plan_matches(agx, ORIN, "fused", "fp16") and not plan_matches(agx, nx, "fused", "fp16")


def test_no_plan_error_names_device_and_build_command():
    manifest = {"engines": [engine(gpu="Orin", compute_capability="8.7", sm_count=16, tensorrt="10.3.0.30")]}
    with pytest.raises(BackendError) as info:
        select_plan(manifest, "fused", "fp16", T4, bundle_dir="bundles/b1")
    msg = str(info.value)
    assert "no TensorRT plan for Tesla T4 (sm_75, 40 SMs, TensorRT 10.3.0.26) in this bundle" in msg
    assert "edgeecg-export --engines --bundle bundles/b1" in msg
    assert "Orin (sm_87, 16 SMs, TensorRT 10.3.0.30)" in msg and "\n" not in msg


def test_empty_engines_list_error():
    with pytest.raises(BackendError, match=r"build one with: edgeecg-export --engines --bundle DIR$"):
        select_plan({"engines": []}, "member:0", "fp16", ORIN)


def test_auto_falls_back_to_onnxruntime_without_plans_or_gpu():
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert resolve_backend("auto", manifest, ["fused"], "fp32") == "onnxruntime"
    assert not tensorrt_usable(manifest, ["fused"], "fp32")
    assert resolve_backend("onnxruntime", manifest, ["fused"], "fp32") == "onnxruntime"


def test_registry_names_the_runner():
    assert runner_class("tensorrt") is TensorRTRunner


@pytest.mark.skipif(available("tensorrt"), reason="TensorRT is installed here")
def test_missing_tensorrt_names_the_gpu_extra(tmp_path):
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"not a plan")
    with pytest.raises(MissingExtraError, match=r"edgeecg\[gpu\]"), TensorRTRunner(plan):
        pass


# -- on a GPU with TensorRT: plans from the product's own builder ------------------------------------
@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("graph", [False, True])
def test_tensorrt_matches_onnxruntime(tmp_path, graph):
    from edgeecg.backends.onnxruntime import OnnxRuntimeRunner  # noqa: PLC0415
    from edgeecg.export.tensorrt_build import build_plan  # noqa: PLC0415

    plan = tmp_path / "ens.plan"
    info = build_plan(BUNDLE / "ensemble.onnx", plan, [4], cache_dir=tmp_path)  # profile 1..4
    assert info["sm_count"] > 0 and len(info["tensorrt"].split(".")) >= 3
    rng = np.random.default_rng(0)
    with (
        TensorRTRunner(plan, cuda_graph=graph) as trt_r,
        OnnxRuntimeRunner(BUNDLE / "ensemble.onnx") as ort_r,
    ):
        assert [s.name for s in trt_r.inputs] == ["image"]
        for batch in (1, 3, 1, 4, 1):
            x = rng.standard_normal((batch, 3, 64, 128)).astype(np.float32)
            got, want = trt_r.infer(x), ort_r.infer(x)
            assert got["prob"].shape == (batch, 5)
            np.testing.assert_allclose(got["prob"], want["prob"], atol=1e-3)
            np.testing.assert_allclose(got["member_probs"], want["member_probs"], atol=1e-3)
        with pytest.raises(BackendError, match="largest profile shape"):
            trt_r.infer(np.zeros((5, 3, 64, 128), np.float32))
