"""Crop and warp geometry against the scene's ground-truth corners."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.handmade import make_hand_scene

from edgeecg.preprocess.geometry import (
    crop_resize,
    expand_box,
    paper_format,
    shrink,
    warp_matrix,
    warp_to_size,
)

OUT = (216, 280)  # (h, w): letter-shaped model input


def _reference(scene, out=OUT) -> np.ndarray:
    return cv2.resize(scene.paper, (out[1], out[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_warp_with_true_corners_recovers_the_sheet():
    scene = make_hand_scene((1600, 1200), seed=1)
    out, _ = warp_to_size(scene.image, scene.quad, OUT)
    assert out.shape == (*OUT, 3)
    err = np.abs(out.astype(np.float32) - _reference(scene)).mean()
    # the same warp with corners 3% of the size off shows background and shifted grid: far worse
    off = scene.quad + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32) * 0.03 * 1200
    bad = np.abs(warp_to_size(scene.image, off, OUT)[0].astype(np.float32) - _reference(scene)).mean()
    assert err < 12, f"warp with true corners differs from the sheet by {err:.1f} grey levels"
    assert bad > 2 * err, f"shifted corners should hurt: {bad:.1f} vs {err:.1f}"


def test_warp_matrix_maps_corners_to_output_corners():
    quad = np.array([[100, 80], [900, 120], [950, 700], [60, 680]], np.float32)
    m = warp_matrix(quad, OUT)
    pts = cv2.perspectiveTransform((quad - 0.5).reshape(1, 4, 2), m)[0] + 0.5  # [4, 2] -> [1, 4, 2] -> [4, 2]
    want = np.array([[0, 0], [OUT[1], 0], [OUT[1], OUT[0]], [0, OUT[0]]], np.float32)
    np.testing.assert_allclose(pts, want, atol=1e-3)


def test_grid_corner_marks_land_at_canonical_corners():
    scene = make_hand_scene((1200, 900), seed=2)
    # mark the sheet's four corner regions with distinct colours, then check where the warp puts them
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255)]
    paper = scene.paper.copy()
    ph, pw = paper.shape[:2]
    s = 24
    for (cx, cy), c in zip([(0, 0), (pw - s, 0), (pw - s, ph - s), (0, ph - s)], colours, strict=True):
        paper[cy : cy + s, cx : cx + s] = c
    marked = make_hand_scene((1200, 900), quad=scene.quad, seed=2)
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32) - 0.5
    m = cv2.getPerspectiveTransform(src, scene.quad - 0.5)
    cv2.warpPerspective(
        paper, m, (1200, 900), dst=marked.image, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT
    )
    out, _ = warp_to_size(marked.image, scene.quad, OUT)
    h, w = OUT
    k = 4  # a few pixels into each output corner
    for (y, x), c in zip([(0, 0), (0, w - k), (h - k, w - k), (h - k, 0)], colours, strict=True):
        patch = out[y : y + k, x : x + k].reshape(-1, 3).mean(0)
        assert np.abs(patch - c).max() < 60, f"output corner ({x},{y}) is {patch.round()}, expected {c}"


def test_crop_resize_uses_only_the_box():
    img = np.zeros((400, 600, 3), np.uint8)
    img[100:300, 200:500] = 255
    out = crop_resize(img, np.array([200, 100, 500, 300], np.float32), (64, 96))
    assert out.shape == (64, 96, 3) and out.min() == 255


def test_expand_box_clips_to_image():
    box = expand_box(np.array([10, 10, 90, 50], np.float32), 0.25, (60, 100))
    np.testing.assert_allclose(box, [0, 0, 100, 60])


@pytest.mark.parametrize(("w", "h", "name"), [(279, 216, "letter"), (297, 210, "a4"), (210, 297, "a4")])
def test_paper_format_by_aspect(w, h, name):
    quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32) * 3
    assert paper_format(quad)[0] == name


def _grid_page(h: int, w: int, pitch: float) -> np.ndarray:
    """A pale page with 1 px red grid lines every `pitch` px, turned by 1.3 degrees (so no line sits on the
    pixel lattice): the pattern that aliases into moire when a resize skips pixels."""
    img = np.full((h, w, 3), 235, np.uint8)
    for x in np.arange(0, w, pitch):
        img[:, int(x)] = (150, 150, 230)
    for y in np.arange(0, h, pitch):
        img[int(y), :] = (150, 150, 230)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 1.3, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("out", [(96, 192), (128, 256), (384, 512)])
def test_shrink_does_not_alias_the_grid(out):
    # the exact area average is the reference; a bilinear jump to 2x the target and an area step (the
    # earlier shortcut) differs from it by 7-10 grey levels on average here, as moire
    page = _grid_page(2400, 3200, 9.0)
    ref = cv2.resize(page, (out[1], out[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    got = shrink(page, (out[1], out[0])).astype(np.float32)
    old = cv2.resize(
        cv2.resize(page, (2 * out[1], 2 * out[0]), interpolation=cv2.INTER_LINEAR),
        (out[1], out[0]),
        interpolation=cv2.INTER_AREA,
    ).astype(np.float32)
    err, old_err = np.abs(got - ref).mean(), np.abs(old - ref).mean()
    assert err < 3.5, f"shrink differs from the area average by {err:.2f} grey levels"
    assert old_err > 2 * err, f"the test should tell aliasing apart: {old_err:.2f} vs {err:.2f}"


def test_shrink_gives_the_same_page_at_any_input_resolution():
    page = _grid_page(2400, 3200, 9.0)
    outs = []
    for scale in (1.0, 0.5, 0.25):
        src = page if scale == 1 else cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        outs.append(shrink(src, (192, 96)).astype(np.float32))
    for o in outs[1:]:
        assert np.abs(o - outs[0]).mean() < 2.0


def test_shrink_keeps_the_shape_and_handles_odd_sizes():
    img = _grid_page(1201, 1601, 7.0)
    assert shrink(img, (100, 75)).shape == (75, 100, 3)
    assert shrink(img, (1601, 1201)) is img
    assert shrink(img[:50, :60], (120, 100)).shape == (100, 120, 3)  # upscaling
