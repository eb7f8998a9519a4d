"""Corner model plumbing: the page it sees, its unit-square offsets, where the chain calls it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.handmade import (
    brightness_verifier_onnx,
    constant_corner_model_onnx,
    make_hand_scene,
    white_on_white_scene,
)

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.errors import BackendError, UsageError
from edgeecg.preprocess import CornerModel, PreprocessConfig, Preprocessor, Verifier
from edgeecg.preprocess.cornermodel import UNIT, corner_page, to_unit, unit_homography
from edgeecg.preprocess.geometry import warp_to_size

OUT = (64, 128)
SIZE = (64, 96)


def test_unit_square_round_trip_and_page_without_margin_is_the_warp():
    scene = make_hand_scene((640, 480), seed=2)
    hom = unit_homography(scene.quad)
    np.testing.assert_allclose(to_unit(hom, scene.quad), UNIT, atol=1e-4)
    page, _ = corner_page(scene.image, scene.quad, SIZE, 0.0)
    np.testing.assert_array_equal(page, warp_to_size(scene.image, scene.quad, SIZE)[0])
    wide, _ = corner_page(scene.image, scene.quad, SIZE, 0.2)
    # with a margin the desk shows all round: the page's border is darker than its middle
    assert wide[:3].mean() < wide[SIZE[0] // 2 - 5 : SIZE[0] // 2 + 5].mean() - 40


def test_offsets_are_read_in_the_rough_quads_unit_square(tmp_path):
    offsets = np.array([0.02, -0.01, 0.0, 0.03, -0.02, 0.0, 0.01, 0.01], np.float32)
    path = constant_corner_model_onnx(tmp_path / "c.onnx", offsets, SIZE)
    scene = make_hand_scene((640, 480), seed=2)
    with OnnxRuntimeRunner(path, threads=1) as r:
        got = CornerModel(r, SIZE, 0.1).corners(scene.image, scene.quad)
    want = cv2.perspectiveTransform((UNIT + offsets.reshape(4, 2))[None], unit_homography(scene.quad))[0]
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert np.abs(got - scene.quad).max() > 5  # the offsets did move the corners


def test_each_pass_starts_from_the_corners_the_last_one_placed(tmp_path):
    offsets = np.array([0.02, -0.01, 0.0, 0.03, -0.02, 0.0, 0.01, 0.01], np.float32)
    path = constant_corner_model_onnx(tmp_path / "c.onnx", offsets, SIZE)
    scene = make_hand_scene((640, 480), seed=2)

    def once(quad):
        return cv2.perspectiveTransform((UNIT + offsets.reshape(4, 2))[None], unit_homography(quad))[0]

    with OnnxRuntimeRunner(path, threads=1) as r:
        three = CornerModel.from_manifest(r, {"input_size": list(SIZE), "expand": 0.1, "passes": 3})
        assert three.passes == 3
        got = three.corners(scene.image, scene.quad)
        # no "passes" in a manifest (bundles before it): one pass, as they were made with
        assert CornerModel.from_manifest(r, {"input_size": list(SIZE), "expand": 0.1}).passes == 1
    np.testing.assert_allclose(got, once(once(once(scene.quad))), atol=1e-2)
    assert np.abs(got - once(scene.quad)).max() > 3  # the later passes did move them on


def test_bad_manifest_and_bad_output_are_clear_errors(tmp_path):
    path = constant_corner_model_onnx(tmp_path / "c.onnx", np.zeros(8), SIZE)
    with OnnxRuntimeRunner(path, threads=1) as r:
        with pytest.raises(UsageError, match="input_size"):
            CornerModel.from_manifest(r, {"expand": 0.1})
        with pytest.raises(UsageError, match="expand"):
            CornerModel(r, SIZE, 1.5)
        for passes in (0, 2.5, "3", True, float("nan"), 11):
            with pytest.raises(UsageError, match="passes"):
                CornerModel.from_manifest(r, {"input_size": list(SIZE), "expand": 0.1, "passes": passes})
    bad = tmp_path / "bad.onnx"
    from fixtures.handmade import brightness_verifier_onnx  # one output number, not eight

    brightness_verifier_onnx(bad, SIZE)
    with OnnxRuntimeRunner(bad, threads=1) as r, pytest.raises(BackendError, match="8 finite numbers"):
        CornerModel(r, SIZE, 0.1).corners(make_hand_scene((320, 240)).image, make_hand_scene((320, 240)).quad)


def _warp(corner_model=None):
    return Preprocessor(
        PreprocessConfig(mode="warp", corners="classical"), None, OUT, corner_model=corner_model
    )


def test_the_chain_asks_the_model_only_where_the_edges_do_not_show(tmp_path):
    offsets = np.array([0.03, 0.02, -0.02, 0.03, -0.03, -0.02, 0.02, -0.03], np.float32)  # shrink
    path = constant_corner_model_onnx(tmp_path / "c.onnx", offsets, SIZE)
    with OnnxRuntimeRunner(path, threads=1) as r:
        corner_model = CornerModel(r, SIZE, 0.1)
        # clear edges on a dark desk: refinement finds all four sides, the model is not asked
        desk = make_hand_scene((800, 600), seed=4).image
        plain, asked = _warp()(desk), _warp(corner_model)(desk)
        assert "+model" not in asked.corner_source
        np.testing.assert_array_equal(asked.corners, plain.corners)
        # white on white: no side found, the model's corners are used (no clear edge to snap them onto)
        lid = white_on_white_scene((800, 600), seed=4).image
        rough, placed = _warp()(lid), _warp(corner_model)(lid)
        assert "+model" in placed.corner_source and "+model" not in rough.corner_source
        want = cv2.perspectiveTransform((UNIT + offsets.reshape(4, 2))[None], unit_homography(rough.corners))[
            0
        ]
        np.testing.assert_allclose(placed.corners, want, atol=1.0)


def test_where_the_check_turns_the_models_page_away_the_sheet_as_found_gets_a_second_look(tmp_path):
    # a model that pushes every corner well out (onto the white lid), and a check that likes dark pages:
    # the model's page (more lid) scores below the page of the corners as found (more paper)
    out = np.array([-0.15, -0.15, 0.15, -0.15, 0.15, 0.15, -0.15, 0.15], np.float32)
    lid = white_on_white_scene((800, 600), seed=4).image
    check_size = (32, 64)
    with (
        OnnxRuntimeRunner(constant_corner_model_onnx(tmp_path / "c.onnx", out, SIZE), threads=1) as cm,
        OnnxRuntimeRunner(brightness_verifier_onnx(tmp_path / "v.onnx", check_size, gain=-20.0)) as vr,
    ):

        def chain(threshold, model=True):
            return Preprocessor(
                PreprocessConfig(mode="warp", corners="classical"), None, OUT,
                verifier=Verifier(vr, check_size, threshold), corner_model=CornerModel(cm, SIZE, 0.1) if model else None,
            )(lid)  # fmt: skip

        modelled, found = chain(0.0), chain(0.0, model=False)
        assert "+model" in modelled.corner_source and "+model" not in found.corner_source
        assert found.ecg_score > 2 * modelled.ecg_score  # the scene does what the test needs
        second = chain((found.ecg_score + modelled.ecg_score) / 2)
        assert second.rejected is None and second.image is not None
        assert second.corner_source == found.corner_source + "+unmodelled"
        np.testing.assert_allclose(second.corners, found.corners, atol=1e-3)
        assert second.ecg_score == pytest.approx(found.ecg_score, abs=1e-6)
        np.testing.assert_array_equal(second.image, found.image)
        # neither page passes: turned away, with the model's page's score
        none = chain(found.ecg_score * 1.5)
        assert none.image is None and none.rejected.startswith("no ECG found")
        assert none.ecg_score == pytest.approx(modelled.ecg_score, abs=1e-6)
