"""The paper renderer: exact grid pitch, calibration pulse height, lead boxes, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from edgeecg import LEADS
from edgeecg.synth.ecgrecord import ECGRecord
from edgeecg.synth.render import GRID_COLORS, Geometry, RenderConfig, render_page

LABELS0 = {"MI": 0, "AF": 0, "HYP": 0, "CD": 0, "STTC": 0}


def beats_record(seed: int = 0, fs: float = 500.0, seconds: float = 10.0) -> ECGRecord:
    """A simple ECG-like record: Gaussian P, QRS and T bumps per lead (the simulator is not needed here)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    sig = np.zeros((12, t.size), np.float32)
    for k in range(12):
        amp = rng.uniform(0.4, 1.4) * (-1 if LEADS[k] == "aVR" else 1)
        for b in np.arange(0.3, seconds, 0.85):
            sig[k] += amp * np.exp(-0.5 * ((t - b) / 0.012) ** 2)
            sig[k] += 0.25 * amp * np.exp(-0.5 * ((t - b - 0.28) / 0.04) ** 2)
            sig[k] += 0.1 * np.exp(-0.5 * ((t - b + 0.16) / 0.03) ** 2)
    meta = {
        "hr": 71,
        "pr": 160,
        "qrs": 92,
        "qt": 380,
        "qtc": 405,
        "axes": [50, 60, 40],
        "age": 61,
        "sex": "F",
    }
    return ECGRecord(sig, fs, dict(LABELS0), record=f"test-{seed}", meta=meta)


def flat_record(fs: float = 500.0, seconds: float = 10.0) -> ECGRecord:
    return ECGRecord(np.zeros((12, int(fs * seconds)), np.float32), fs, dict(LABELS0), record="flat")


def _line_starts(mask: np.ndarray) -> np.ndarray:
    """Indices where a run of True begins."""
    m = mask.astype(np.int8)
    return np.flatnonzero(np.diff(np.concatenate([[0], m])) == 1)


@pytest.mark.parametrize("dpi", [100.0, 173.0, 200.0, 300.0])
@pytest.mark.parametrize("axis", [0, 1])
def test_grid_pitch_is_exact_without_drift(dpi: float, axis: int) -> None:
    cfg = RenderConfig(dpi=dpi, grid="red")
    page, geom = render_page(beats_record(), cfg)
    minor, major = (np.array(c, np.uint8) for c in GRID_COLORS["red"])
    is_minor = np.all(page == minor, axis=2)
    is_major = np.all(page == major, axis=2)
    is_paper = np.all(page == 255, axis=2)
    # Fraction of the unprinted pixels (grid or paper, not trace or text) along each column (axis 0) or
    # row (axis 1) that have a grid colour: a flat trace lying on a grid line must not hide it.
    n = np.maximum((is_minor | is_major | is_paper).sum(axis=axis), 1)
    frac_any = (is_minor | is_major).sum(axis=axis) / n
    frac_major = is_major.sum(axis=axis) / n
    lines = _line_starts(frac_any > 0.45)
    majors = _line_starts(frac_major > 0.45)
    ppm = dpi / 25.4
    assert geom.px_per_mm == pytest.approx(ppm)
    assert len(lines) > 150, f"found only {len(lines)} grid lines"
    gaps = np.diff(lines)
    assert set(gaps.tolist()) <= {int(np.floor(ppm)), int(np.ceil(ppm))}, f"gaps {sorted(set(gaps))} at {ppm}"
    # No drift: line k sits within half a pixel of k * px_per_mm from line 0, across the whole page.
    k = np.arange(len(lines))
    drift = np.abs(lines - lines[0] - k * ppm)
    assert drift.max() <= 0.5 + 1e-9, f"drift up to {drift.max():.2f} px"
    # Major lines are every fifth line, starting at the first.
    assert np.array_equal(majors, lines[::5]), "major lines are not every 5th minor line"


