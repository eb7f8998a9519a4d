"""Corner refinement: rough quads snap onto the paper's straight edges, measured against the ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.handmade import make_hand_scene

from edgeecg.preprocess.corners import box_corners, match_order, refine_corners
from edgeecg.synth import waveforms as W
from edgeecg.synth.scenes import make_scene


def _err(quad: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    """Mean corner distance over the in-frame true corners, as a fraction of the paper diagonal."""
    h, w = shape
    inside = (truth[:, 0] >= 0) & (truth[:, 0] <= w) & (truth[:, 1] >= 0) & (truth[:, 1] <= h)
    diag = (np.linalg.norm(truth[2] - truth[0]) + np.linalg.norm(truth[3] - truth[1])) / 2
    return float(np.linalg.norm(quad[inside] - truth[inside], axis=1).mean() / diag)


def _rough(truth: np.ndarray, rng: np.random.Generator, frac: float) -> np.ndarray:
    """The truth with every corner moved by up to `frac` of the diagonal (as a keypoint head errs)."""
    diag = np.linalg.norm(truth[2] - truth[0])
    return (truth + rng.uniform(-frac, frac, (4, 2)) * diag).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rough_corners_snap_onto_a_hand_made_sheet(seed):
    scene = make_hand_scene((1200, 900), seed=seed)
    rough = _rough(scene.quad, np.random.default_rng(seed), 0.04)
    got = refine_corners(scene.image, rough)
    before, after = _err(rough, scene.quad, (900, 1200)), _err(got, scene.quad, (900, 1200))
    assert after < 0.002, f"refined corners off by {after:.3%} of the diagonal (rough {before:.3%})"


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_rough_corners_snap_onto_synthetic_photos(seed):
    # the generator's photo scenes: perspective, shadows, clutter, fingers; ground truth from the generator
    rng = np.random.default_rng(seed)
    scene = make_scene(W.simulate(rng, [], noise=False), "photo", rng, size=(800, 600))
    truth = np.asarray(scene.geometry.paper_quad, np.float32)
    rough = _rough(truth, rng, 0.03)
    got = refine_corners(scene.image, rough)
    before, after = _err(rough, truth, (600, 800)), _err(got, truth, (600, 800))
    assert after < min(before, 0.015), f"refined {after:.3%} vs rough {before:.3%} of the diagonal"


def test_a_full_frame_sheet_keeps_the_frame():
    # a scan cut at the sheet's edge: no desk anywhere, and the grid's and traces' lines are no paper edge
    full = np.array([[0, 0], [800, 0], [800, 600], [0, 600]], np.float32)
    scene = make_hand_scene((800, 600), quad=full, seed=4)
    np.testing.assert_allclose(refine_corners(scene.image, full), full, atol=1.0)


def test_the_best_supported_candidate_wins():
    scene = make_hand_scene((1200, 900), seed=1)
    wrong = box_corners(np.array([0, 0, 700, 500], np.float32))  # half the sheet and some desk
    good = _rough(scene.quad, np.random.default_rng(0), 0.03)
    got, i, support, edges = refine_corners(scene.image, [wrong, good], return_index=True)
    assert i == 1 and _err(got, scene.quad, (900, 1200)) < 0.002
    assert support > 3.5 and edges == support, "every side of a sheet on a desk has a clear edge"


def test_match_order_follows_the_reference():
    quad = np.array([[10, 10], [90, 10], [90, 60], [10, 60]], np.float32)
    turned = np.roll(quad, 1, axis=0)  # the same sheet, labelled from another corner
    np.testing.assert_array_equal(match_order(turned, quad + 3), quad)


def test_shared_colours_and_one_pass_snapping():
    """The Lab working copy made once gives the same corners as the one refine_corners makes itself; close
    corners snap in one pass onto the sheet; colours of another size are refused."""
    from edgeecg.preprocess.corners import edge_colours
    from edgeecg.preprocess.geometry import working_copy

    scene = make_hand_scene((1200, 900), seed=2)
    work, scale = working_copy(scene.image, 512)
    rough = _rough(scene.quad, np.random.default_rng(2), 0.03) * scale
    own = refine_corners(work, rough, return_index=True)
    shared = refine_corners(work, rough, return_index=True, colours=edge_colours(work))
    np.testing.assert_array_equal(own[0], shared[0])
    assert own[1:] == shared[1:]
    close = (scene.quad + np.random.default_rng(3).uniform(-4, 4, (4, 2))).astype(np.float32) * scale
    snapped, _, support, edges = refine_corners(work, close, band=0.015, return_index=True, narrow_pass=False)
    assert _err(snapped / scale, scene.quad, (900, 1200)) < 0.002 and edges > 3.5 and support == edges
    with pytest.raises(ValueError, match="working copy"):
        refine_corners(work, rough, colours=edge_colours(scene.image))
