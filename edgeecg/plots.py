"""ROC-curve pictures drawn with OpenCV, so `edgeecg eval` and training draw the same plots with nothing
beyond the runtime's own dependencies (no matplotlib)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgeecg import LABELS
from edgeecg.metrics import roc_auc, roc_curve

__all__ = ["roc_image", "plot_roc"]

_SIZE = 400  # pixels a side
_PAD = (50, 20, 45, 35)  # left, right, bottom, top: room for tick labels and the title
_INK, _GRID, _CURVE = (40, 40, 40), (225, 225, 225), (180, 90, 20)


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float = 0.45, right: bool = False) -> None:
    if right:
        (w, _), _ = cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        org = (org[0] - w, org[1])
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _INK, 1, cv2.LINE_AA)


def roc_image(fpr: np.ndarray, tpr: np.ndarray, auroc: float, title: str = "") -> np.ndarray:
    """A BGR picture of one ROC curve: axes with ticks at 0.2 steps, the chance diagonal, the AUROC."""
    left, right, bottom, top = _PAD
    img = np.full((_SIZE, _SIZE, 3), 255, np.uint8)
    w, h = _SIZE - left - right, _SIZE - top - bottom

    def at(x: float, y: float) -> tuple[int, int]:
        return int(round(left + x * w)), int(round(top + (1 - y) * h))

    for t in np.linspace(0, 1, 6):
        cv2.line(img, at(t, 0), at(t, 1), _GRID, 1)
        cv2.line(img, at(0, t), at(1, t), _GRID, 1)
        _text(img, f"{t:.1f}", (at(t, 0)[0] - 10, at(t, 0)[1] + 16), 0.38)
        _text(img, f"{t:.1f}", (at(0, t)[0] - 5, at(0, t)[1] + 4), 0.38, right=True)
    cv2.rectangle(img, at(0, 1), at(1, 0), _INK, 1)
    cv2.line(img, at(0, 0), at(1, 1), (150, 150, 150), 1, cv2.LINE_AA)
    pts = np.array([at(float(x), float(y)) for x, y in zip(fpr, tpr, strict=True)], np.int32)
    cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, _CURVE, 2, cv2.LINE_AA)
    _text(img, "1 - specificity", (left + w // 2 - 50, _SIZE - 8))
    label = np.full((18, 90, 3), 255, np.uint8)
    _text(label, "sensitivity", (2, 13))
    img[top + h // 2 - 45 : top + h // 2 + 45, 4:22] = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    _text(img, title, (left, 22), 0.5)
    _text(img, f"AUROC {auroc:.3f}", at(0.97, 0.06), 0.5, right=True)
    return img


def plot_roc(
    y_true: np.ndarray, scores: np.ndarray, out_dir: str | Path, prefix: str = "roc", title: str = ""
) -> list[Path]:
    """One ROC-curve PNG per class (`{prefix}_{label}.png`); classes lacking a positive or negative are skipped."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for c, name in enumerate(LABELS):
        y = np.asarray(y_true)[:, c]
        if y.min() == y.max():
            continue
        fpr, tpr, _ = roc_curve(y, np.asarray(scores)[:, c])
        img = roc_image(fpr, tpr, roc_auc(y, np.asarray(scores)[:, c]), f"{title} {name}".strip())
        path = out / f"{prefix}_{name}.png"
        if not cv2.imwrite(str(path), img):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths
