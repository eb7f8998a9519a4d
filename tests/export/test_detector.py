"""Detector export: a yolov8n-pose built from yaml → plain ONNX that runs in ONNX Runtime, fields recorded."""

from __future__ import annotations

import numpy as np
import pytest

from edgeecg.errors import UsageError
from edgeecg.export.detector import describe_onnx, dynamic_hw, export_detector
from edgeecg.export.onnx_export import ort_run


def test_yaml_built_pose_model_exports_and_runs(bundle):
    out, manifest = bundle
    det = manifest["detector"]
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    res = ort_run(out / det["file"], x)
    (y,) = res.values()
    anchors = sum((64 // s) ** 2 for s in det["strides"])
    assert y.shape == (1, 4 + len(det["classes"]) + det["keypoints"] * det["keypoint_dims"], anchors)
    assert np.isfinite(y).all()
    # The ONNX is plain ONNX (starts with a protobuf field, not ultralytics' JSON-length header).
    assert (out / det["file"]).read_bytes()[:1] == b"\x08"


def test_existing_onnx_is_described_from_its_metadata(bundle, tmp_path):
    out, manifest = bundle
    fields = export_detector(out / manifest["detector"]["file"], tmp_path / "d.onnx")
    for key in ("kind", "input_size", "strides", "keypoints", "classes"):
        assert fields[key] == manifest["detector"][key], key
    assert describe_onnx(tmp_path / "d.onnx")["source"] == "onnx"
    assert fields["conf_threshold"] == 0.25  # no calibration beside it


def test_calibrated_threshold_beside_the_onnx_is_kept(bundle, tmp_path):
    out, manifest = bundle
    src = tmp_path / "det.onnx"
    src.write_bytes((out / manifest["detector"]["file"]).read_bytes())
    src.with_suffix(".json").write_text('{"conf_threshold": 0.61}')  # as `detector calibrate` writes it
    assert export_detector(src, tmp_path / "out.onnx")["conf_threshold"] == 0.61


def test_rect_letterbox_exports_dynamic_height_and_width(detector_pt, bundle, tmp_path):
    fields = export_detector(detector_pt, tmp_path / "rect.onnx", imgsz=64, letterbox="rect")
    assert fields["letterbox"] == "rect" and fields["input_size"] == [64, 64]
    assert dynamic_hw(tmp_path / "rect.onnx") and describe_onnx(tmp_path / "rect.onnx")["keypoints"] == 4
    y = next(iter(ort_run(tmp_path / "rect.onnx", np.zeros((1, 3, 32, 64), np.float32)).values()))
    assert y.shape[2] == sum((32 // s) * (64 // s) for s in fields["strides"])
    out, manifest = bundle
    assert manifest["detector"]["letterbox"] == "square"  # the default: as trained
    with pytest.raises(UsageError, match="fixed input size"):
        export_detector(out / manifest["detector"]["file"], tmp_path / "d.onnx", letterbox="rect")


def test_engine_files_and_bad_sizes_are_refused(detector_pt, tmp_path):
    fake = tmp_path / "det.engine"
    fake.write_bytes(b"\x00" * 16)
    with pytest.raises(UsageError, match="not plain TensorRT plans"):
        export_detector(fake, tmp_path / "d.onnx")
    with pytest.raises(UsageError, match="multiple of 32"):
        export_detector(detector_pt, tmp_path / "d.onnx", imgsz=100)
    assert not (detector_pt.parent / "detector.onnx").exists()  # never writes beside the user's .pt
