"""Pipeline with an int8-weight ("int8w") variant: variant choice, ORT session config, agreement with fp32."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.sheets import scene

from edgeecg.backends.onnxruntime import INT8_WEIGHTS_SESSION_CONFIG
from edgeecg.bundle import file_entry
from edgeecg.errors import BundleError
from edgeecg.export.int8w import quantize_weights_int8
from edgeecg.pipeline import Pipeline

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "bundle_tiny"
BOX = (60, 50, 420, 300)


def _with_int8w(tmp_path: Path, keep_fp32: bool = True, detector_int8: bool = False) -> Path:
    """bundle_tiny plus an int8w variant (quantized copies of its members and fused graph)."""
    b = Path(shutil.copytree(BUNDLE, tmp_path / "b"))
    m = json.loads((b / "manifest.json").read_text())
    fp32 = m["classifier"]["variants"]["fp32"]

    def quantized(entry: dict) -> dict:
        rel = f"int8w_{entry['file']}"
        onnx.save(quantize_weights_int8(onnx.load(str(b / entry["file"])), min_size=256), str(b / rel))
        return file_entry(
            b, rel, **{k: v for k, v in entry.items() if k not in ("file", "sha256", "checkpoint")}
        )

    int8w = {"members": [quantized(e) for e in fp32["members"]], "fused": quantized(fp32["fused"])}
    m["classifier"]["variants"]["int8w"] = {**int8w, "weights": "int8"}
    if not keep_fp32:
        del m["classifier"]["variants"]["fp32"]
    if detector_int8:
        m["detector"]["weights"] = "int8"
    (b / "manifest.json").write_text(json.dumps(m))
    return b


def _probs(p: Pipeline) -> np.ndarray:
    results = p.run([scene(box=BOX, seed=s) for s in range(3)])
    assert all(r.ok for r in results)
    return np.array([list(r.probabilities.values()) for r in results])


def test_onnxruntime_prefers_fp32_then_int8w_with_session_config(tmp_path):
    b = _with_int8w(tmp_path)
    with Pipeline.from_bundle(b, backend="onnxruntime", threads=1) as p:
        assert p.ensemble.runners[0].session_config == {} and "int8w" not in p.ensemble.runners[0].path.name
        ref = _probs(p)
    for fused in (True, False):
        with Pipeline.from_bundle(b, backend="onnxruntime", threads=1, precision="int8w", fused=fused) as p:
            assert all(r.session_config == INT8_WEIGHTS_SESSION_CONFIG for r in p.ensemble.runners)
            assert all(r.path.name.startswith("int8w_") for r in p.ensemble.runners)
            got = _probs(p)
        assert np.abs(got - ref).max() <= 1e-2
        assert np.abs(got - ref).max() > 0  # really the other files


def test_int8w_only_bundle_and_int8_detector(tmp_path):
    b = _with_int8w(tmp_path, keep_fp32=False, detector_int8=True)
    with Pipeline.from_bundle(b, threads=1) as p:  # auto: no plans here, so onnxruntime with int8w
        assert p.backend == "onnxruntime"
        assert p.ensemble.runners[0].session_config == INT8_WEIGHTS_SESSION_CONFIG
        assert p._extra[0].name == "detector" and p._extra[0].session_config == INT8_WEIGHTS_SESSION_CONFIG
        assert _probs(p).shape == (3, 5)


def test_unknown_weights_storage_is_refused(tmp_path):
    b = _with_int8w(tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["classifier"]["variants"]["int8w"]["weights"] = "int4"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="weights 'int4'"):
        Pipeline.from_bundle(b)
