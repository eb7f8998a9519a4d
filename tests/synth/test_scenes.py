"""Scenes and artefacts: the ground-truth quad follows every transform, determinism, negatives."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeecg import LEADS
from edgeecg.synth import artefacts as art
from edgeecg.synth.ecgrecord import ECGRecord
from edgeecg.synth.render import RenderConfig
from edgeecg.synth.scenes import Scene, camera_quad, make_scene

SIZE = (640, 480)
DARK = (60, 35, 20)  # BGR background that contrasts with white paper in colour and in grey


def small_record(seed: int = 0) -> ECGRecord:
    """Gaussian bumps per lead, enough to print (the simulator is tested on its own)."""
    fs, n = 250.0, 2500
    t = np.arange(n) / fs
    rng = np.random.default_rng(seed)
    sig = np.zeros((12, n), np.float32)
    for k in range(12):
        for b in np.arange(0.4, 10.0, 0.9):
            sig[k] += rng.uniform(0.5, 1.2) * np.exp(-0.5 * ((t - b) / 0.015) ** 2)
    return ECGRecord(sig, fs, {"MI": 0, "AF": 0, "HYP": 0, "CD": 0, "STTC": 0}, record=f"r{seed}")


def _gray(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    x = np.clip(np.floor(pts[:, 0]).astype(int), 0, img.shape[1] - 1)
    y = np.clip(np.floor(pts[:, 1]).astype(int), 0, img.shape[0] - 1)
    return g[y, x]


def edge_agreement(img: np.ndarray, quad: np.ndarray, offset: float = 3.0) -> list[float]:
    """For each quad edge, the fraction of points where the pixel `offset` px inside is clearly brighter
    (paper) than the pixel `offset` px outside (background). Edges with too few points in the image are
    left out (NaN)."""
    q = np.asarray(quad, np.float64)
    centre = q.mean(axis=0)
    H, W = img.shape[:2]
    out = []
    for e in range(4):
        a, b = q[e], q[(e + 1) % 4]
        d = (b - a) / np.linalg.norm(b - a)
        n = np.array([d[1], -d[0]])
        if np.dot((a + b) / 2 - centre, n) < 0:
            n = -n  # n points away from the sheet
        t = np.linspace(0.05, 0.95, 120)[:, None]
        p = a + (b - a) * t
        inside, outside = p - n * offset, p + n * offset
        ok = np.all(
            (inside >= 1) & (inside < [W - 1, H - 1]) & (outside >= 1) & (outside < [W - 1, H - 1]), axis=1
        )
        if ok.sum() < 15:
            out.append(float("nan"))
            continue
        gi, go = _gray(img, inside[ok]), _gray(img, outside[ok])
        out.append(float(np.mean(gi > go * 1.4 + 12)))
    return out


def _scene(style: str, seed: int, **kw) -> Scene:
    bg = np.full((SIZE[1], SIZE[0], 3), DARK, np.uint8)
    cfg = RenderConfig(grid="red", paper_color=(255, 255, 255))
    return make_scene(
        small_record(seed), style, np.random.default_rng(seed), size=SIZE, render=cfg, background=bg, **kw
    )


@pytest.mark.parametrize("style", ["scan", "photo"])
def test_quad_matches_the_drawn_sheet(style: str) -> None:
    checked = 0
    for seed in range(8):
        sc = _scene(style, seed)
        assert sc.image.shape == (SIZE[1], SIZE[0], 3) and sc.image.dtype == np.uint8
        assert sc.style == style
        agree = edge_agreement(sc.image, sc.geometry.paper_quad)
        valid = [f for f in agree if not np.isnan(f)]
        checked += len(valid)
        # Fingers, stamps and ink may cover part of an edge; a quad 3 px off fails nearly everywhere.
        assert min(valid, default=1.0) >= 0.6, f"{style} seed {seed}: edge agreement {agree}"
        assert np.mean(valid) >= 0.9 if valid else True, f"{style} seed {seed}: edge agreement {agree}"
        # The check has teeth: the same quad moved 6 px does not match (where any edge is in the frame;
        # a tight scan whose grid runs off every side has no edge to check).
        moved = sc.geometry.paper_quad + np.array([6.0, 6.0], np.float32)
        if valid:
            assert np.nanmin(edge_agreement(sc.image, moved)) < 0.5, f"{style} seed {seed}: check cannot fail"
    assert checked >= 16


def test_clean_scene_is_the_page_resized() -> None:
    sc = _scene("clean", 1)
    W, H = SIZE
    np.testing.assert_allclose(sc.geometry.paper_quad, [[0, 0], [W, 0], [W, H], [0, H]], atol=1e-3)
    assert set(sc.geometry.lead_boxes) == set(LEADS) | {"II_rhythm"}
    # The sheet fills the image: no background colour anywhere along the border.
    border = np.concatenate([sc.image[0], sc.image[-1], sc.image[:, 0], sc.image[:, -1]])
    assert border.min() > 200


@pytest.mark.parametrize("style", ["clean", "scan", "photo", "negative"])
def test_same_seed_same_bytes(style: str) -> None:
    a = make_scene(small_record(), style, np.random.default_rng(5), size=(320, 240))
    b = make_scene(small_record(), style, np.random.default_rng(5), size=(320, 240))
    c = make_scene(small_record(), style, np.random.default_rng(6), size=(320, 240))
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.geometry is None and b.geometry is None) or a.geometry.to_json() == b.geometry.to_json()
    assert a.image.tobytes() != c.image.tobytes()


def test_lead_boxes_follow_the_sheet() -> None:
    for seed in range(4):
        sc = _scene("photo", seed)
        x0, y0, x1, y1 = sc.geometry.paper_box
        for name, box in sc.geometry.lead_boxes.items():
            assert box[0] >= x0 - 1 and box[2] <= x1 + 1 and box[1] >= y0 - 1 and box[3] <= y1 + 1, name


def test_negatives_have_no_ecg_and_differ_from_positives() -> None:
    for seed in range(6):
        neg = make_scene(small_record(), "negative", np.random.default_rng(seed), size=SIZE)
        assert neg.geometry is None and neg.style == "negative"
        assert neg.image.shape == (SIZE[1], SIZE[0], 3)
        none_record = make_scene(None, "photo", np.random.default_rng(seed), size=SIZE)
        assert none_record.geometry is None and none_record.style == "negative"
        pos = make_scene(small_record(), "photo", np.random.default_rng(seed), size=SIZE)
        assert pos.geometry is not None
        assert np.abs(pos.image.astype(np.int16) - neg.image).mean() > 5


def test_natural_sizes() -> None:
    cfg = RenderConfig(dpi=60.0)
    clean = make_scene(small_record(), "clean", np.random.default_rng(0), render=cfg)
    assert clean.image.shape[:2] == cfg.page_size[::-1]
    scan = make_scene(small_record(), "scan", np.random.default_rng(0), render=cfg)
    assert scan.image.shape[:2] == cfg.page_size[::-1]
    with pytest.raises(ValueError, match="style"):
        make_scene(small_record(), "fax", np.random.default_rng(0))


def test_camera_quad_coverage_and_orientation() -> None:
    for seed in range(30):
        q = camera_quad((279.0, 216.0), (1600, 1200), np.random.default_rng(seed))
        x, y = q[:, 0].astype(np.float64), q[:, 1].astype(np.float64)
        area = 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        assert area > 0, "quad must be clockwise in image coordinates (y down)"
        assert 0.3 <= area / (1600 * 1200) <= 1.0


# ------------------------------------------------------------------------------------------ artefacts


def test_catmull_rom_passes_through_its_points() -> None:
    pts = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    closed = art.catmull_rom(pts, 40, closed=True)
    assert closed.shape == (40, 2) and closed.dtype == np.float32
    np.testing.assert_allclose(closed[::10], pts, atol=1e-4)  # samples 0, 10, 20, 30 are the knots
    open_ = art.catmull_rom(pts, 31, closed=False)
    np.testing.assert_allclose(open_[[0, 10, 20, 30]], pts, atol=1e-4)
    with pytest.raises(ValueError):
        art.catmull_rom(pts[:2], 10, closed=True)


@pytest.mark.parametrize("op", ["rotate", "perspective"])
def test_geometric_artefacts_return_the_homography_they_applied(op: str) -> None:
    img = np.zeros((300, 400, 3), np.uint8)
    img[100:120, 250:280] = 255  # a bright block, centre (265, 110) in corner coordinates
    fn = art.rotate if op == "rotate" else art.perspective
    out, h = fn(
        img, np.random.default_rng(3), **({"max_deg": 20.0, "fill": (0, 0, 0)} if op == "rotate" else {})
    )
    g = out[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0 : g.shape[0], 0 : g.shape[1]] + 0.5  # pixel centres in corner coordinates
    centroid = np.array([(g * xs).sum(), (g * ys).sum()]) / g.sum()
    p = h @ np.array([265.0, 110.0, 1.0])
    np.testing.assert_allclose(centroid, p[:2] / p[2], atol=0.6)


def test_photometric_artefacts_keep_shape_and_are_deterministic() -> None:
    img = np.full((120, 160, 3), 200, np.uint8)
    cv2.line(img, (0, 60), (159, 60), (0, 0, 0), 2)
    quad = np.array([[20, 20], [140, 20], [140, 100], [20, 100]], np.float32)
    ops = {
        "uneven_light": art.uneven_light,
        "shadow": art.shadow,
        "crease": art.crease,
        "wrinkles": art.wrinkles,
        "blur": art.blur,
        "sensor_noise": art.sensor_noise,
        "jpeg": art.jpeg,
        "scribble": art.scribble,
        "stamp": art.stamp,
        "fingers": lambda im, rng: art.fingers(im, rng, quad, n=2),
    }
    for name, fn in ops.items():
        a = fn(img, np.random.default_rng(1))
        b = fn(img, np.random.default_rng(1))
        assert a.shape == img.shape and a.dtype == np.uint8, name
        assert a.tobytes() == b.tobytes(), f"{name} is not deterministic"
        assert not np.array_equal(a, img) or name == "stamp", f"{name} changed nothing"
    assert img[0, 0, 0] == 200  # inputs are not modified in place
    shade = art.shadow_field((480, 640), np.random.default_rng(0))
    assert shade.max() <= 1.0 + 1e-6 and shade.min() < 0.95  # shadows only darken


def test_some_scans_are_tight_with_the_sheet_past_every_edge() -> None:
    W, H = SIZE
    tight = 0
    for seed in range(40):
        quad = _scene("scan", seed).geometry.paper_quad
        x0, y0 = quad.min(axis=0)
        x1, y1 = quad.max(axis=0)
        tight += x0 < 0 and y0 < 0 and x1 > W and y1 > H
    assert 2 <= tight <= 15, f"{tight} of 40 scans overflow the frame on every side (expected ~15%)"


def test_weathered_paper_is_deterministic_and_keeps_the_trace():
    img = np.full((300, 400, 3), 245, np.uint8)
    img[::10, :] = (160, 160, 235)  # a red grid
    img[:, ::10] = (160, 160, 235)
    img[150:153, 50:350] = 20  # a dark trace
    outs = [art.weathered(img, np.random.default_rng(s)) for s in range(12)]
    again = art.weathered(img, np.random.default_rng(3))
    assert np.array_equal(outs[3], again)
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, img) for o in outs) >= 11
    for o in outs:  # the trace stays darker than the paper around it
        g = cv2.cvtColor(o, cv2.COLOR_BGR2GRAY).astype(np.float32)
        assert g[150:153, 60:340].mean() < g[160:190, 60:340].mean() - 40


def test_hue_turn_moves_a_red_grid_to_another_colour():
    red = np.zeros((4, 4, 3), np.uint8)
    red[:] = (40, 40, 220)
    green = art.hue_turn(red, 120)[0, 0].astype(int)
    assert green[1] > green[2] + 100  # red -> green at +120 degrees
    grey = art.hue_turn(red, 0, saturation=0.0)[0, 0].astype(int)
    assert grey.max() - grey.min() <= 2


def test_colour_temperature_is_identity_near_daylight_and_strong_far_from_it():
    white = np.full((2, 2, 3), 255, np.uint8)
    assert art.colour_temperature(white, 6600)[0, 0].min() >= 250
    warm = art.colour_temperature(white, 2000)[0, 0].astype(int)  # BGR
    cold = art.colour_temperature(white, 15000)[0, 0].astype(int)
    assert warm[2] == 255 and warm[0] < 40  # candle light: blue all but gone
    assert cold[0] == 255 and cold[2] < 200


def test_fold_grid_brightens_only_along_the_folds():
    f = art.fold_grid_field((400, 600), np.random.default_rng(1))
    assert f.shape == (400, 600) and f.min() >= 1.0 - 1e-6 and f.max() <= 1.25 + 1e-6
    assert 0.02 < (f > 1.01).mean() < 0.6  # panels stay untouched between the folds


def test_heavy_wear_is_deterministic_keeps_the_trace_and_turns_only_when_asked():
    img = np.full((340, 440, 3), 245, np.uint8)
    img[::10, :] = (160, 160, 235)
    img[:, ::10] = (160, 160, 235)
    img[165:169, 60:380] = 20  # a dark trace
    outs = [art.heavy_wear(img, np.random.default_rng(s)) for s in range(10)]
    assert np.array_equal(outs[4], art.heavy_wear(img, np.random.default_rng(4)))
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert sum(int(o[0, 0].max()) < 60 for o in outs) >= 5  # turned: the cut-off corner is black
    for s in range(10):
        flat = art.heavy_wear(img, np.random.default_rng(s), turn=False)
        g = cv2.GaussianBlur(cv2.cvtColor(flat, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 2)
        assert g[166:168, 100:340].mean() < g[185:215, 100:340].mean() - 15, s  # trace still darker


def test_crumpled_sheet_is_a_lit_blank_sheet():
    a = art.crumpled_sheet((240, 320), np.random.default_rng(5))
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert np.array_equal(a, art.crumpled_sheet((240, 320), np.random.default_rng(5)))
    g = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float32)
    assert np.median(g) > 90 and g.std() > 3  # paper, shaded facets
    # no ink: nothing like a trace, far darker than the paper around it within a few pixels
    assert (g < cv2.GaussianBlur(g, (0, 0), 4) - 60).mean() < 0.001