@pytest.mark.parametrize(
    ("gain", "dpi"), [(10.0, 100.0), (10.0, 200.0), (10.0, 300.0), (5.0, 150.0), (20.0, 250.0)]
)
def test_calibration_pulse_is_one_millivolt(gain: float, dpi: float) -> None:
    cfg = RenderConfig(dpi=dpi, gain=gain, grid="red", trace_width_mm=0.2)
    page, geom = render_page(flat_record(), cfg)
    x0, y0, x1, y1 = geom.lead_boxes["I"]
    region = page[int(y0) : int(y1), : int(x0)].astype(np.float32)
    # The trace is black; the red grid keeps a bright red channel, so "dark" = every channel dark.
    darkness = np.clip(160.0 - region.max(axis=2), 0, None)
    rows = np.arange(region.shape[0], dtype=np.float32)[:, None]
    cols = np.flatnonzero(darkness.sum(axis=0) > 0)
    assert cols.size > 0, "no calibration pulse left of lead I"
    extent = np.array([np.ptp(np.flatnonzero(darkness[:, c])) for c in cols])
    flat_cols = cols[extent <= np.median(extent) + 1]  # horizontal segments, not the rising/falling edges
    centroid = (darkness[:, flat_cols] * rows).sum(axis=0) / darkness[:, flat_cols].sum(axis=0)
    mid = (centroid.min() + centroid.max()) / 2
    height_px = centroid[centroid > mid].mean() - centroid[centroid < mid].mean()
    ppm = dpi / 25.4
    assert height_px == pytest.approx(gain * ppm, abs=0.6), f"pulse {height_px:.2f} px, want {gain * ppm:.2f}"
    assert height_px / geom.px_per_mm == pytest.approx(gain, abs=0.1)  # 1 mV spans `gain` mm of grid
    # 200 ms wide: the top segment spans 0.2 s * speed mm.
    top_cols = flat_cols[centroid < mid]
    width_mm = (top_cols.max() - top_cols.min() + 1) / ppm
    assert width_mm == pytest.approx(0.2 * cfg.speed, abs=1.0)


# another printer's manner (RenderConfig.varied): rows packed low, baseline mid-row, names under the trace
VARIED = dict(grid_to_edge=True, rows_span=(0.1, 1.0), baseline=0.55, labels_below=True)


@pytest.mark.parametrize("varied", [False, True])
@pytest.mark.parametrize("layout", ["3x4", "6x2", "12x1"])
def test_lead_boxes_contain_their_trace(layout: str, varied: bool) -> None:
    cfg = RenderConfig(layout=layout, dpi=80.0, trace_width_mm=0.3, **(VARIED if varied else {}))
    base = flat_record()
    ref, geom = render_page(base, cfg)
    t = np.arange(base.signal.shape[1]) / base.fs
    expected_boxes = {"3x4": 13, "6x2": 12, "12x1": 12}[layout]
    assert len(geom.lead_boxes) == expected_boxes
    # the layout travels with the geometry, through a scene's homography and into geometry.jsonl
    assert geom.layout == layout and geom.to_json()["layout"] == layout
    assert geom.transformed(np.diag([0.5, 0.5, 1.0])).layout == layout
    for i, lead in enumerate(LEADS):
        sig = base.signal.copy()
        sig[i] = 0.5 * np.sin(2 * np.pi * 3.0 * t)  # 0.5 mV stays within the nominal row band
        page, _ = render_page(ECGRecord(sig, base.fs, base.labels, record=base.record), cfg)
        # Pixels the lead's trace changed visibly (faint antialiasing fringes aside).
        ys, xs = np.nonzero(np.abs(page.astype(np.int16) - ref).max(axis=2) > 24)
        names = [n for n in geom.lead_boxes if n.split("_")[0] == lead]
        inside = np.zeros(xs.size, bool)
        for n in names:
            x0, y0, x1, y1 = geom.lead_boxes[n]
            hit = (xs >= x0 - 2) & (xs <= x1 + 2) & (ys >= y0 - 2) & (ys <= y1 + 2)
            assert hit.sum() > 50, f"{layout}: no trace of {lead} in box {n}"
            inside |= hit
        assert inside.all(), f"{layout}: {int((~inside).sum())} px of {lead}'s trace outside its box(es)"


def test_same_seed_same_bytes_and_random_configs_render() -> None:
    rec = beats_record(3)
    for seed in range(12):
        cfg = RenderConfig.random(np.random.default_rng(seed))
        cfg = RenderConfig(**{**cfg.__dict__, "dpi": 60.0})  # small pages keep the test fast
        a, ga = render_page(rec, cfg, np.random.default_rng(seed))
        b, gb = render_page(rec, cfg, np.random.default_rng(seed))
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
        assert a.tobytes() == b.tobytes(), f"seed {seed}: two renders differ"
        assert ga.to_json() == gb.to_json()
        w, h = cfg.page_size
        assert a.shape[:2] == (h, w)
        np.testing.assert_allclose(ga.paper_quad, [[0, 0], [w, 0], [w, h], [0, h]])


