"""`edgeecg-export --verifier` and `--corner-model`: each copied in with its entry from the JSON beside it."""

from __future__ import annotations

import json

import pytest

from edgeecg.bundle import sha256_file
from edgeecg.errors import UsageError
from edgeecg.export.bundle_writer import _verifier_entry


def test_entry_comes_from_the_json_beside_the_model(tmp_path):
    src = tmp_path / "run" / "verifier.onnx"
    src.parent.mkdir()
    src.write_bytes(b"onnx bytes")
    meta = {
        "kind": "ecg-verifier",
        "input_size": [96, 192],
        "threshold": 0.31,
        "calibration": {"auroc": 0.99},
    }
    src.with_suffix(".json").write_text(json.dumps(meta))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    entry = _verifier_entry(src, bundle)
    assert entry["file"] == "verifier.onnx" and entry["sha256"] == sha256_file(src)
    assert entry["input_size"] == [96, 192] and entry["threshold"] == 0.31
    assert entry["outputs"] == ["ecg"]  # an older check without the upright output
    meta["outputs"] = ["ecg", "upright"]
    src.with_suffix(".json").write_text(json.dumps(meta))
    assert _verifier_entry(src, bundle)["outputs"] == ["ecg", "upright"]
    assert (bundle / "verifier.onnx").read_bytes() == b"onnx bytes"


def test_a_model_without_its_json_is_refused(tmp_path):
    src = tmp_path / "verifier.onnx"
    src.write_bytes(b"x")
    with pytest.raises(UsageError, match="verifier.json|its .json"):
        _verifier_entry(src, tmp_path)
    src.with_suffix(".json").write_text('{"input_size": [96, 192]}')
    with pytest.raises(UsageError, match="threshold"):
        _verifier_entry(src, tmp_path)


def test_the_corner_model_comes_in_the_same_way(tmp_path):
    from edgeecg.export.bundle_writer import _corner_model_entry

    src = tmp_path / "corners.onnx"
    src.write_bytes(b"corner bytes")
    with pytest.raises(UsageError, match="--corner-model .*edgeecg-train corners"):
        _corner_model_entry(src, tmp_path)
    src.with_suffix(".json").write_text('{"input_size": [128, 192]}')
    with pytest.raises(UsageError, match="expand"):
        _corner_model_entry(src, tmp_path)
    src.with_suffix(".json").write_text('{"input_size": [128, 192], "expand": 0.12}')
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    entry = _corner_model_entry(src, bundle)
    assert entry["file"] == "corners.onnx" and entry["expand"] == 0.12 and entry["kind"] == "corner-regressor"
