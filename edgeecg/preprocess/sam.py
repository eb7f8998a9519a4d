"""Paper corners from Segment Anything (SAM or MobileSAM) exported to ONNX, prompted with the detector box.

Expects the usual pair of exports (the user supplies the checkpoint; edgeecg ships none):

* encoder: one input float32 [1, 3, S, S] (the image resized so its longest side is S, padded bottom-right
  with zeros after normalising with SAM's pixel mean/std; S = 1024 for SAM and MobileSAM), one output
  ``image_embeddings`` [1, C, S/16, S/16];
* decoder (segment_anything's ``export_onnx_model.py`` signature): ``image_embeddings``, ``point_coords``
  [1, P, 2], ``point_labels`` [1, P], ``mask_input`` [1, 1, S/4, S/4], ``has_mask_input`` [1],
  ``orig_im_size`` [2] -> ``masks`` [1, M, H, W] logits at orig_im_size, ``iou_predictions`` [1, M] (and
  optionally ``low_res_masks``).

A box is the prompt: two points with labels 2 (top-left) and 3 (bottom-right).
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from edgeecg.backends.base import Runner
from edgeecg.errors import BackendError
from edgeecg.preprocess.corners import quad_from_mask
from edgeecg.preprocess.geometry import shrink

log = logging.getLogger(__name__)

PIXEL_MEAN = np.array([123.675, 116.28, 103.53], np.float32)  # RGB
PIXEL_STD = np.array([58.395, 57.12, 57.375], np.float32)


class SamCorners:
    """Mask the paper with SAM inside a box prompt and fit a quadrilateral to the mask.

    Args:
        encoder: Runner for the image encoder ONNX.
        decoder: Runner for the prompt/mask decoder ONNX.
        mask_threshold: logit above which a pixel belongs to the mask.
    """

    def __init__(self, encoder: Runner, decoder: Runner, mask_threshold: float = 0.0) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.mask_threshold = mask_threshold
        self.last_timings: dict[str, float] = {}
        self.last_mask: np.ndarray | None = None

    def _encoder_size(self) -> int:
        self.encoder.activate()
        shape = self.encoder.inputs[0].shape
        if len(shape) != 4 or shape[2] is None or shape[2] != shape[3]:
            raise BackendError(f"SAM encoder input must be [1, 3, S, S] with a fixed S, got {shape}")
        return int(shape[2])

    def embed(self, img_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """Image embeddings and the scale from `img_bgr` pixels to the encoder's resized image."""
        size = self._encoder_size()
        h, w = img_bgr.shape[:2]
        scale = size / max(h, w)
        nw, nh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
        small = shrink(img_bgr, (nw, nh))
        rgb = (cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) - PIXEL_MEAN) / PIXEL_STD
        blob = np.zeros((1, 3, size, size), np.float32)
        blob[0, :, :nh, :nw] = rgb.transpose(2, 0, 1)  # HWC -> CHW, padded bottom-right
        name = self.encoder.inputs[0].name
        out = self.encoder.infer({name: blob})
        emb = out.get("image_embeddings", next(iter(out.values())))
        return emb, scale

    def mask(self, img_bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Binary uint8 mask (HxW of `img_bgr`) of the object SAM segments inside the xyxy `box`."""
        m, work = self._small_mask(img_bgr, box)
        if work < 1:
            m = cv2.resize(m, (img_bgr.shape[1], img_bgr.shape[0]), interpolation=cv2.INTER_NEAREST)
        return m

    def _small_mask(self, img_bgr: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        # Decode at a reduced size: the quad needs a few hundred pixels, not 12 MP of mask logits.
        h, w = img_bgr.shape[:2]
        work = min(1.0, 1024 / max(h, w))
        small = shrink(img_bgr, (max(round(w * work), 1), max(round(h * work), 1))) if work < 1 else img_bgr
        sh, sw = small.shape[:2]
        work = sw / w  # the scale actually applied (after rounding)
        emb, scale = self.embed(small)
        t1 = time.perf_counter()
        self.decoder.activate()
        specs = {s.name: s for s in self.decoder.inputs}
        size = self._encoder_size()
        coords = (np.asarray(box, np.float32).reshape(2, 2) * work * scale)[None]  # xyxy -> [1, 2, (x, y)]
        feed = {
            "image_embeddings": emb.astype(np.float32),
            "point_coords": coords.astype(np.float32),
            "point_labels": np.array([[2, 3]], np.float32),
            "mask_input": np.zeros((1, 1, size // 4, size // 4), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([sh, sw], np.float32),
        }
        missing = set(specs) - set(feed)
        if missing:
            raise BackendError(f"SAM decoder has unexpected inputs {sorted(missing)}")
        out = self.decoder.infer({k: feed[k] for k in specs})
        masks = out.get("masks", next(iter(out.values())))
        iou = out.get("iou_predictions")
        best = int(np.argmax(iou[0])) if iou is not None and iou.size == masks.shape[1] else 0
        logits = masks[0, best]
        if logits.shape != (sh, sw):
            logits = cv2.resize(logits, (sw, sh), interpolation=cv2.INTER_LINEAR)
        m = (logits > self.mask_threshold).astype(np.uint8)
        self.last_timings = {"sam_encode": t1 - t0, "sam_decode": time.perf_counter() - t1}
        self.last_mask = m
        return m, work

    def corners(self, img_bgr: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """float32 [4, 2] corners (clockwise from top-left) of the SAM mask inside `box`, or None."""
        m, work = self._small_mask(img_bgr, box)
        box_area = max(float((box[2] - box[0]) * (box[3] - box[1])) * work * work, 1.0)
        if m.sum() < 0.2 * box_area:  # SAM found little of the box: do not trust a quad from it
            return None
        quad = quad_from_mask(m, min_fraction=0.0)
        if quad is None:
            return None
        # mask pixel indices -> edge coordinates of the full image
        h, w = img_bgr.shape[:2]
        quad = np.clip((quad + 0.5) / work - 0.5, 0, [w, h]) if work < 1 else quad
        return quad.astype(np.float32)
