"""Contrast-limited adaptive histogram equalisation (CLAHE) on the lightness channel or on grey.

Run it on the small, model-sized image: at phone-photo size it costs tens of milliseconds more.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from edgeecg.errors import UsageError

SPACES = ("lab", "gray", "none")


_local = threading.local()


def _clahe(clip: float, tiles: tuple[int, int]) -> cv2.CLAHE:
    """A CLAHE object per thread and setting: `apply` works in buffers the object owns, so one object
    shared by threads (the training cache's builders, a server's workers) mixes their images."""
    cache = _local.__dict__.setdefault("clahe", {})
    key = (float(clip), tuple(tiles))
    if key not in cache:
        cache[key] = cv2.createCLAHE(clipLimit=clip, tileGridSize=tiles)
    return cache[key]


def apply_clahe(
    img_bgr: np.ndarray, clip: float = 2.0, tiles: tuple[int, int] = (8, 8), space: str = "lab"
) -> np.ndarray:
    """Equalise a BGR image.

    Args:
        img_bgr: uint8 HxWx3 BGR image.
        clip: CLAHE clip limit (contrast cap per tile; OpenCV's clipLimit).
        tiles: tile grid (columns, rows), OpenCV's tileGridSize.
        space: "lab" equalises L of CIE L*a*b* and keeps colour; "gray" equalises grey and returns it as
            three equal channels; "none" returns the input unchanged.

    Returns:
        uint8 HxWx3 BGR image.
    """
    if space == "none":
        return img_bgr
    tiles = (int(tiles[0]), int(tiles[1]))
    if clip <= 0 or min(tiles) < 1:
        raise UsageError(f"CLAHE needs clip > 0 and tiles >= 1, got clip={clip} tiles={tiles}")
    clahe = _clahe(float(clip), tiles)
    if space == "lab":
        lab = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2LAB)
        lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    if space == "gray":
        gray = clahe.apply(cv2.cvtColor(img_bgr, cv2.COLOR_BGR2GRAY))
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    raise UsageError(f"unknown CLAHE space {space!r} (choose from {', '.join(SPACES)})")