def test_geometry_transform_and_json() -> None:
    g = Geometry(
        paper_quad=np.array([[0, 0], [100, 0], [100, 50], [0, 50]], np.float32),
        lead_boxes={"I": np.array([10, 10, 20, 20], np.float32)},
        px_per_mm=4.0,
    )
    h = np.array([[2.0, 0, 5], [0, 2.0, 7], [0, 0, 1]])
    t = g.transformed(h)
    np.testing.assert_allclose(t.paper_quad, [[5, 7], [205, 7], [205, 107], [5, 107]])
    np.testing.assert_allclose(t.lead_boxes["I"], [25, 27, 45, 47])
    assert t.px_per_mm == pytest.approx(8.0)
    j = t.to_json()
    assert j["paper_box"] == [5.0, 7.0, 205.0, 107.0]
    assert j["lead_boxes"]["I"] == [25.0, 27.0, 45.0, 47.0]


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="layout"):
        RenderConfig(layout="4x3")
    with pytest.raises(ValueError, match="paper"):
        RenderConfig(paper="legal")
    with pytest.raises(ValueError, match="rows_span"):
        RenderConfig(rows_span=(0.6, 0.4))
    with pytest.raises(ValueError, match="baseline"):
        RenderConfig(baseline=1.2)


def test_varied_layouts_move_rows_and_grid_within_the_page() -> None:
    rec = beats_record(4)
    plain = RenderConfig(dpi=60.0)
    page, geom = render_page(rec, plain)
    ppm = plain.px_per_mm
    corner = page[: int(4 * ppm), : int(4 * ppm)]
    assert (corner == page[0, 0]).all()  # the default grid keeps its margins
    edge, _ = render_page(rec, RenderConfig(dpi=60.0, grid_to_edge=True))
    assert (edge[: int(6 * ppm), : int(6 * ppm)] != edge[0, 0]).any(axis=2).any()  # lines into the corner
    packed = RenderConfig(dpi=60.0, rows_span=(0.5, 1.0))
    _, g = render_page(rec, packed)
    # the same rows in the lower half of the grid, each half as tall
    for name, box in geom.lead_boxes.items():
        moved = g.lead_boxes[name]
        assert moved[1] > box[1] and moved[3] - moved[1] == pytest.approx((box[3] - box[1]) / 2, abs=0.01)
    top, bottom = float(geom.lead_boxes["I"][1]), float(geom.lead_boxes["II_rhythm"][3])
    assert float(g.lead_boxes["II_rhythm"][3]) == pytest.approx(bottom, abs=0.01)
    assert float(g.lead_boxes["I"][1]) == pytest.approx((top + bottom) / 2, abs=0.01)
    rng = np.random.default_rng(0)
    spans = [plain.varied(rng) for _ in range(200)]
    assert all(0.0 <= c.rows_span[0] < c.rows_span[1] <= 1.0 for c in spans)
    assert 40 < sum(c.grid_to_edge for c in spans) < 160 and 40 < sum(c.labels_below for c in spans) < 160
    faint, strong = (
        render_page(rec, RenderConfig(dpi=60.0, grid_contrast=k))[0] for k in ((0.5, 0.5), (1.6, 1.6))
    )
    # the same lines, nearer the paper's colour or further from it
    assert (faint == page).all(axis=2).mean() == pytest.approx((strong == page).all(axis=2).mean(), abs=0.02)
    assert faint.astype(int).sum() > page.astype(int).sum() > strong.astype(int).sum()
    assert {c.layout for c in spans} == {"3x4"} and {c.dpi for c in spans} == {60.0}  # only the layout varies


@pytest.mark.parametrize("layout", ["3x4", "6x2", "12x1"])
def test_short_low_rate_and_gappy_records_render(layout: str) -> None:
    rec = beats_record(fs=100.0, seconds=6.0)  # PTB-XL "lr" rate, shorter than a page
    sig = rec.signal.copy()
    sig[2, 100:200] = np.nan  # a gap, as in some WFDB files
    rec = ECGRecord(sig, rec.fs, rec.labels, record=rec.record, meta=rec.meta)
    page, geom = render_page(rec, RenderConfig(layout=layout, dpi=80.0, speed=50.0))
    assert page.shape[:2] == RenderConfig(dpi=80.0).page_size[::-1]
    for name, (x0, y0, x1, y1) in geom.lead_boxes.items():
        assert 0 <= x0 < x1 <= page.shape[1] and 0 <= y0 < y1 <= page.shape[0], name
