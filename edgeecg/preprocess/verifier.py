"""The verifier on the flattened page: a tiny CNN that tells an ECG from other paper.

The detector finds paper; a table, a letter or graph paper is paper too, and a YOLO confidence alone let
20-40% of such synthetic no-ECG sheets through at thresholds that keep the ECGs. The verifier looks at the
very image the classifier would get (cropped or warped, CLAHE, at the classifier's input size) and scores
whether it shows ECG traces; below its threshold the image is rejected as "no ECG found".

Contract (the manifest's optional "verifier" section, written by `edgeecg-export --verifier`): an ONNX
model with one float32 input [N, 3, H, W] (BGR, pixel / 255) and one output [N, K] of logits; the section
holds "input_size" [H, W], "threshold" (on the ECG sigmoid) and "outputs", the meaning of the K columns:
["ecg"] (the default) or ["ecg", "upright"]. With "upright" the model also tells whether the page reads the
right way up, and the pre-processor turns a page it finds upside down (a sheet photographed turned by 180
degrees, whose corner order neither geometry nor the detector's keypoints could tell).
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
        runner: the verifier ONNX model behind the Runner protocol (activated on first use).
        input_size: (h, w) the model takes.
        threshold: pages scoring below this are "no ECG found".
        outputs: what the model's output columns mean: ("ecg",) or ("ecg", "upright").
    """

    def __init__(
        self,
        runner: Runner,
        input_size: tuple[int, int],
        threshold: float,
        outputs: tuple[str, ...] = ("ecg",),
    ) -> None:
        if not 0.0 <= float(threshold) < 1.0:
            raise UsageError(f"verifier threshold must be in [0, 1), got {threshold}")
        if tuple(outputs) not in (("ecg",), ("ecg", "upright")):
            raise UsageError(f"verifier outputs must be ['ecg'] or ['ecg', 'upright'], got {list(outputs)}")
        self.runner = runner
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.threshold = float(threshold)
        self.outputs = tuple(outputs)

    @property
    def knows_upright(self) -> bool:
        """True when the model also scores whether the page is the right way up."""
        return "upright" in self.outputs

    @classmethod
    def from_manifest(cls, runner: Runner, section: dict[str, Any]) -> Verifier:
        """From the manifest's "verifier" section ({"input_size": [h, w], "threshold", "outputs"})."""
        try:
            size = section["input_size"]
            outputs = tuple(str(o) for o in section.get("outputs", ["ecg"]))
            return cls(runner, (int(size[0]), int(size[1])), float(section["threshold"]), outputs)
        except (KeyError, TypeError, ValueError, IndexError):
            raise UsageError(
                "the manifest's verifier section needs input_size [h, w] and threshold"
            ) from None

    def assess(self, page_bgr: np.ndarray) -> tuple[float, float | None]:
        """(probability that the pre-processed page, uint8 HxWx3 BGR, is an ECG; probability that it is the
        right way up, or None when the model does not say)."""
        h, w = self.input_size
        if page_bgr.shape[:2] != (h, w):
            page_bgr = cv2.resize(page_bgr, (w, h), interpolation=cv2.INTER_AREA)
        x = np.ascontiguousarray(page_bgr.transpose(2, 0, 1)[None], np.float32) / np.float32(255.0)
        self.runner.activate()  # idempotent: loaded on first use, as the detector and corner model are
        out = self.runner.infer(x)
        logit = np.asarray(next(iter(out.values())), np.float64).reshape(-1)
        if logit.size != len(self.outputs) or not np.isfinite(logit).all():
            raise BackendError(
                f"verifier output must be {len(self.outputs)} finite logit(s) per image "
                f"({', '.join(self.outputs)}), got {logit[:4]}"
            )
        prob = 1.0 / (1.0 + np.exp(-logit))
        return float(prob[0]), (float(prob[1]) if self.knows_upright else None)

    def score(self, page_bgr: np.ndarray) -> float:
        """Probability that the pre-processed page (uint8 HxWx3 BGR) is an ECG."""
        return self.assess(page_bgr)[0]
