"""Detector training plumbing (tiny smoke run) and numpy decoding vs ultralytics' own predictions."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

# ultralytics writes its settings file when imported: keep it in the build dir, not in ~/.config
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "build" / "yolo-config"))
pytestmark = [pytest.mark.ultralytics, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
ultralytics = pytest.importorskip("ultralytics")
yaml = pytest.importorskip("yaml")

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from edgeecg.errors import UsageError  # noqa: E402
from edgeecg.preprocess import Detector, Prepared  # noqa: E402
from edgeecg.train import detector as det_train  # noqa: E402


def _tiny_pose_yaml(tmp: Path) -> Path:
    """yolov8-pose with 1 class, 4 keypoints and a tiny width scale ("t"), so it trains in seconds."""
    src = Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-pose.yaml"
    cfg = yaml.safe_load(src.read_text())
    cfg.update(nc=1, kpt_shape=[4, 3], scales={"t": [0.33, 0.0625, 256]})
    path = tmp / "yolov8t-pose.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module", params=[False, True], ids=["fixed", "dynamic"])
def random_pose_onnx(request, tmp_path_factory) -> Path:
    """A random-init pose model whose class bias is zeroed, so that many anchors score around 0.5; exported
    with a fixed input and with dynamic height/width (ultralytics then letterboxes "rect", as we do)."""
    import torch

    tmp = tmp_path_factory.mktemp("randpose")
    torch.manual_seed(0)
    model = ultralytics.YOLO(str(_tiny_pose_yaml(tmp)), task="pose")
    head = model.model.model[-1]
    for seq in head.cv3:
        seq[-1].bias.data.fill_(0.3)  # sigmoid ~0.57 before the random term
    cwd = os.getcwd()
    os.chdir(tmp)  # ultralytics writes beside the model's name
    try:
        out = model.export(format="onnx", imgsz=128, opset=17, simplify=False, dynamic=request.param)
    finally:
        os.chdir(cwd)
    return Path(tmp) / out


def test_numpy_decode_matches_ultralytics_predict(random_pose_onnx):
    rng = np.random.default_rng(0)
    img = cv2.resize(
        rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (400, 300), interpolation=cv2.INTER_CUBIC
    )
    ref = ultralytics.YOLO(str(random_pose_onnx), task="pose").predict(
        img, imgsz=128, conf=0.5, iou=0.95, device="cpu", verbose=False
    )[0]
    with OnnxRuntimeRunner(random_pose_onnx, threads=1) as runner:
        # ultralytics letterboxes with INTER_LINEAR; ours defaults to INTER_AREA, so match it here
        ours = Detector(
            runner,
            (128, 128),
            keypoints=4,
            conf_threshold=0.5,
            iou_threshold=0.95,
            interpolation=cv2.INTER_LINEAR,
            rect=runner.inputs[0].shape[2] is None,  # the dynamic export: ultralytics letterboxes rect too
        )
        dets = ours.detect_all(img)
        assert ours.prepare(img)[0].shape[2:] == ((96, 128) if ours.rect else (128, 128))
    ref_boxes = ref.boxes.xyxy.numpy()
    assert len(ref_boxes) >= 3, "the comparison needs several boxes"
    assert len(dets) == len(ref_boxes)
    ref_order = np.argsort(-ref.boxes.conf.numpy(), kind="stable")
    np.testing.assert_allclose([d.confidence for d in dets], ref.boxes.conf.numpy()[ref_order], atol=1e-4)
    np.testing.assert_allclose(np.stack([d.box for d in dets]), ref_boxes[ref_order], atol=0.05)
    kp = ref.keypoints.data.numpy()[ref_order]  # [M, 4, (x, y, conf)]
    np.testing.assert_allclose(np.stack([d.corner_conf for d in dets]), kp[:, :, 2], atol=1e-4)
    # ultralytics clips keypoints to the image; ours keep off-image corners (the warp can use them)
    corners = np.clip(np.stack([d.corners for d in dets]), 0, [img.shape[1], img.shape[0]])
    np.testing.assert_allclose(corners, kp[:, :, :2], atol=0.05)


@pytest.fixture(scope="module")
def synth_sets(tmp_path_factory, scene_sets) -> tuple[Path, Path]:
    pytest.importorskip("edgeecg.synth.scenes")
    train, val = scene_sets(tmp_path_factory.mktemp("detdata"), [("train", 12, 1), ("val", 6, 2)], 0.25)
    return train, val


def test_smoke_train_export_evaluate(synth_sets, tmp_path, caplog):
    train_dir, val_dir = synth_sets
    yaml_path = _tiny_pose_yaml(tmp_path)
    cfg = det_train.DetectorTrainConfig(
        data=(str(train_dir),), val=str(val_dir), out=str(tmp_path / "run"), model=str(yaml_path),
        imgsz=64, epochs=1, batch=4, workers=0, threads=2,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="edgeecg.train.detector"):
        best = det_train.train(cfg)
    # ultralytics would train with cores - 1 threads; the option takes over once it has chosen
    assert "detector training with 2 torch threads" in caplog.text
    assert best.is_file() and (tmp_path / "run" / "detector_config.json").is_file()
    onnx_path = tmp_path / "detector.onnx"
    fields = det_train.export(best, onnx_path, imgsz=64)
    assert fields["kind"] == "yolov8-pose" and fields["keypoints"] == 4 and fields["input_size"] == [64, 64]
    res = det_train.evaluate(val_dir, onnx_path)
    assert res["images"] == 6 and res["ecg_images"] + res["negatives"] == 6
    assert set(res["meets"]) == set(det_train.TARGETS) and res["page_size"] == [96, 192]
    with OnnxRuntimeRunner(onnx_path) as runner:
        detector = det_train.open_detector(runner, onnx_path)
        assert not detector.rect and detector.input_size == (64, 64)  # the square letterbox of training
        d = detector.detect(cv2.imread(str(next((val_dir / "images").iterdir()))))
    assert d is None or d.corners.shape == (4, 2)
    rect_path = tmp_path / "detector_rect.onnx"
    assert det_train.export(best, rect_path, imgsz=64, letterbox="rect")["letterbox"] == "rect"
    with OnnxRuntimeRunner(rect_path) as runner:
        detector = det_train.open_detector(runner, rect_path)  # the .json beside it says rect
        assert detector.rect and detector.input_size == (64, 64)
        assert detector.prepare(np.zeros((300, 400, 3), np.uint8))[0].shape == (1, 3, 64, 64)
        assert detector.prepare(np.zeros((150, 400, 3), np.uint8))[0].shape == (1, 3, 32, 64)
    cal = det_train.calibrate(train_dir, onnx_path, max_ecg_rejected=0.1)
    assert cal["negatives"] > 0 and 0.05 <= cal["conf_threshold"] <= 0.95
    assert cal["ecg_rejected"] <= 0.1 or cal["conf_threshold"] == 0.05  # the floor may reject more
    side = json.loads(onnx_path.with_suffix(".json").read_text())
    assert side["conf_threshold"] == cal["conf_threshold"] and side["kind"] == "yolov8-pose"
    assert det_train._sidecar_threshold(onnx_path) == cal["conf_threshold"]
    shutil.rmtree(tmp_path / "run", ignore_errors=True)


def test_page_size_option():
    assert det_train._page_size("128x256") == (128, 256)
    for bad in ("128", "ax256", "4x4"):
        with pytest.raises(UsageError):
            det_train._page_size(bad)


def test_corner_error_scores_only_visible_corners():
    quad = np.array([[-10, 0], [100, 0], [100, 100], [0, 100]], np.float32)
    pred = quad + [[50, 50], [3, 4], [0, 0], [0, 0]]  # the off-frame corner's error is ignored
    err = det_train.corner_error(pred, quad, (200, 200))
    diag = (np.linalg.norm(quad[2] - quad[0]) + np.linalg.norm(quad[3] - quad[1])) / 2
    assert err == pytest.approx(5 / 3 / diag)
    assert det_train.corner_error(None, quad, (200, 200)) == float("inf")
    # all four, as the warp uses them: the hidden corner's error counts
    err4 = det_train.corner_error(pred, quad, (200, 200), all_four=True)
    assert err4 == pytest.approx((np.hypot(50, 50) + 5) / 4 / diag)


def test_scaled_model_yaml_sets_the_width(tmp_path):
    from ultralytics.nn.tasks import PoseModel

    path = det_train.scaled_model_yaml("yolov8n-pose.yaml", 0.125, tmp_path)
    model = PoseModel(str(path), nc=1, data_kpt_shape=(4, 3), verbose=False)
    assert model.model[0].conv.out_channels == 8  # 64 x 0.125 (yolov8n: 16)
    assert model.kpt_shape == [4, 3] or tuple(model.kpt_shape) == (4, 3)
    with pytest.raises(UsageError):
        det_train.scaled_model_yaml("yolov8n-pose.yaml", 0.0, tmp_path)
    with pytest.raises(UsageError, match="no ultralytics model yaml"):
        det_train.scaled_model_yaml("no-such-model.yaml", 0.125, tmp_path)


def test_a_page_accepted_without_a_box_is_scored_by_its_corners_or_frame():
    page = np.zeros((8, 16, 3), np.uint8)
    boxed = Prepared(page, np.array([1, 2, 30, 40], np.float32), None, 0.9, None)
    np.testing.assert_array_equal(boxed.page_box(50, 60), [1, 2, 30, 40])
    quad = np.array([[-5, 3], [70, 4], [69, 45], [2, 44]], np.float32)  # runs off the frame on two sides
    cornered = Prepared(page, None, quad, 0.01, None)
    np.testing.assert_array_equal(cornered.page_box(50, 60), [0, 3, 60, 45])
    frame = Prepared(page, None, None, 0.01, None)  # the verifier judged the whole frame
    np.testing.assert_array_equal(frame.page_box(50, 60), [0, 0, 60, 50])
    assert Prepared(None, None, quad, 0.01, "no ECG found").page_box(50, 60) is None
