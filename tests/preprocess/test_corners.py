"""Corner ordering, mask -> quad and the classical OpenCV corner finder."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.handmade import make_hand_scene

from edgeecg.preprocess.corners import classical_corners, is_valid_quad, order_corners, quad_from_mask


def test_order_corners_any_input_order():
    quad = np.array([[10, 12], [100, 5], [110, 80], [5, 90]], np.float32)
    for perm in ([2, 0, 3, 1], [3, 2, 1, 0], [1, 3, 0, 2]):
        np.testing.assert_array_equal(order_corners(quad[perm]), quad)


def test_order_corners_rotated_sheet():
    c, a = np.array([200.0, 200.0]), np.deg2rad(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    square = np.array([[-100, -60], [100, -60], [100, 60], [-100, 60]]) @ rot.T + c
    out = order_corners(square[::-1])
    np.testing.assert_allclose(out, square, atol=1e-4)  # clockwise from the (rotated) top-left


def test_quad_from_mask_recovers_a_filled_quad():
    quad = np.array([[40, 30], [260, 50], [250, 200], [30, 180]], np.float32)
    mask = np.zeros((240, 300), np.uint8)
    cv2.fillPoly(mask, [quad.astype(np.int32)], 1)
    got = quad_from_mask(mask)
    assert got is not None and np.abs(got - quad).max() < 3


def test_quad_from_mask_ignores_specks():
    mask = np.zeros((100, 100), np.uint8)
    mask[5:8, 5:8] = 1
    assert quad_from_mask(mask) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classical_corners_on_hand_scene(seed):
    scene = make_hand_scene((1200, 900), seed=seed)
    quad = classical_corners(scene.image)
    assert quad is not None and is_valid_quad(quad)
    err = np.linalg.norm(quad - scene.quad, axis=1).max() / np.hypot(1200, 900)
    assert err < 0.015, f"classical corners off by {err:.3%} of the diagonal"


def test_classical_corners_on_full_frame_sheet():
    scene = make_hand_scene((800, 600), quad=np.array([[0, 0], [800, 0], [800, 600], [0, 600]]), seed=4)
    quad = classical_corners(scene.image)
    area = cv2.contourArea(quad)
    assert area >= 0.95 * 800 * 600
