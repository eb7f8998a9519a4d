"""Paper corners: ordering, checks, mask -> quadrilateral, and a classical OpenCV fallback.

Every quadrilateral here is float32 [4, 2] (x, y) in image pixels, clockwise from the paper's top-left
(top-left, top-right, bottom-right, bottom-left), the order the generator's `Geometry.paper_quad` uses.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from edgeecg.preprocess.geometry import shrink

log = logging.getLogger(__name__)


def order_corners(pts: np.ndarray) -> np.ndarray:
    """Order four points clockwise from the top-left (image y points down).

    Sorted by angle around the centroid, then rotated so that the point with the smallest x + y comes first;
    robust for the rotations a handheld photo has (up to about 45 degrees).
    """
    pts = np.asarray(pts, np.float32).reshape(4, 2)  # any [4, 2]-compatible layout
    c = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])  # clockwise on screen as the angle grows
    pts = pts[np.argsort(ang)]
    start = int(np.argmin(pts.sum(1)))
    return np.roll(pts, -start, axis=0)


def quad_area(quad: np.ndarray) -> float:
    """Area of a polygon (shoelace), in square pixels."""
    x, y = quad[:, 0], quad[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def is_valid_quad(quad: np.ndarray | None, min_area: float = 1.0) -> bool:
    """True for a convex, non-degenerate quadrilateral of finite numbers."""
    if quad is None or quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        return False
    if quad_area(quad) < min_area:
        return False
    return bool(cv2.isContourConvex(quad.astype(np.float32).reshape(4, 1, 2)))  # [4, 2] -> cv2 contour


def box_corners(box: np.ndarray) -> np.ndarray:
    """The four corners of an xyxy box, clockwise from the top-left."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def quad_from_mask(mask: np.ndarray, min_fraction: float = 0.05) -> np.ndarray | None:
    """The quadrilateral that best fits the largest blob of a binary mask.

    The blob's convex hull is simplified with approxPolyDP, widening the tolerance until four points remain;
    when it never gives exactly four, the minimum-area rectangle is used.

    Args:
        mask: HxW, nonzero = paper.
        min_fraction: blobs smaller than this fraction of the mask are ignored (None returned).

    Returns:
        float32 [4, 2] ordered corners, or None.
    """
    m = (mask > 0).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    cnt = max(contours, key=cv2.contourArea)
    if cv2.contourArea(cnt) < min_fraction * m.size:
        return None
    hull = cv2.convexHull(cnt)
    peri = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float32)  # [4, 1, 2] -> [4, 2]
            break
        if len(approx) < 4:
            break
    if quad is None:
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float32)
    return order_corners(quad)


def classical_corners(
    img_bgr: np.ndarray, box: np.ndarray | None = None, work_size: int = 256, min_contrast: float = 60.0
) -> np.ndarray | None:
    """Find the paper's quadrilateral with plain OpenCV (no model): the bright, low-saturation sheet.

    Works on a small copy (longest side `work_size`) of the region `box` (or the whole image): Otsu
    threshold on brightness minus half the saturation, a closing that fills the grid and trace lines, the
    largest blob, then `quad_from_mask`. When the two Otsu classes differ by less than `min_contrast` grey
    levels there is no paper/background edge to find (a full-frame scan, pink grid and all): the whole
    region is the paper.

    Args:
        img_bgr: uint8 HxWx3 BGR image.
        box: xyxy region to search (a detector box, slightly enlarged by the caller), or None for all.
        work_size: longest side of the working copy.

    Returns:
        float32 [4, 2] corners in image pixels, or None when nothing paper-like is found.
    """
    h, w = img_bgr.shape[:2]
    if box is None:
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    roi = img_bgr[y0:y1, x0:x1]
    scale = work_size / max(roi.shape[:2])
    if scale < 1:
        roi = shrink(
            roi, (max(int(round(roi.shape[1] * scale)), 1), max(int(round(roi.shape[0] * scale)), 1))
        )
    small = roi
    scale = small.shape[1] / (x1 - x0)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    # paper is bright and nearly colourless; desks, hands and shadows are darker or coloured
    score = cv2.subtract(hsv[:, :, 2], hsv[:, :, 1] // 2)
    score = cv2.GaussianBlur(score, (5, 5), 0)
    t, mask = cv2.threshold(score, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hi, lo = score[mask > 0], score[mask == 0]
    if not hi.size or not lo.size or float(hi.mean()) - float(lo.mean()) < min_contrast:
        return box_corners(np.array([x0, y0, x1, y1], np.float32))
    k = max(3, int(round(min(small.shape[:2]) * 0.03)) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    quad = quad_from_mask(mask, min_fraction=0.1)
    if quad is None:
        return None
    # contour points are pixel indices; +0.5 then /scale maps pixel centres back, clip to the region
    quad = (quad + 0.5) / scale - 0.5 + np.array([x0, y0], np.float32)
    quad = np.clip(quad, [0, 0], [w, h]).astype(np.float32)
    # a blob hugging the working copy's border edge reaches the image edge: snap it there
    tol = 1.5 / scale
    quad[:, 0] = np.where(quad[:, 0] < tol, 0, np.where(quad[:, 0] > w - tol, w, quad[:, 0]))
    quad[:, 1] = np.where(quad[:, 1] < tol, 0, np.where(quad[:, 1] > h - tol, h, quad[:, 1]))
    return quad if is_valid_quad(quad) else None
