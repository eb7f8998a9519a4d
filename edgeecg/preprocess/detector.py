"""Paper detector: YOLO (detect or pose head) from ONNX through the Runner protocol, decoded in numpy.

An ultralytics ONNX export has one output of shape [1, 4 + nc (+ nk * 3), N]: per anchor a box (cx, cy, w,
h in input pixels), nc sigmoid class scores and, for a pose head, nk keypoints (x, y in input pixels,
visibility already through a sigmoid). We letterbox as ultralytics does, decode, run greedy NMS and map
everything back to the original image. No ultralytics or torch at run time.

With `letterbox: "rect"` in the manifest (a model exported with dynamic height and width), images get
ultralytics' "rect" letterbox: scaled to fit input_size as usual, but padded only up to the next multiple of
the largest stride, so a 4:3 photo costs 256x320 instead of 320x320 (~15-30% less compute). The default is
the square letterbox the detector was trained with: a wide image then keeps the padding the model knows
(a 2.3:1 scan lost most of its confidence with rect padding).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeecg.backends.base import Runner
from edgeecg.errors import BackendError, UsageError

log = logging.getLogger(__name__)

PAD_VALUE = 114  # ultralytics' letterbox grey


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the detector input: scale `gain`, then `pad` (left, top) pixels."""

    gain: float
    pad: tuple[int, int]
    shape: tuple[int, int]  # (h, w) of the original image

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Map [..., 2] points from detector input pixels to original image pixels (not clipped)."""
        return (xy - np.asarray(self.pad, np.float32)) / self.gain


def letterbox(
    img: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR, stride: int | None = None
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to `size` (h, w), centred, as ultralytics does.

    Args:
        img: uint8 HxWx3 image.
        size: detector input (h, w).
        interpolation: cv2 flag; INTER_LINEAR, as ultralytics uses in training and prediction (INTER_AREA
            costs ~50 ms from 12 MP; the paper is a large object and survives bilinear sampling).
        stride: pad only up to the next multiple of `stride` in each direction (ultralytics' rect
            letterbox, for models with a dynamic input shape); None pads to `size`.

    Returns:
        The padded image (size[0] x size[1] x 3, or smaller with `stride`) and the Letterbox that maps its
        pixels back.
    """
    h, w = img.shape[:2]
    out_h, out_w = size
    gain = min(out_h / h, out_w / w)
    new_w, new_h = max(round(w * gain), 1), max(round(h * gain), 1)
    dw, dh = out_w - new_w, out_h - new_h
    if stride:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if (new_w, new_h) != (w, h):
        img = cv2.resize(img, (new_w, new_h), interpolation=interpolation)
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return out, Letterbox(gain, (left, top), (h, w))


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """[N, 4] centre-size boxes to corner boxes."""
    out = np.empty_like(b)
    out[:, :2] = b[:, :2] - b[:, 2:4] / 2
    out[:, 2:] = b[:, :2] + b[:, 2:4] / 2
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression; a box is dropped when its IoU with a kept box exceeds the threshold.

    Args:
        boxes: [N, 4] xyxy.
        scores: [N].
        iou_threshold: IoU above which the lower-scored box is suppressed.
        max_keep: stop once this many boxes are kept (the first is always the best score).

    Returns:
        Indices of kept boxes, highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1 or (max_keep is not None and len(keep) >= max_keep):
            break
        ious = box_iou(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


@dataclass
class Detection:
    """One detected paper sheet, in original image pixels.

    Attributes:
        box: float32 [4] xyxy, clipped to the image.
        confidence: class score in [0, 1].
        corners: float32 [4, 2] (clockwise from the paper's top-left) for a pose head, else None.
        corner_conf: float32 [4] keypoint visibility scores, or None.
        class_id: index into the manifest's detector classes.
    """

    box: np.ndarray
    confidence: float
    corners: np.ndarray | None = None
    corner_conf: np.ndarray | None = None
    class_id: int = 0


def decode(
    pred: np.ndarray,
    nc: int,
    nk: int,
    conf_threshold: float,
    iou_threshold: float,
    max_det: int = 300,
) -> np.ndarray:
    """Decode one image's raw YOLO output and run NMS (agnostic across classes only when nc == 1).

    Args:
        pred: [4 + nc + nk * 3, N] raw output for one image.
        nc: number of classes.
        nk: number of keypoints (0 for a detect head).
        conf_threshold: drop anchors whose best class score is not above this.
        iou_threshold: NMS IoU threshold.
        max_det: keep at most this many.

    Returns:
        [M, 6 + nk * 3] rows (x0, y0, x1, y1, conf, class, kpts...) in detector input pixels, best first.
    """
    if pred.ndim != 2 or pred.shape[0] != 4 + nc + nk * 3:
        raise BackendError(f"detector output has shape {pred.shape}; expected [{4 + nc + nk * 3}, N]")
    x = pred.T  # [N, 4 + nc + nk*3]
    scores = x[:, 4 : 4 + nc]
    conf = scores.max(1)
    keep = conf > conf_threshold
    x, conf = x[keep], conf[keep]
    if not len(x):
        return np.zeros((0, 6 + nk * 3), np.float32)
    cls = x[:, 4 : 4 + nc].argmax(1).astype(np.float32)
    boxes = xywh_to_xyxy(x[:, :4])
    # offset boxes per class so that NMS never suppresses across classes (ultralytics' trick)
    offset = cls[:, None] * 7680.0
    idx = nms(boxes + offset, conf, iou_threshold, max_det)
    out = np.concatenate([boxes, conf[:, None], cls[:, None], x[:, 4 + nc :]], axis=1)[idx]
    return out.astype(np.float32)


class Detector:
    """Finds the paper in a BGR image with a YOLO ONNX model behind a Runner.

    Args:
        runner: an (activated or not) Runner for the detector model; activated on first use.
        input_size: detector input (h, w); read from the model when it has a static shape. With `rect` it is
            the largest input.
        keypoints: number of pose keypoints (4 for paper corners; 0 for a detect-only model).
        classes: class names (the paper is class 0).
        conf_threshold: minimum class score to report a detection.
        iou_threshold: NMS IoU threshold.
        interpolation: cv2 flag used for the letterbox resize.
        stride: the model's largest stride (the rect letterbox pads to its multiples).
        rect: pad only up to multiples of `stride` (needs a model with dynamic height and width).
    """

    def __init__(
        self,
        runner: Runner,
        input_size: tuple[int, int] | None = None,
        keypoints: int = 4,
        classes: tuple[str, ...] = ("ecg",),
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.5,
        interpolation: int = cv2.INTER_LINEAR,
        stride: int = 32,
        rect: bool = False,
    ) -> None:
        self.runner = runner
        self.stride = int(stride)
        self.rect = bool(rect)
        self._checked = False
        self.keypoints = keypoints
        self.classes = tuple(classes)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.interpolation = interpolation
        self._input_size = tuple(input_size) if input_size else None
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_manifest(cls, runner: Runner, section: dict[str, Any]) -> Detector:
        """Build from the bundle manifest's "detector" section (input_size, keypoints, classes, thresholds)."""
        return cls(
            runner,
            input_size=tuple(section.get("input_size", (640, 640))),
            keypoints=int(section.get("keypoints", 0)),
            classes=tuple(section.get("classes", ("ecg",))),
            conf_threshold=float(section.get("conf_threshold", 0.25)),
            iou_threshold=float(section.get("iou_threshold", 0.5)),
            stride=max(int(v) for v in section.get("strides", (32,))),
            rect=section.get("letterbox", "square") == "rect",
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """Detector input (h, w)."""
        if self._input_size is None:
            self.runner.activate()
            shape = self.runner.inputs[0].shape
            if len(shape) != 4 or shape[2] is None or shape[3] is None:
                raise UsageError(f"detector {self.runner.name} has a dynamic input shape; give input_size")
            self._input_size = (int(shape[2]), int(shape[3]))
        return self._input_size  # type: ignore[return-value]

    def _check_rect(self) -> None:
        self.runner.activate()
        shape = self.runner.inputs[0].shape
        if len(shape) == 4 and shape[2] is not None and shape[3] is not None:
            raise UsageError(
                f"detector {self.runner.name}: the rect letterbox needs a model with dynamic height and width "
                f"(this one takes {shape[2]}x{shape[3]}); export it with --detector-letterbox rect"
            )
        self._checked = True

    def prepare(self, img_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Letterbox and convert to the model's input: float32 [1, 3, h, w] RGB in [0, 1]."""
        if self.rect and not self._checked:
            self._check_rect()
        padded, lb = letterbox(
            img_bgr, self.input_size, self.interpolation, self.stride if self.rect else None
        )
        blob = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None]  # HWC -> [1, 3, h, w]
        return np.ascontiguousarray(blob, dtype=np.float32) * np.float32(1 / 255), lb

    def detect_all(
        self, img_bgr: np.ndarray, conf_threshold: float | None = None, max_det: int = 300
    ) -> list[Detection]:
        """Detections above the threshold after NMS (at most `max_det`), best first, in original pixels."""
        t0 = time.perf_counter()
        blob, lb = self.prepare(img_bgr)
        t1 = time.perf_counter()
        self.runner.activate()
        outputs = self.runner.infer(blob)
        t2 = time.perf_counter()
        pred = next(iter(outputs.values()))
        nc = len(self.classes)
        if pred.ndim != 3 or pred.shape[0] != 1:
            raise BackendError(f"detector output has shape {pred.shape}; expected [1, C, N]")
        thr = self.conf_threshold if conf_threshold is None else conf_threshold
        rows = decode(
            pred[0].astype(np.float32, copy=False), nc, self.keypoints, thr, self.iou_threshold, max_det
        )
        h, w = lb.shape
        dets = []
        for row in rows:
            box = lb.to_original(row[:4].reshape(2, 2)).reshape(4)  # [2, 2] points -> xyxy
            box = np.clip(box, 0, [w, h, w, h]).astype(np.float32)
            corners = corner_conf = None
            if self.keypoints:
                k = row[6:].reshape(self.keypoints, 3)  # [nk*3] -> [nk, (x, y, v)]
                corners = lb.to_original(k[:, :2]).astype(np.float32)
                corner_conf = k[:, 2].astype(np.float32)
            dets.append(Detection(box, float(row[4]), corners, corner_conf, int(row[5])))
        self.last_timings = {
            "detect_letterbox": t1 - t0,
            "detect_model": t2 - t1,
            "detect_decode": time.perf_counter() - t2,
        }
        return dets

    def detect(self, img_bgr: np.ndarray, conf_threshold: float | None = 0.0) -> Detection | None:
        """The best paper detection, or None when the model finds nothing above `conf_threshold`.

        Args:
            img_bgr: uint8 HxWx3 BGR image.
            conf_threshold: minimum score; the default 0 returns the best candidate whatever its score, so
                that the caller can report how confident a rejection was.
        """
        dets = self.detect_all(img_bgr, conf_threshold, max_det=1)
        return dets[0] if dets else None
