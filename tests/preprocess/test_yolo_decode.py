"""YOLO decoding, NMS and letterbox in numpy; the Detector on real (tiny, constant-output) ONNX models."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.handmade import constant_detector_onnx, raw_rows

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.errors import BackendError, UsageError
from edgeecg.preprocess.detector import Detector, box_iou, decode, letterbox, nms


def test_nms_suppresses_overlaps_and_keeps_order():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.5, 0.9, 0.7, 0.4], np.float32)
    keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 2, 0, 3]
    assert nms(boxes, scores, 0.5, max_keep=1).tolist() == [1]


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0]], rtol=1e-6)


def test_decode_pose_rows():
    raw = raw_rows(
        [
            [32, 32, 20, 10, 0.9, 22, 27, 0.9, 42, 27, 0.8, 42, 37, 0.7, 22, 37, 0.6],
            [33, 32, 20, 10, 0.5],  # overlaps the first: suppressed
            [10, 10, 4, 4, 0.1],  # below threshold
        ]
    )[0]
    rows = decode(raw, nc=1, nk=4, conf_threshold=0.25, iou_threshold=0.5)
    assert rows.shape == (1, 18)
    np.testing.assert_allclose(rows[0, :6], [22, 27, 42, 37, 0.9, 0], rtol=1e-6)
    np.testing.assert_allclose(rows[0, 6:9], [22, 27, 0.9], rtol=1e-6)


def test_decode_rejects_wrong_layout():
    with pytest.raises(BackendError):
        decode(np.zeros((17, 10), np.float32), nc=1, nk=0, conf_threshold=0.25, iou_threshold=0.5)


def test_letterbox_matches_ultralytics_rule():
    img = np.zeros((300, 600, 3), np.uint8)
    out, lb = letterbox(img, (64, 64))
    assert out.shape == (64, 64, 3)
    assert lb.gain == pytest.approx(64 / 600) and lb.pad == (0, 16)
    assert (out[:16] == 114).all() and (out[-16:] == 114).all()
    np.testing.assert_allclose(lb.to_original(np.array([[32.0, 16.0]])), [[300, 0]])


def test_rect_letterbox_pads_only_to_the_stride():
    # a 4:3 photo at 320: 320x240, padded to 256 high (not 320), centred as ultralytics' auto letterbox
    out, lb = letterbox(np.zeros((3000, 4000, 3), np.uint8), (320, 320), stride=32)
    assert out.shape == (256, 320, 3) and lb.pad == (0, 8) and lb.gain == pytest.approx(0.08)
    out, lb = letterbox(np.zeros((4000, 3000, 3), np.uint8), (320, 320), stride=32)  # portrait
    assert out.shape == (320, 256, 3) and lb.pad == (8, 0)
    # a size that is already a stride multiple gets no padding at all
    out, lb = letterbox(np.zeros((300, 600, 3), np.uint8), (64, 64), stride=32)
    assert out.shape == (32, 64, 3) and lb.pad == (0, 0)
    np.testing.assert_allclose(lb.to_original(np.array([[32.0, 16.0]])), [[300, 150]])


def test_dynamic_detector_gets_the_rect_letterbox(tmp_path):
    # the same detection as below, but the 128x256 image enters a dynamic model as 32x64 (no padding)
    raw = raw_rows([[32, 16, 40, 20, 0.8, 12, 6, 0.9, 52, 6, 0.9, 52, 26, 0.9, 12, 26, 0.9]])
    path = constant_detector_onnx(tmp_path / "det.onnx", raw, ("height", "width"))
    with OnnxRuntimeRunner(path, threads=1) as runner:
        detector = Detector(runner, (64, 64), keypoints=4, rect=True)
        img = np.zeros((128, 256, 3), np.uint8)
        assert detector.rect and detector.prepare(img)[0].shape == (1, 3, 32, 64)
        det = detector.detect(img)
    np.testing.assert_allclose(det.box, [48, 24, 208, 104], atol=1e-4)
    np.testing.assert_allclose(det.corners, [[48, 24], [208, 24], [208, 104], [48, 104]], atol=1e-4)
    with OnnxRuntimeRunner(path, threads=1) as runner, pytest.raises(UsageError, match="dynamic input"):
        _ = Detector(runner, keypoints=4).input_size  # no size to bound it
    static = constant_detector_onnx(tmp_path / "static.onnx", raw)
    with OnnxRuntimeRunner(static, threads=1) as runner, pytest.raises(UsageError, match="dynamic height"):
        Detector(runner, keypoints=4, rect=True).detect(img)


def test_detector_maps_boxes_and_corners_back_to_the_image(tmp_path):
    # in the 64x64 input of a 128x256 (h x w) image: gain 0.25, vertical pad 16
    raw = raw_rows([[32, 32, 40, 20, 0.8, 12, 22, 0.9, 52, 22, 0.9, 52, 42, 0.9, 12, 42, 0.9]])
    path = constant_detector_onnx(tmp_path / "det.onnx", raw)
    with OnnxRuntimeRunner(path, threads=1) as runner:
        det = Detector(runner, keypoints=4).detect(np.zeros((128, 256, 3), np.uint8))
    assert det is not None and det.confidence == pytest.approx(0.8)
    np.testing.assert_allclose(det.box, [48, 24, 208, 104], atol=1e-4)
    np.testing.assert_allclose(det.corners, [[48, 24], [208, 24], [208, 104], [48, 104]], atol=1e-4)
    np.testing.assert_allclose(det.corner_conf, 0.9, atol=1e-6)


def test_detector_reads_input_size_and_clips_boxes(tmp_path):
    raw = raw_rows([[60, 60, 30, 30, 0.6]])  # runs past the input's right and bottom edges
    path = constant_detector_onnx(tmp_path / "det.onnx", raw)
    with OnnxRuntimeRunner(path, threads=1) as runner:
        det = Detector(runner, keypoints=4).detect(np.zeros((64, 64, 3), np.uint8))
    assert det.box.max() <= 64
    assert Detector(runner).input_size == (64, 64)


def test_detector_finds_nothing(tmp_path):
    path = constant_detector_onnx(tmp_path / "det.onnx", raw_rows([[32, 32, 20, 20, 0.02]]))
    with OnnxRuntimeRunner(path, threads=1) as runner:
        det = Detector(runner, keypoints=4)
        assert det.detect_all(np.zeros((64, 64, 3), np.uint8)) == []
        best = det.detect(np.zeros((64, 64, 3), np.uint8))  # threshold 0: the best candidate and its score
    assert best is not None and best.confidence == pytest.approx(0.02)
