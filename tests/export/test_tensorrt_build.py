"""TensorRT plans. The `trt` tests skip here and run unchanged on a machine with tensorrt and a GPU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeecg.bundle import load_manifest, verify
from edgeecg.errors import BackendError
from edgeecg.export.bundle_writer import ExportConfig, add_engines, engine_support
from edgeecg.export.tensorrt_build import TrtTarget, input_profile, profile_shapes


def test_profile_and_key():
    assert profile_shapes([8, 1, 4]) == (1, 4, 8)
    assert profile_shapes([1]) == (1, 1, 1)
    with pytest.raises(BackendError):
        profile_shapes([0, 2])
    key = TrtTarget("NVIDIA Tesla T4", "7.5", "10.3.0").key
    assert key == "nvidia-tesla-t4-sm75-trt10.3.0"


def test_input_profiles():
    assert input_profile([1, 3, 320, 320], (1, 4, 8)) is None  # static: no profile
    assert input_profile([-1, 3, 256, 512], (1, 4, 8)) == (
        [1, 3, 256, 512],
        [4, 3, 256, 512],
        [8, 3, 256, 512],
    )
    # the rect letterbox detector: any stride multiple up to the export size, batch 1
    assert input_profile([1, 3, -1, -1], (1, 1, 1), (320, 320)) == (
        [1, 3, 32, 32], [1, 3, 320, 320], [1, 3, 320, 320]
    )  # fmt: skip
    assert input_profile([-1, 3, -1, -1], (1, 1, 2), (320, 320), 64)[0] == [1, 3, 64, 64]
    with pytest.raises(BackendError, match="beyond the batch axis"):
        input_profile([1, 3, -1, -1], (1, 1, 1))  # no bound given


def test_without_tensorrt_engines_say_why(bundle, tmp_path):
    if engine_support() is None:
        pytest.skip("TensorRT and a GPU are present here")
    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    with pytest.raises(BackendError, match="cannot build TensorRT plans here"):
        add_engines(copy, ExportConfig(checkpoints=(), out=str(copy)))


@pytest.mark.trt
@pytest.mark.gpu
def test_build_plans_for_bundle_and_check_parity(bundle, tmp_path):
    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    cfg = ExportConfig(
        checkpoints=(),
        out=str(copy),
        batch_sizes=(1, 4),
        parity_samples=16,
        timing_cache=str(tmp_path / "cache"),
    )
    manifest = add_engines(copy, cfg, print)
    verify(copy, load_manifest(copy))
    by_target = {e["target"]: e for e in manifest["engines"]}
    assert set(by_target) == {"fused", "detector"}
    fused = by_target["fused"]
    assert fused["precision"] == "fp16" and fused["batch_sizes"] == [1, 4]
    assert fused["parity"]["max_abs_prob_diff"] <= 1e-2
    assert fused["parity"]["samples"] == 16 and not fused["parity"]["auroc_gated"]  # too few to gate AUROC
    assert list((tmp_path / "cache").glob("timing-*.cache")), "timing cache not persisted"
    # A second build reuses the cache and replaces (not duplicates) this GPU's entries.
    again = add_engines(copy, cfg)
    assert len(again["engines"]) == 2


@pytest.mark.trt
@pytest.mark.gpu
def test_plan_runs_batch_sizes_of_profile(bundle, tmp_path):
    from edgeecg.export.tensorrt_build import PlanExecutor, build_plan

    out, manifest = bundle
    member = manifest["classifier"]["variants"]["fp16"]["members"][0]["file"]
    info = build_plan(out / member, tmp_path / "m.plan", [1, 2, 8], cache_dir=tmp_path)
    assert info["batch_sizes"] == [1, 2, 8]
    ex = PlanExecutor(tmp_path / "m.plan")
    x = np.zeros((11, 3, 64, 128), np.float32)  # more than max batch: split into chunks
    assert ex.run(x)["logits"].shape == (11, 5)
