"""Crop and perspective warp straight to the model input size.

Both shrink first and work on few pixels: a crop resizes only the region of interest; a warp first
shrinks the quad's bounding region with area averaging (so thin traces survive; warpPerspective alone samples
too sparsely when it shrinks a 12 MP photo many times) and then warps with one composed matrix straight
into the output size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Names how `shrink` resamples; caches of pre-processed pages key on it, so pages made by an earlier
#: resampler are rebuilt rather than mixed with new ones.
RESAMPLER = "area-halving"

#: Paper formats, landscape (width, height) in millimetres; the warp picks the closer aspect.
PAPER_FORMATS: dict[str, tuple[float, float]] = {"letter": (279.0, 216.0), "a4": (297.0, 210.0)}


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to `size` (w, h) with area averaging and no aliasing: a 12 MP image costs ~5 ms.

    Every shrinking step averages all the pixels it drops, so a 1 px grid line or trace neither vanishes
    nor beats into moire, whatever the input's resolution: the same page at 1, 1/2 or 1/4 of its size comes
    out nearly the same. Halving steps (each about a 2x2 box average, cheap) run until the image is within 2x of
    the target, then one area step finishes. OpenCV's INTER_AREA alone does the same but costs ~30 ms from
    12 MP for large non-integer factors; a bilinear jump straight down (the earlier shortcut) skips pixels
    and aliases the grid. Upscaling uses bilinear interpolation.
    """
    w, h = int(size[0]), int(size[1])
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img
    if iw < w or ih < h:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    while iw >= 2 * w and ih >= 2 * h:
        iw, ih = (iw + 1) // 2, (ih + 1) // 2
        # bilinear at (about) half size samples between two pixels: a 2x2 box average, also for odd
        # sizes, where INTER_AREA's non-integer path is ten times slower
        img = cv2.resize(img, (iw, ih), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def expand_box(box: np.ndarray, margin: float, shape: tuple[int, int]) -> np.ndarray:
    """Grow an xyxy box by `margin` of its width/height on each side and clip it to the image (h, w)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    h, w = shape
    return np.array([max(x0 - mx, 0), max(y0 - my, 0), min(x1 + mx, w), min(y1 + my, h)], np.float32)


def crop_resize(img: np.ndarray, box: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Cut the xyxy `box` (rounded outwards) out of `img` and resize only that region to `out_size` (h, w)."""
    h, w = img.shape[:2]
    x0, y0 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x1, y1 = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    if x1 <= x0 or y1 <= y0:  # degenerate box: fall back to the whole image
        x0, y0, x1, y1 = 0, 0, w, h
    roi = img[y0:y1, x0:x1]
    return shrink(roi, (out_size[1], out_size[0]))


def paper_format(quad: np.ndarray) -> tuple[str, float]:
    """The paper format whose aspect is closest to the quad's, and the quad's aspect (width / height).

    The quad's width and height are the means of its opposite edges; portrait sheets compare to the
    rotated format.
    """
    tl, tr, br, bl = quad
    width = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    aspect = float(width / max(height, 1e-6))
    landscape = max(aspect, 1 / max(aspect, 1e-6))
    name = min(
        PAPER_FORMATS, key=lambda k: abs(math.log(PAPER_FORMATS[k][0] / PAPER_FORMATS[k][1] / landscape))
    )
    return name, aspect


def warp_matrix(quad: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """3x3 homography taking the quad's corners (clockwise from top-left) to the output's corners.

    Pixel-edge convention: the quad's corners are points on the paper's outer edge, so they land on the
    outer edges of the output image (0 and w, 0 and h), i.e. at pixel centres -0.5 and w-0.5.
    """
    out_h, out_w = out_size
    dst = np.array([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]], np.float32) - 0.5
    src = np.asarray(quad, np.float32) - 0.5  # image-edge coordinates -> pixel-centre coordinates
    return cv2.getPerspectiveTransform(src, dst)


def warp_to_size(
    img: np.ndarray, quad: np.ndarray, out_size: tuple[int, int], oversample: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the paper inside `quad` to fill an image of `out_size` (h, w).

    The canonical aspect (letter or A4, see `paper_format`) is reached by the same matrix: the output's
    size already fixes the aspect the model sees, so the paper is mapped straight onto it.

    Args:
        img: uint8 HxWx3 image.
        quad: float32 [4, 2] corners, clockwise from the paper's top-left, in `img` pixels (edge convention).
        out_size: (h, w) of the result.
        oversample: shrink the source no further than this many source pixels per output pixel.

    Returns:
        The warped image and the 3x3 matrix from `img` pixels (centre convention) to output pixels.
    """
    h, w = img.shape[:2]
    quad = np.asarray(quad, np.float32)
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        x0, y0, x1, y1 = 0, 0, w, h
    roi = img[y0:y1, x0:x1]
    out_h, out_w = out_size
    # how many source pixels feed one output pixel along the paper's longer side
    side = max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))
    tall = max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))
    s = min(1.0, oversample * max(out_w / max(side, 1), out_h / max(tall, 1)))
    if s < 1.0:
        sw, sh = max(int(round(roi.shape[1] * s)), 1), max(int(round(roi.shape[0] * s)), 1)
        roi = shrink(roi, (sw, sh))
        sx, sy = sw / (x1 - x0), sh / (y1 - y0)
    else:
        sx = sy = 1.0
    # small-image (edge coords) = (full-image - origin) * scale; compose it with the quad -> output homography
    small_quad = (quad - np.array([x0, y0], np.float32)) * np.array([sx, sy], np.float32)
    m_small = warp_matrix(small_quad, out_size)
    out = cv2.warpPerspective(
        roi, m_small, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out, warp_matrix(quad, out_size)


def working_copy(img: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """`img` shrunk to at most `longest` px on its longer side, and the scale [sx, sy] from `img` pixels to
    the copy's (edge coordinates: a point p maps to p * scale). Images already that small come back as is."""
    h, w = img.shape[:2]
    s = min(1.0, longest / max(h, w))
    work = shrink(img, (max(round(w * s), 1), max(round(h * s), 1))) if s < 1 else img
    return work, np.array([work.shape[1] / w, work.shape[0] / h], np.float32)
