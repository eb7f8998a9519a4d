"""ECG check on the flattened page: a tiny CNN that tells an ECG from other paper.

The detector finds paper; a table, a letter or graph paper is paper too, and a YOLO confidence alone let
20-40% of such synthetic no-ECG sheets through at thresholds that keep the ECGs. The verifier looks at the
very image the classifier would get (cropped or warped, CLAHE, at the classifier's input size) and scores
whether it shows ECG traces; below its threshold the image is rejected as "no ECG found".

Contract (the manifest's optional "verifier" section, written by `edgeecg-export --verifier`): an ONNX
model with one float32 input [N, 3, H, W] (BGR, pixel / 255) and one output [N, 1] of logits; the section
holds "input_size" [H, W] and "threshold" (on the sigmoid).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeecg.backends.base import Runner
from edgeecg.errors import BackendError, UsageError


class Verifier:
    """Scores the pre-processed page: probability that it is an ECG.

    Args:
        runner: the verifier ONNX model behind the Runner protocol.
        input_size: (h, w) the model takes.
        threshold: pages scoring below this are "no ECG found".
    """

    def __init__(self, runner: Runner, input_size: tuple[int, int], threshold: float) -> None:
        if not 0.0 <= float(threshold) < 1.0:
            raise UsageError(f"verifier threshold must be in [0, 1), got {threshold}")
        self.runner = runner
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.threshold = float(threshold)

    @classmethod
    def from_manifest(cls, runner: Runner, section: dict[str, Any]) -> Verifier:
        """From the manifest's "verifier" section ({"input_size": [h, w], "threshold"})."""
        try:
            size = section["input_size"]
            return cls(runner, (int(size[0]), int(size[1])), float(section["threshold"]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise UsageError(
                "the manifest's verifier section needs input_size [h, w] and threshold"
            ) from None

    def score(self, page_bgr: np.ndarray) -> float:
        """Probability that the pre-processed page (uint8 HxWx3 BGR) is an ECG."""
        h, w = self.input_size
        if page_bgr.shape[:2] != (h, w):
            page_bgr = cv2.resize(page_bgr, (w, h), interpolation=cv2.INTER_AREA)
        x = np.ascontiguousarray(page_bgr.transpose(2, 0, 1)[None], np.float32) / np.float32(255.0)
        out = self.runner.infer(x)
        logit = np.asarray(next(iter(out.values())), np.float64).reshape(-1)
        if logit.size != 1 or not np.isfinite(logit[0]):
            raise BackendError(f"verifier output must be one finite logit per image, got {logit[:4]}")
        return float(1.0 / (1.0 + np.exp(-logit[0])))
