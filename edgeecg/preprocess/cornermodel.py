"""Corner model: where the sheet's corners are, judged from the sheet itself.

Edge refinement (`refine_corners`) is exact where the sheet's edges show, but a white sheet on a white
scanner lid shows none, and there the corners stayed at the detector's box (a quarter of the synthetic
scans missed the 1.5% target). The printed content still tells where the sheet lies: the grid, the header
and the margins around them. This small CNN looks at the sheet flattened from the rough quad, with a margin
of `expand` around it, and says where the true corners lie in that quad's own coordinates; sides with a
clear edge are then snapped onto it again.

Contract (the manifest's optional "corner_model" section, written by `edgeecg-export --corner-model`): an
ONNX model with one float32 input [N, 3, H, W] (BGR, pixel / 255: the page made by `CornerModel.page`) and
one output [N, 8]: for each corner of the rough quad, in its order, the offset (u, v) of the true corner from
the unit square's corner (0, 0), (1, 0), (1, 1), (0, 1), where the unit square is the rough quad.
The section holds "input_size" [H, W], "expand" (the margin, as a fraction of the quad's sides) and
optionally "passes" (default 1): how many times the model runs, each pass from the corners the last one
placed. A page made around a nearly right quad shows the sheet whole and centred, so later passes correct
what the first, seen from a rough quad, left.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeecg.backends.base import Runner
from edgeecg.errors import BackendError, UsageError
from edgeecg.preprocess.geometry import warp_to_size

UNIT = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
MAX_PASSES = 10  # a guard against a typo'd manifest; passes beyond 3-5 changed nothing measurable


def unit_homography(quad: np.ndarray) -> np.ndarray:
    """3x3 matrix from the unit square (corners in `UNIT` order) to `quad` (edge coordinates)."""
    return cv2.getPerspectiveTransform(UNIT, np.asarray(quad, np.float32))


def corner_page(
    img: np.ndarray, quad: np.ndarray, size: tuple[int, int], expand: float
) -> tuple[np.ndarray, np.ndarray]:
    """The sheet flattened from `quad` with a margin of `expand` (fraction of its sides) all round, at
    `size` (h, w), and the unit-square-to-`quad` homography its targets are expressed in."""
    hom = unit_homography(quad)
    e = float(expand)
    outer = np.array([[-e, -e], [1 + e, -e], [1 + e, 1 + e], [-e, 1 + e]], np.float32)
    around = cv2.perspectiveTransform(outer[None], hom)[0]
    return warp_to_size(img, around, size)[0], hom


def to_unit(hom: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Image points [4, 2] in the unit-square coordinates of `hom`'s quad."""
    return cv2.perspectiveTransform(np.asarray(points, np.float32)[None], np.linalg.inv(hom))[0]


class CornerModel:
    """Moves a rough quad's corners to where the flattened sheet's content says they are.

    Args:
        runner: the corner model ONNX behind the Runner protocol (activated on first use).
        input_size: (h, w) of the page it takes.
        expand: margin around the rough quad in the page, as a fraction of its sides.
        passes: model runs, each from the corners the previous one placed.
    """

    def __init__(self, runner: Runner, input_size: tuple[int, int], expand: float, passes: int = 1) -> None:
        if not 0.0 <= float(expand) < 1.0:
            raise UsageError(f"corner model expand must be in [0, 1), got {expand}")
        ok = isinstance(passes, (int, float)) and not isinstance(passes, bool)
        if not ok or not float(passes).is_integer() or not 1 <= passes <= MAX_PASSES:
            raise UsageError(
                f"corner model passes must be a whole number from 1 to {MAX_PASSES}, got {passes}"
            )
        self.runner = runner
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.expand = float(expand)
        self.passes = int(passes)

    @classmethod
    def from_manifest(cls, runner: Runner, section: dict[str, Any]) -> CornerModel:
        """From the manifest's "corner_model" section ({"input_size": [h, w], "expand", "passes"?})."""
        try:
            size = section["input_size"]
            size, expand = (int(size[0]), int(size[1])), float(section["expand"])
        except (KeyError, TypeError, ValueError, IndexError):
            raise UsageError(
                "the manifest's corner_model section needs input_size [h, w] and expand"
            ) from None
        return cls(runner, size, expand, section.get("passes", 1))

    def page(self, img: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's input page for `quad` in `img`, and the unit-square homography (see `corner_page`)."""
        return corner_page(img, quad, self.input_size, self.expand)

    def corners(self, img: np.ndarray, quad: np.ndarray) -> np.ndarray:
        """float32 [4, 2] corners in `img` pixels, in `quad`'s order, after `passes` runs."""
        for _ in range(self.passes):
            quad = self._once(img, quad)
        return quad

    def _once(self, img: np.ndarray, quad: np.ndarray) -> np.ndarray:
        page, hom = self.page(img, quad)
        x = np.ascontiguousarray(page.transpose(2, 0, 1)[None], np.float32) / np.float32(255.0)
        self.runner.activate()  # idempotent: loaded on first use
        out = np.asarray(next(iter(self.runner.infer(x).values())), np.float64).reshape(-1)
        if out.size != 8 or not np.isfinite(out).all():
            raise BackendError(f"corner model output must be 8 finite numbers per image, got {out[:8]}")
        return cv2.perspectiveTransform((UNIT + out.reshape(4, 2)).astype(np.float32)[None], hom)[0]
