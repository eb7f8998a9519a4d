"""Torch reference runner: the fixture checkpoints give the same logits as their ONNX exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.backends.torch import TorchRunner, read_sidecar
from edgeecg.errors import BackendError, BundleError

pytest.importorskip("timm")
BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_tiny"


def test_torch_matches_onnx_member():
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 128)).astype(np.float32)
    with (
        TorchRunner(BUNDLE / "fold1.safetensors", threads=1) as t,
        OnnxRuntimeRunner(BUNDLE / "fold1.onnx") as o,
    ):
        assert t.inputs[0].shape == (None, 3, 64, 128) and t.outputs[0].name == "logits"
        np.testing.assert_allclose(t.infer(x)["logits"], o.infer(x)["logits"], atol=1e-4)


def test_wrong_weights_for_the_model(tmp_path):
    meta = read_sidecar(BUNDLE / "fold0.safetensors")
    meta["model_kwargs"] = {"dims": [16, 32, 64, 128], "depths": [1, 1, 1, 1]}
    (tmp_path / "w.json").write_text(json.dumps(meta))
    (tmp_path / "w.safetensors").write_bytes((BUNDLE / "fold0.safetensors").read_bytes())
    with (
        pytest.raises(BackendError, match="cannot load checkpoint") as info,
        TorchRunner(tmp_path / "w.safetensors"),
    ):
        pass
    assert "\n" not in str(info.value)


def test_missing_sidecar(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(BundleError, match="sidecar"):
        read_sidecar(tmp_path / "w.safetensors")
