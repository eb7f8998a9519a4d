"""The Preprocessor: modes, rejection of no-ECG images, debug montage, model input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.handmade import constant_detector_onnx, make_hand_scene, raw_rows

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.bundle import DEFAULT_PREPROCESS
from edgeecg.errors import UsageError
from edgeecg.preprocess import (
    Detector,
    PreprocessConfig,
    Preprocessor,
    save_debug_montage,
    to_model_input,
)

OUT = (96, 128)


def _detector(tmp_path, rows, name="det.onnx") -> Detector:
    path = constant_detector_onnx(tmp_path / name, raw_rows(rows))
    return Detector(OnnxRuntimeRunner(path, threads=1), keypoints=4)


def test_nothing_found_is_rejected_with_its_confidence(tmp_path):
    det = _detector(tmp_path, [[32, 32, 20, 20, 0.07]])
    for mode in ("none", "crop", "warp"):
        prep = Preprocessor(PreprocessConfig(mode=mode), det, OUT)(
            make_hand_scene((320, 240)).image, debug=True
        )
        assert prep.image is None, f"mode {mode}: a rejected image must not reach the classifier"
        assert prep.rejected == "no ECG found (confidence 0.07 < 0.25)"
        assert prep.confidence == pytest.approx(0.07, abs=1e-6)
        assert "input" in prep.stages


def test_empty_output_is_rejected_with_zero_confidence(tmp_path):
    det = _detector(tmp_path, [])
    prep = Preprocessor(PreprocessConfig(), det, OUT)(np.zeros((64, 64, 3), np.uint8))
    assert prep.image is None and prep.confidence == 0.0 and prep.rejected.startswith("no ECG found")


def test_crop_takes_the_box_plus_margin(tmp_path):
    # box covers input x 16..48, y 24..40 of a 64x64 image: exactly one white block
    img = np.zeros((64, 64, 3), np.uint8)
    img[24:40, 16:48] = 255
    det = _detector(tmp_path, [[32, 32, 32, 16, 0.9]])
    cfg = PreprocessConfig(mode="crop", margin=0.0, clahe_space="none")
    prep = Preprocessor(cfg, det, (16, 32))(img)
    assert prep.rejected is None and prep.image.shape == (16, 32, 3)
    assert prep.image.min() == 255
    with_margin = Preprocessor(PreprocessConfig(mode="crop", margin=0.25, clahe_space="none"), det, (16, 32))(
        img
    )
    assert with_margin.image.min() == 0, "a 25% margin must bring in the dark surround"


def test_warp_uses_keypoints_and_falls_back_when_unsure(tmp_path):
    scene = make_hand_scene((640, 480), seed=5)
    q = scene.quad * (64 / 640)  # scene -> 64x64 input; the 480 px height is letterboxed with an 8 px pad
    q[:, 1] += 8
    box = [*(q.min(0) + q.max(0)) / 2, *(q.max(0) - q.min(0))]
    sure = [*box, 0.9, *np.column_stack([q, np.full(4, 0.95)]).ravel()]
    unsure = [*box, 0.9, *np.column_stack([q, np.full(4, 0.1)]).ravel()]
    cfg = PreprocessConfig(mode="warp", corners="keypoints", refine=False)
    p1 = Preprocessor(cfg, _detector(tmp_path, [sure], "a.onnx"), OUT)(scene.image)
    p2 = Preprocessor(cfg, _detector(tmp_path, [unsure], "b.onnx"), OUT)(scene.image)
    assert p1.corner_source == "keypoints" and p2.corner_source == "classical"
    np.testing.assert_allclose(p1.corners, scene.quad, atol=0.5)
    assert np.linalg.norm(p2.corners - scene.quad, axis=1).max() < 0.015 * np.hypot(640, 480)


def test_warp_refines_rough_keypoints_onto_the_sheet(tmp_path):
    scene = make_hand_scene((640, 480), seed=5)
    q = scene.quad + np.array([[12, -9], [-14, 10], [9, 13], [-10, -12]], np.float32)  # ~2% of the diagonal
    q = q * (64 / 640)
    q[:, 1] += 8
    box = [*(q.min(0) + q.max(0)) / 2, *(q.max(0) - q.min(0))]
    det = _detector(tmp_path, [[*box, 0.9, *np.column_stack([q, np.full(4, 0.95)]).ravel()]])
    rough = Preprocessor(PreprocessConfig(mode="warp", refine=False), det, OUT)(scene.image)
    fine = Preprocessor(PreprocessConfig(mode="warp"), det, OUT)(scene.image)
    diag = np.hypot(640, 480)
    assert rough.corner_source == "keypoints"
    assert np.linalg.norm(rough.corners - scene.quad, axis=1).mean() > 0.015 * diag
    assert fine.corner_source in ("keypoints+refined", "classical+refined", "classical")
    assert np.linalg.norm(fine.corners - scene.quad, axis=1).max() < 0.003 * diag


def test_without_detector_crop_uses_the_whole_image():
    img = make_hand_scene((320, 240)).image
    prep = Preprocessor(PreprocessConfig(mode="crop", clahe_space="none"), None, (240, 320))(img)
    assert prep.rejected is None and prep.confidence == 1.0 and prep.box is None
    np.testing.assert_array_equal(prep.image, img)


def test_modes_give_model_sized_images_and_timings():
    img = make_hand_scene((400, 300), seed=6).image
    for mode in ("none", "crop", "warp"):
        prep = Preprocessor(PreprocessConfig(mode=mode, corners="classical"), None, OUT)(img)
        assert prep.image.shape == (*OUT, 3) and prep.image.dtype == np.uint8
        assert {"clahe", "total"} <= set(prep.timings)


def test_debug_montage_has_every_stage(tmp_path):
    img = make_hand_scene((400, 300), seed=7).image
    prep = Preprocessor(PreprocessConfig(mode="warp", corners="classical"), None, OUT)(img, debug=True)
    assert list(prep.stages) == ["input", "warp", "clahe"]
    path = tmp_path / "dbg" / "x.png"
    save_debug_montage(prep, path)
    montage = cv2.imread(str(path))
    assert montage is not None and montage.shape[0] == 360 and montage.shape[1] > 3 * 360


def test_to_model_input_normalises_and_orders_channels():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 2] = 255, 51  # B = 255, R = 51
    x = to_model_input([img, img], mean=[0.2, 0.0, 0.0], std=[0.5, 1.0, 1.0], channel_order="RGB")
    assert x.shape == (2, 3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], 0.0, atol=1e-6)  # R: (0.2 - 0.2) / 0.5
    np.testing.assert_allclose(x[0, 2], 1.0, atol=1e-6)  # B last in RGB order
    xb = to_model_input([img], mean=[0, 0, 0], std=[1, 1, 1], channel_order="BGR")
    np.testing.assert_allclose(xb[0, 0], 1.0, atol=1e-6)


def test_config_from_manifest_and_validation():
    cfg = PreprocessConfig.from_manifest(DEFAULT_PREPROCESS, {"conf_threshold": 0.4})
    assert cfg == PreprocessConfig(conf_threshold=0.4)
    custom = PreprocessConfig.from_manifest(
        {
            "mode": "warp",
            "corners": "classical",
            "clahe": {"clip_limit": 3.0, "tile_grid": [4, 4], "space": "gray"},
        }
    )
    assert not custom.refine, "a manifest without 'refine' predates corner refinement"
    assert (custom.mode, custom.clahe_clip, custom.clahe_tiles, custom.clahe_space) == (
        "warp",
        3.0,
        (4, 4),
        "gray",
    )
    assert PreprocessConfig.from_manifest(custom.to_manifest()) == custom
    with pytest.raises(UsageError):
        PreprocessConfig(mode="zoom")
    with pytest.raises(UsageError):
        Preprocessor(PreprocessConfig(mode="warp", corners="sam"), None, OUT)


def test_warp_box_follows_the_edges_found_inside_the_frame(tmp_path):
    scene = make_hand_scene((640, 480), seed=5)
    truth = np.r_[scene.quad.min(0), scene.quad.max(0)]
    # a detector box 10% too wide: refinement finds the four edges, so the reported box is the sheet's
    loose = truth + np.array([-40, -30, 40, 30], np.float32)
    b = loose * (64 / 640) + np.array([0, 8, 0, 8])
    det = _detector(tmp_path, [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1], 0.9]])
    warp = Preprocessor(PreprocessConfig(mode="warp", corners="classical"), det, OUT)(scene.image)
    np.testing.assert_allclose(warp.box, truth, atol=3)
    crop = Preprocessor(PreprocessConfig(mode="crop"), det, OUT)(scene.image)
    np.testing.assert_allclose(crop.box, loose, atol=8)  # crop mode keeps the detector's box


def test_corner_source_is_typed_state_shown_as_one_string():
    from edgeecg.preprocess.chain import CornerSource

    assert str(CornerSource("classical", refined=True, model=True, landscape=True, turned=True)) == (
        "classical+refined+model+landscape+turned"
    )
    assert str(CornerSource("keypoints")) == "keypoints"


def test_the_box_from_edges_needs_the_sides_found_and_an_unmoved_frame_side_is_only_the_search_region():
    from edgeecg.preprocess.chain import CornerSource, _box_from_corners

    plain, refined, placed = (
        CornerSource("classical"),
        CornerSource("classical", refined=True),
        CornerSource("classical", model=True),
    )

    shape = (600, 800)
    inside = np.array([[35, 25], [742, 49], [760, 542], [40, 544]], np.float32)
    assert _box_from_corners(inside, 3.8, plain, shape)
    assert not _box_from_corners(inside, 2.5, refined, shape)  # a side not found
    assert _box_from_corners(inside, 0.0, placed, shape)  # placed from the sheet's content
    corner = inside.copy()
    corner[3] = [0, 544]  # one corner of a tilted sheet on the frame's left edge: still the sheet's box
    assert _box_from_corners(corner, 3.8, plain, shape)
    side = inside.copy()
    side[[0, 3], 0] = 0  # the whole left side on the frame's edge: the sheet runs on beyond it
    assert _box_from_corners(side, 3.8, refined, shape)  # moved onto the sheet's other sides
    assert not _box_from_corners(side, 3.8, plain, shape)  # unmoved: the detector's box, enlarged
    frame = np.array([[0, 0], [800, 0], [800, 600], [0, 600]], np.float32)
    assert _box_from_corners(frame, 4.0, plain, shape)  # a page that fills the picture


def test_a_sheet_lying_a_quarter_turned_is_warped_landscape():
    # the sheet's top-left lies at the picture's top-right: its outline reads portrait, ECG sheets are landscape
    quad = np.array([[560, 80], [560, 520], [240, 520], [240, 80]], np.float32)
    scene = make_hand_scene((800, 600), quad=quad, seed=3)
    prep = Preprocessor(PreprocessConfig(mode="warp", corners="classical"), None, OUT)(scene.image)
    assert prep.corner_source.endswith("+landscape")
    np.testing.assert_allclose(prep.corners, quad, atol=3)
    upright = Preprocessor(PreprocessConfig(mode="warp", corners="classical"), None, OUT)(
        make_hand_scene((800, 600), seed=3).image
    )
    assert "landscape" not in upright.corner_source


def test_a_tall_picture_cut_from_a_page_is_not_turned():
    # a portrait photo of part of a page: the frame cuts the sheet's width, so its outline says nothing
    scene = make_hand_scene((800, 600), seed=3)
    x0, x1 = int(scene.quad[:, 0].min()) + 120, int(scene.quad[:, 0].max()) - 120
    part = np.ascontiguousarray(scene.image[:, x0:x1])
    prep = Preprocessor(PreprocessConfig(mode="warp", corners="classical"), None, OUT)(part)
    assert "landscape" not in prep.corner_source


def test_landscape_order_takes_the_quarter_turn_nearest_the_keypoints():
    from edgeecg.preprocess.corners import landscape_order

    portrait = np.array([[240, 80], [560, 80], [560, 520], [240, 520]], np.float32)
    np.testing.assert_array_equal(landscape_order(portrait), np.roll(portrait, -1, axis=0))
    keypoints = np.roll(portrait, 1, axis=0) + 5  # the detector saw the top-left at the bottom-left
    np.testing.assert_array_equal(landscape_order(portrait, keypoints), np.roll(portrait, 1, axis=0))


def test_below_the_detector_threshold_the_verifier_judges_the_whole_frame(bundled_chain):
    """A sheet the detector is unsure of (here: its threshold raised above every confidence) is not turned
    away by the detector when a verifier stands behind it: the check looks at the whole frame, keeps an
    ECG and turns away a picture without one, with its own reason."""
    import dataclasses
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    page = cv2.imread(str(root / "examples" / "scan_sttc.jpg"), cv2.IMREAD_COLOR)
    blank = np.full((600, 800, 3), 128, np.uint8)
    cv2.putText(blank, "no ECG here", (200, 300), cv2.FONT_HERSHEY_SIMPLEX, 2, (20, 20, 20), 3)
    unsure = Preprocessor(
        dataclasses.replace(bundled_chain.cfg, conf_threshold=0.999),
        bundled_chain.detector,
        bundled_chain.out_size,
        verifier=bundled_chain.verifier,
        corner_model=bundled_chain.corner_model,
    )
    kept = unsure(page)
    assert kept.rejected is None and kept.confidence < 0.999 and kept.image is not None
    gone = unsure(blank)
    assert gone.rejected is not None and "verifier" in gone.rejected
    strict = Preprocessor(
        dataclasses.replace(unsure.cfg, full_frame_check=False),
        bundled_chain.detector,
        bundled_chain.out_size,
        verifier=bundled_chain.verifier,
        corner_model=bundled_chain.corner_model,
    )
    assert "confidence" in (strict(page).rejected or ""), "the detector alone decides again"
    # the manifest carries the choice; a manifest from before it existed describes a chain without it
    assert PreprocessConfig.from_manifest({"mode": "warp", "full_frame_check": True}).full_frame_check
    assert not PreprocessConfig.from_manifest({"mode": "warp"}).full_frame_check
    assert PreprocessConfig(full_frame_check=False).to_manifest()["full_frame_check"] is False


def test_one_normalisation_for_training_serving_and_export():
    """Training's tensors, the runtime's batch and the export's parity batch are one function's output; a
    pixel is pinned by hand so that the shared function cannot drift either."""
    torch = pytest.importorskip("torch")
    from edgeecg.export.onnx_export import manifest_batch
    from edgeecg.train.data import to_tensor

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    served = to_model_input([img], mean, std, "RGB")[0]
    trained = to_tensor(img, mean, std)
    assert isinstance(trained, torch.Tensor) and np.array_equal(trained.numpy(), served)
    cfg = {"height": 8, "width": 16, "mean": mean, "std": std, "channel_order": "RGB"}
    assert np.array_equal(manifest_batch([img], cfg)[0], served)
    b, g, r = (float(v) for v in img[3, 5])
    want = [(r / 255 - mean[0]) / std[0], (g / 255 - mean[1]) / std[1], (b / 255 - mean[2]) / std[2]]
    np.testing.assert_allclose(served[:, 3, 5], want, rtol=1e-5)
