"""CLAHE honours its parameters and equals OpenCV's CLAHE on the L channel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.handmade import make_hand_scene

from edgeecg.errors import UsageError
from edgeecg.preprocess.clahe import apply_clahe


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    im = make_hand_scene((320, 240), seed=3).image
    return cv2.convertScaleAbs(im, alpha=0.5, beta=40)  # low contrast, so CLAHE has work to do


def test_lab_equals_opencv_on_L(img):
    out = apply_clahe(img, 3.0, (4, 6), "lab")
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 6)).apply(lab[:, :, 0].copy())
    np.testing.assert_array_equal(out, cv2.cvtColor(lab, cv2.COLOR_LAB2BGR))


def test_gray_equals_opencv_on_grey(img):
    out = apply_clahe(img, 2.0, (8, 8), "gray")
    want = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    assert out.shape == img.shape
    np.testing.assert_array_equal(out[:, :, 0], want)
    np.testing.assert_array_equal(out[:, :, 2], want)


def test_clip_and_tiles_change_the_result(img):
    base = apply_clahe(img, 2.0, (8, 8))
    assert not np.array_equal(base, apply_clahe(img, 4.0, (8, 8))), "clip limit ignored"
    assert not np.array_equal(base, apply_clahe(img, 2.0, (2, 2))), "tile grid ignored"
    assert base.std() > img.std(), "CLAHE should raise the contrast of a flat image"


def test_none_space_is_identity(img):
    assert apply_clahe(img, 2.0, (8, 8), "none") is img


def test_bad_parameters_raise(img):
    with pytest.raises(UsageError):
        apply_clahe(img, 2.0, (8, 8), "hsv")
    with pytest.raises(UsageError):
        apply_clahe(img, 0.0, (8, 8))


def test_threads_do_not_share_clahe_buffers():
    """Pages equalised by several threads at once equal those equalised one by one (a CLAHE object works in
    buffers of its own: shared between threads, it mixed their images into each other's pages)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    pages = [rng.integers(0, 256, (128, 256, 3), dtype=np.uint8) for _ in range(16)]
    serial = [apply_clahe(p, 2.0, (8, 8), "lab") for p in pages]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            threaded = list(pool.map(lambda p: apply_clahe(p, 2.0, (8, 8), "lab"), pages))
            assert all(np.array_equal(a, b) for a, b in zip(threaded, serial, strict=True))
