"""`edgeecg-train detector calibrate --verifier`: the detector's threshold chosen with the verifier behind it,
on real (hand-made) ONNX models with known outputs and real synthetic scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.handmade import constant_detector_onnx, constant_onnx, raw_rows

from edgeecg.train import detector as det_train  # noqa: E402

SCORE = 0.3  # every picture's best box scores this, ECG or not


@pytest.fixture(scope="module")
def tune(tmp_path_factory, scene_sets) -> Path:
    pytest.importorskip("edgeecg.synth.scenes")
    (d,) = scene_sets(tmp_path_factory.mktemp("caldata"), [("tune", 12, 7)], 0.34)
    return d


@pytest.fixture
def detector(tmp_path) -> Path:
    row = [32, 32, 48, 40, SCORE, 8, 12, 1, 56, 12, 1, 56, 52, 1, 8, 52, 1]
    path = constant_detector_onnx(tmp_path / "det.onnx", raw_rows([row]))
    fields = {
        "kind": "yolov8-pose", "input_size": [64, 64], "input": "images", "strides": [8, 16, 32],
        "keypoints": 4, "keypoint_dims": 3, "classes": ["ecg"], "letterbox": "square",
    }  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(fields))
    return path


def _check(path: Path, logit: float) -> Path:
    """A verifier that says `logit` of every page."""
    constant_onnx(path, "page", [1, 3, 32, 64], "logit", np.array([[logit]], np.float32))
    path.with_suffix(".json").write_text(json.dumps({"input_size": [32, 64], "threshold": 0.5}))
    return path


def test_a_check_that_rejects_every_negative_lets_the_detector_drop_to_its_floor(tune, detector, tmp_path):
    alone = det_train.calibrate(tune, detector, max_ecg_rejected=0)["conf_threshold"]
    res = det_train.calibrate(
        tune, detector, max_ecg_rejected=0, verifier=_check(tmp_path / "no.onnx", -10.0)
    )
    assert res["negatives"] > 0 and res["chain_negatives_rejected"] == 1.0
    assert res["conf_threshold"] == det_train.DETECTOR_FLOOR < alone
    assert res["detector_alone_threshold"] == alone and res["ecg_rejected"] == 0.0
    side = json.loads(detector.with_suffix(".json").read_text())
    assert side["conf_threshold"] == det_train.DETECTOR_FLOOR  # what the bundle's manifest takes
    assert side["conf_threshold_calibration"]["verifier"].endswith("no.onnx")


def test_a_check_that_rejects_nothing_leaves_the_detector_alone(tune, detector, tmp_path):
    alone = det_train.calibrate(tune, detector, max_ecg_rejected=0)
    res = det_train.calibrate(
        tune, detector, max_ecg_rejected=0, verifier=_check(tmp_path / "yes.onnx", 10.0)
    )
    # every score is the same: no threshold rejects the negatives without the ECGs, so the pair cannot
    # reach 95% and the detector keeps the threshold it would have alone
    assert res["conf_threshold"] == alone["conf_threshold"] == res["detector_alone_threshold"]
    assert res["chain_negatives_rejected"] == pytest.approx(alone["negatives_rejected"])
    assert res["chain_negatives_rejected"] < 0.95


def test_calibration_options_are_checked(tune, detector):
    with pytest.raises(det_train.UsageError, match="min-negatives-rejected"):
        det_train.calibrate(tune, detector, min_negatives_rejected=0.0)
