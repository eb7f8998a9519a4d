"""Draw an ECGRecord as a printed 12-lead ECG page (numpy + OpenCV only).

The page follows the paper conventions of ECG-CRITERIA.md: a 1 mm minor / 5 mm major grid whose lines sit
at ``origin + round(k * px_per_mm)`` (exact pitch, no cumulative drift), a 1 mV x 200 ms calibration pulse
at each row start, time-continuous columns, a lead II rhythm strip, lead labels and a printed header.

Coordinates in `Geometry` use the pixel-corner convention: pixel (i, j) covers [i, i+1) x [j, j+1), so a
W x H page has the quad (0, 0), (W, 0), (W, H), (0, H). Homographies passed to `Geometry.transformed`
map corner coordinates of one image to corner coordinates of the next.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from edgeecg import LEADS
from edgeecg.synth.ecgrecord import ECGRecord

logger = logging.getLogger(__name__)

#: Paper sizes in mm, landscape (width, height).
PAPER_MM: dict[str, tuple[float, float]] = {"letter": (279.0, 216.0), "a4": (297.0, 210.0)}

LAYOUTS = ("3x4", "6x2", "12x1")

#: Grid palettes (BGR): (minor line colour, major line colour). "bw" prints no grid by default.
GRID_COLORS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]] | None] = {
    "red": ((175, 175, 250), (70, 70, 225)),
    "pink": ((215, 200, 255), (165, 135, 245)),
    "green": ((190, 230, 190), (100, 180, 100)),
    "blue": ((245, 215, 185), (215, 150, 95)),
    "grey": ((212, 212, 212), (150, 150, 150)),
    "bw": None,
}

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_H = 22.0  # cap height in px of FONT_HERSHEY_SIMPLEX at scale 1 (approx.)

# Standard 3x4 page: columns of leads, each column one quarter of the shown time.
#: The 3x4 layout's four columns of leads, left to right (each column shows 2.5 s of its three leads).
COLUMNS_3X4 = (("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6"))


@dataclass(frozen=True)
class RenderConfig:
    """How a page is printed.

    Attributes:
        layout: "3x4" (3 rows x 4 columns + a lead II rhythm strip), "6x2" or "12x1".
        speed: paper speed in mm/s (25 or 50).
        gain: mm per mV (5, 10 or 20).
        paper: "letter" (279 x 216 mm) or "a4" (297 x 210 mm), landscape.
        dpi: print resolution; px_per_mm = dpi / 25.4.
        grid: grid colour: red, pink, green, blue, grey, or bw (no grid).
        trace_color: BGR colour of the trace and calibration pulse.
        trace_width_mm: nominal trace width.
        header: print the header text (patient, measurements, statement) and footer.
        calibration: draw the 1 mV x 200 ms pulse at each row start.
        lead_labels: print each lead's name at its panel.
        paper_color: BGR colour of the sheet.
        grid_to_edge: the grid covers the whole sheet (as some printers and generators draw it), not only
            the area between the margins.
        rows_span: (top, bottom) fractions of the grid area's height that the rows share; (0, 1) spreads
            them over all of it, a narrower span packs them closer, anywhere on the page.
        baseline: where a row's baseline lies, as a fraction of the row's height from its top.
        labels_below: lead names printed under the baseline at the panel's start instead of above it.
        grid_contrast: (minor, major) factors on how far the grid's line colours stand from the paper:
            below 1 fainter, above 1 stronger (some printers draw the 5 mm lines fully saturated).
    """

    layout: str = "3x4"
    speed: float = 25.0
    gain: float = 10.0
    paper: str = "letter"
    dpi: float = 200.0
    grid: str = "red"
    trace_color: tuple[int, int, int] = (0, 0, 0)
    trace_width_mm: float = 0.25
    header: bool = True
    calibration: bool = True
    lead_labels: bool = True
    paper_color: tuple[int, int, int] = (255, 255, 255)
    grid_to_edge: bool = False
    rows_span: tuple[float, float] = (0.0, 1.0)
    baseline: float = 0.62
    labels_below: bool = False
    grid_contrast: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.paper not in PAPER_MM:
            raise ValueError(f"paper must be one of {tuple(PAPER_MM)}, got {self.paper!r}")
        if self.grid not in GRID_COLORS:
            raise ValueError(f"grid must be one of {tuple(GRID_COLORS)}, got {self.grid!r}")
        if self.speed <= 0 or self.gain <= 0 or self.dpi <= 0:
            raise ValueError("speed, gain and dpi must be positive")
        top, bottom = self.rows_span
        if not 0.0 <= top < bottom <= 1.0:
            raise ValueError(f"rows_span must be 0 <= top < bottom <= 1, got {self.rows_span}")
        if not 0.0 < self.baseline < 1.0:
            raise ValueError(f"baseline must lie inside the row (0..1), got {self.baseline}")

    @property
    def px_per_mm(self) -> float:
        """Pixels per millimetre at this DPI."""
        return self.dpi / 25.4

    @property
    def page_size(self) -> tuple[int, int]:
        """(W, H) of the rendered page in pixels."""
        w_mm, h_mm = PAPER_MM[self.paper]
        return round(w_mm * self.px_per_mm), round(h_mm * self.px_per_mm)

    @classmethod
    def random(cls, rng: np.random.Generator) -> RenderConfig:
        """A realistic spread: mostly 25 mm/s, 10 mm/mV, 3x4 on red grid; sometimes the others."""
        layout = str(rng.choice(LAYOUTS, p=[0.8, 0.1, 0.1]))
        speed = 50.0 if rng.random() < 0.08 else 25.0
        gain = float(rng.choice([10.0, 5.0, 20.0], p=[0.86, 0.07, 0.07]))
        if layout == "12x1" and gain > 10:
            gain = 10.0  # 12 rows of 18 mm cannot hold 20 mm/mV
        grid = str(rng.choice(list(GRID_COLORS), p=[0.45, 0.2, 0.07, 0.07, 0.09, 0.12]))
        u = rng.random()
        if u < 0.75:
            trace = tuple(int(v) for v in rng.integers(0, 40, 3))
        elif u < 0.9:
            trace = (
                int(rng.integers(90, 160)),
                int(rng.integers(20, 60)),
                int(rng.integers(0, 40)),
            )  # blue ink
        else:
            trace = (int(rng.integers(0, 40)),) * 3
        tint = rng.integers(-12, 1, 3) if rng.random() < 0.3 else np.zeros(3, int)
        paper_color = tuple(int(255 + t) for t in tint)
        return cls(
            layout=layout,
            speed=speed,
            gain=gain,
            paper=str(rng.choice(["letter", "a4"])),
            dpi=float(rng.uniform(100, 300)),
            grid=grid,
            trace_color=trace,  # type: ignore[arg-type]
            trace_width_mm=float(rng.uniform(0.15, 0.5)),
            header=bool(rng.random() < 0.85),
            calibration=bool(rng.random() < 0.95),
            lead_labels=bool(rng.random() < 0.95),
            paper_color=paper_color,  # type: ignore[arg-type]
        )

    def varied(self, rng: np.random.Generator) -> RenderConfig:
        """This configuration laid out as other printers and generators do: the grid to the sheet's edges
        (half the time), the rows packed into 55-100% of the grid's height anywhere on it, the baseline
        anywhere from 45% to 75% down its row, lead names under the trace (half the time), fainter or
        stronger 1 mm and 5 mm lines."""
        h = float(rng.uniform(0.55, 1.0))
        top = float(rng.uniform(0.0, 1.0 - h))
        return replace(
            self,
            grid_to_edge=bool(rng.random() < 0.5),
            rows_span=(top, top + h),
            baseline=float(rng.uniform(0.45, 0.75)),
            labels_below=bool(rng.random() < 0.5),
            grid_contrast=(float(rng.uniform(0.4, 1.3)), float(rng.uniform(0.7, 1.7))),
        )


def solid(size_hw: tuple[int, int], color) -> np.ndarray:
    """A uint8 HxWx3 image of one BGR colour (fast: broadcasting a wide row, not a 3-wide pixel)."""
    h, w = size_hw
    row = np.tile(np.asarray(color, np.uint8), w)  # [w * 3]
    return np.broadcast_to(row, (h, w * 3)).copy().reshape(h, w, 3)  # [h, w, 3]


def _apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to points [n, 2]."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)  # [n, 2]
    hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ np.asarray(h, np.float64).T  # [n, 3]
    return hom[:, :2] / hom[:, 2:3]


@dataclass(frozen=True)
class Geometry:
    """Ground truth of where the sheet and each lead panel lie in an image (corner-convention pixels).

    Attributes:
        paper_quad: float32 [4, 2] (x, y), clockwise from the paper's top-left.
        lead_boxes: lead name -> float32 [x0, y0, x1, y1] of its panel; the 3x4 rhythm strip is "II_rhythm".
        px_per_mm: pixels per mm of paper (the mean scale when the sheet is seen in perspective).
        layout: the page layout the leads are drawn in ("3x4", "6x2", "12x1"), or None if not known.
    """

    paper_quad: np.ndarray
    lead_boxes: dict[str, np.ndarray] = field(default_factory=dict)
    px_per_mm: float = 1.0
    layout: str | None = None

    def transformed(self, h: np.ndarray) -> Geometry:
        """Apply a 3x3 homography (corner convention) to every point; boxes become bounding boxes."""
        quad = _apply_h(h, self.paper_quad).astype(np.float32)
        boxes = {}
        for name, (x0, y0, x1, y1) in self.lead_boxes.items():
            pts = _apply_h(h, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
            boxes[name] = np.array([*pts.min(axis=0), *pts.max(axis=0)], dtype=np.float32)
        scale = math.sqrt(abs(_quad_area(quad)) / max(abs(_quad_area(self.paper_quad)), 1e-9))
        return Geometry(
            paper_quad=quad, lead_boxes=boxes, px_per_mm=float(self.px_per_mm * scale), layout=self.layout
        )

    @property
    def paper_box(self) -> np.ndarray:
        """[x0, y0, x1, y1] bounding box of paper_quad (may reach outside the image)."""
        q = np.asarray(self.paper_quad, np.float32)
        return np.array([*q.min(axis=0), *q.max(axis=0)], dtype=np.float32)

    def to_json(self) -> dict:
        """JSON-ready dict: {"paper_quad": [[x, y]*4], "paper_box": [...], "lead_boxes": {...}, "px_per_mm",
        "layout" (when known)}."""

        def r(v: np.ndarray) -> list:
            return np.round(np.asarray(v, np.float64), 2).tolist()

        out = {
            "paper_quad": r(self.paper_quad),
            "paper_box": r(self.paper_box),
            "lead_boxes": {k: r(v) for k, v in self.lead_boxes.items()},
            "px_per_mm": round(float(self.px_per_mm), 4),
        }
        if self.layout is not None:
            out["layout"] = self.layout
        return out


def _quad_area(q: np.ndarray) -> float:
    x, y = np.asarray(q, np.float64).T
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# ----------------------------------------------------------------------------------------------- grid


def _grid_levels(n_px: int, origin: int, n_mm: int, ppm: float) -> np.ndarray:
    """Per-pixel line level along one axis: 0 none, 1 minor, 2 major; lines at origin + round(k * ppm)."""
    lev = np.zeros(n_px, np.uint8)
    k = np.arange(n_mm + 1)
    pos = origin + np.round(k * ppm).astype(np.int64)
    minor_w = max(1, round(0.08 * ppm))
    major_w = max(1, round(0.16 * ppm))
    for off in range(minor_w):
        lev[np.clip(pos + off, 0, n_px - 1)] = 1
    major = pos[k % 5 == 0]
    for off in range(major_w):
        lev[np.clip(major + off, 0, n_px - 1)] = 2
    return lev


def draw_grid(
    page: np.ndarray,
    origin: tuple[int, int],
    size_mm: tuple[int, int],
    ppm: float,
    colors: tuple[tuple[int, int, int], tuple[int, int, int]],
) -> None:
    """Draw a 1 mm / 5 mm grid in place, vectorised (one row template per line level).

    Args:
        page: uint8 HxWx3 image, modified in place.
        origin: (x, y) pixel of the grid's top-left line.
        size_mm: (columns, rows) of the grid in whole mm.
        ppm: pixels per mm.
        colors: BGR (minor, major) line colours.
    """
    x0, y0 = origin
    nx, ny = size_mm
    x1 = min(page.shape[1], x0 + round(nx * ppm) + max(1, round(0.16 * ppm)))
    y1 = min(page.shape[0], y0 + round(ny * ppm) + max(1, round(0.16 * ppm)))
    lx = _grid_levels(x1 - x0, 0, nx, ppm)
    ly = _grid_levels(y1 - y0, 0, ny, ppm)
    paper = page[y0, x0].copy()
    palette = np.array([paper, colors[0], colors[1]], np.uint8)  # [3 levels, 3 channels]
    # templates[v] is the row drawn where the horizontal line level is v: max(v, column level).
    templates = palette[np.maximum(np.arange(3)[:, None], lx[None, :])]  # [3, w, 3]
    page[y0:y1, x0:x1] = templates[ly]  # [h, w, 3]


# ---------------------------------------------------------------------------------------------- text


def _put(page: np.ndarray, text: str, org: tuple[float, float], h_px: float, color, thick: int = 1) -> None:
    scale = max(h_px / _FONT_H, 0.2)
    cv2.putText(page, text, (int(org[0]), int(org[1])), _FONT, scale, color, thick, cv2.LINE_AA)


def _fmt_axes(axes) -> str | None:
    if axes is None:
        return None
    if isinstance(axes, dict):
        vals = [axes.get(k) for k in ("p", "qrs", "t")] if "qrs" in axes else list(axes.values())
    elif isinstance(axes, list | tuple):
        vals = list(axes)
    else:
        vals = [None, axes, None]
    return " ".join("--" if v is None else str(round(float(v))) for v in vals)


#: Machine-statement texts printed in headers, chosen at random (never from the record's labels).
STATEMENTS = (
    "Sinus rhythm",
    "Normal ECG",
    "Otherwise normal ECG",
    "Borderline ECG",
    "Abnormal ECG",
    "Unconfirmed report",
    "Sinus bradycardia",
    "Sinus tachycardia",
    "Atrial fibrillation",
    "Left ventricular hypertrophy",
    "Right bundle branch block",
    "Left bundle branch block",
    "1st degree AV block",
    "Left anterior fascicular block",
    "Inferior infarct, age undetermined",
    "Anterior infarct, possibly acute",
    "Nonspecific T wave abnormality",
    "ST depression, consider ischaemia",
    "Prolonged QT",
    "Low voltage QRS",
)


def _header_lines(record: ECGRecord, cfg: RenderConfig, rng: np.random.Generator) -> tuple[list, list, list]:
    meta = record.meta or {}
    day = _dt.date(2012, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 5000)))
    clock = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}"
    left = [f"ID: {record.record or int(rng.integers(10**6, 10**7))}"]
    age, sex = meta.get("age"), meta.get("sex")
    if age is not None or sex is not None:
        left.append(f"{'' if age is None else f'{int(age)} yrs'}  {sex or ''}".strip())
    left.append(f"{day.isoformat()} {clock}")
    mid = []
    for key, label, unit in (
        ("hr", "Vent. rate", "BPM"),
        ("pr", "PR interval", "ms"),
        ("qrs", "QRS duration", "ms"),
    ):
        if meta.get(key) is not None:
            mid.append(f"{label} {round(float(meta[key]))} {unit}")
    if meta.get("qt") is not None or meta.get("qtc") is not None:
        qt = "--" if meta.get("qt") is None else round(float(meta["qt"]))
        qtc = "--" if meta.get("qtc") is None else round(float(meta["qtc"]))
        mid.append(f"QT/QTc {qt}/{qtc} ms")
    axes = _fmt_axes(meta.get("axes"))
    if axes:
        mid.append(f"P-R-T axes {axes}")
    right = []
    if rng.random() < 0.5:
        # Drawn independently of the record: a printed statement that matched the labels would let a
        # classifier read the answer instead of the waveform.
        k = int(rng.integers(1, 4))
        right = [STATEMENTS[i] for i in rng.choice(len(STATEMENTS), size=k, replace=False)]
    return left, mid, right


# --------------------------------------------------------------------------------------------- trace


def _poly(points_xy: np.ndarray, h: int) -> np.ndarray:
    """Float pixel points (corner convention) -> int32 fixed-point (shift 3) for cv2, clipped to sane range."""
    p = np.asarray(points_xy, np.float64) - 0.5  # cv2 draws in pixel-centre coordinates
    p[:, 1] = np.clip(p[:, 1], -h, 2 * h)
    return np.round(p * 8).astype(np.int32).reshape(-1, 1, 2)  # [n, 1, 2]


def _pulse_points(x: float, base: float, ppm: float, cfg: RenderConfig) -> np.ndarray:
    """The calibration pulse: 1 mm flat, up 1 mV, 200 ms flat, down, 1 mm flat."""
    h = cfg.gain * ppm  # 1 mV
    w = 0.2 * cfg.speed * ppm
    a = x + ppm
    b = a + w
    return np.array([[x, base], [a, base], [a, base - h], [b, base - h], [b, base], [b + ppm, base]])


def _print_ink(page: np.ndarray, ink: np.ndarray, thick: int, color) -> None:
    """Print a 1 px antialiased ink mask onto the page in place, widened to `thick` px, in `color`.

    Ink multiplies the paper (as printer ink does): page * (1 - a * (1 - color / 255)), a = mask / 255.
    """
    if thick > 1:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thick, thick))
        ink = cv2.dilate(ink, k)
    chans = {c: cv2.convertScaleAbs(ink, alpha=-(255.0 - c) / 255.0, beta=255.0) for c in set(color)}
    factor = cv2.merge([chans[c] for c in color])  # [H, W, 3] per-channel factor, 255 = no ink
    cv2.multiply(page, factor, dst=page, scale=1.0 / 255)


def pulse_width_mm(cfg: RenderConfig) -> float:
    """Horizontal space the calibration pulse takes, in mm (2 mm of flat line plus 200 ms)."""
    return 2.0 + 0.2 * cfg.speed


#: Rows of lead panels per layout.
_ROWS = {"3x4": 4, "6x2": 6, "12x1": 12}
_SIDE_MM = 8.0  # the grid's minimum side margin; the header's left column starts there too
_X_START_MM = 2.0  # where a row's first mark (pulse or trace) starts inside the grid


class _GridArea(NamedTuple):
    """Where the grid lies on the page: top-left corner in px, size in whole mm."""

    x0: int
    y0: int
    nx: int
    ny: int


#: One lead panel: (box name, lead, row, x_mm from the grid's left, t0, t1 in s).
_Panel = tuple[str, str, int, float, float, float]


def render_page(
    record: ECGRecord, cfg: RenderConfig = RenderConfig(), rng: np.random.Generator | None = None
) -> tuple[np.ndarray, Geometry]:
    """Print `record` as a paper ECG page.

    Args:
        record: the 12-lead signal (mV); its first 10 s are shown (less where the paper is too short,
            e.g. at 50 mm/s).
        cfg: layout, speed, gain, paper, DPI and styling.
        rng: randomness for the header (date, whether the statement is printed) and 12x1 duration;
            None means a fixed seed, so the same inputs give the same page.

    Returns:
        (page, geometry): uint8 HxWx3 BGR image of the whole sheet, and where the sheet and lead panels are.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    W, H = cfg.page_size
    page = solid((H, W), cfg.paper_color)
    # The sections draw from `rng` in this order (grid, panels, header): keep it, pages stay byte-identical.
    grid = _grid_area(cfg)
    _draw_page_grid(page, grid, cfg, rng)
    panels = _panels(record, cfg, grid, rng)
    boxes = _print_traces(page, record, cfg, grid, panels)
    if cfg.header:
        _print_header(page, record, cfg, rng)
    quad = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)
    return page, Geometry(
        paper_quad=quad, lead_boxes=boxes, px_per_mm=float(cfg.px_per_mm), layout=cfg.layout
    )


def _grid_area(cfg: RenderConfig) -> _GridArea:
    """Whole 5 mm squares between the margins, below the header."""
    ppm = cfg.px_per_mm
    w_mm, h_mm = PAPER_MM[cfg.paper]
    top_mm = 33.0 if cfg.header else 10.0
    bottom_mm = 10.0 if cfg.header else 8.0
    nx = int((w_mm - 2 * _SIDE_MM) // 5) * 5
    ny = int((h_mm - top_mm - bottom_mm) // 5) * 5
    return _GridArea(round((w_mm - nx) / 2 * ppm), round(top_mm * ppm), nx, ny)


def _draw_page_grid(page: np.ndarray, grid: _GridArea, cfg: RenderConfig, rng: np.random.Generator) -> None:
    """The grid in the paper's colours; a "bw" page sometimes gets a very light grey one."""
    colors = GRID_COLORS[cfg.grid]
    if colors is None and rng.random() < 0.3:
        colors = ((236, 236, 236), (222, 222, 222))  # very light grey on some black-and-white prints
    if colors is None:
        return
    paper = np.array(cfg.paper_color, np.float64)
    colors = tuple(  # exact at the default contrast (1, 1): the palette's own colours
        tuple(int(v) for v in np.clip(paper - (paper - np.array(c)) * k, 0, 255).round())
        for c, k in zip(colors, cfg.grid_contrast, strict=True)
    )
    ppm = cfg.px_per_mm
    if cfg.grid_to_edge:
        # from the page's edges (its first line within 5 mm of the top and left) to the bottom and right, in
        # step with the trace area's lines (pulses sit on them)
        step = 5 * ppm
        kx, ky = int(grid.x0 // step), int(grid.y0 // step)
        x0, y0 = round(grid.x0 - kx * step), round(grid.y0 - ky * step)
        h, w = page.shape[:2]
        draw_grid(page, (x0, y0), (int((w - x0) / ppm) + 1, int((h - y0) / ppm) + 1), ppm, colors)
    else:
        draw_grid(page, (grid.x0, grid.y0), (grid.nx, grid.ny), ppm, colors)


def _row_top_and_base(grid: _GridArea, cfg: RenderConfig, r: int) -> tuple[float, float, float]:
    """(top, baseline, height) of row r in page px: rows share `rows_span` of the grid area equally."""
    ppm = cfg.px_per_mm
    top_f, bottom_f = cfg.rows_span
    row_mm = grid.ny * (bottom_f - top_f) / _ROWS[cfg.layout]
    # this order of operations keeps default pages byte-identical to those drawn before rows_span existed
    top = grid.y0 + top_f * grid.ny * ppm + r * row_mm * ppm
    return top, top + cfg.baseline * row_mm * ppm, row_mm * ppm


def _trace_x_mm(cfg: RenderConfig) -> float:
    """Where traces start inside the grid: after the calibration pulse and a 1 mm gap, when there is one."""
    return _X_START_MM + (pulse_width_mm(cfg) + 1.0 if cfg.calibration else 0.0)


def _panels(record: ECGRecord, cfg: RenderConfig, grid: _GridArea, rng: np.random.Generator) -> list[_Panel]:
    """Which lead each panel shows, in which row, from where and over which seconds (per layout)."""
    n_rows = _ROWS[cfg.layout]
    x_trace_mm = _trace_x_mm(cfg)
    avail_mm = grid.nx - x_trace_mm - 2.0
    t_total = min(10.0, avail_mm / cfg.speed, record.duration)
    if cfg.layout == "12x1" and rng.random() < 0.25:
        t_total = min(t_total, 2.5)

    panels: list[_Panel] = []
    if cfg.layout == "3x4":
        tc = t_total / 4
        for c, leads in enumerate(COLUMNS_3X4):
            for r, lead in enumerate(leads):
                panels.append((lead, lead, r, x_trace_mm + c * tc * cfg.speed, c * tc, (c + 1) * tc))
        panels.append(("II_rhythm", "II", n_rows - 1, x_trace_mm, 0.0, t_total))
    elif cfg.layout == "6x2":
        tc = t_total / 2
        for r in range(6):
            panels.append((LEADS[r], LEADS[r], r, x_trace_mm, 0.0, tc))
            panels.append((LEADS[r + 6], LEADS[r + 6], r, x_trace_mm + tc * cfg.speed, tc, t_total))
    else:
        for r, lead in enumerate(LEADS):
            panels.append((lead, lead, r, x_trace_mm, 0.0, t_total))
    return panels


def _trace_points(
    record: ECGRecord, lead: str, t0: float, t1: float, x0: float, base: float, cfg: RenderConfig
) -> np.ndarray:
    """float32 [m, 2] page points of `lead` from t0 to t1 s, starting at x0 on the baseline `base`."""
    ppm = cfg.px_per_mm
    fs = record.fs
    i0, i1 = round(t0 * fs), min(round(t1 * fs) + 1, record.signal.shape[1])
    # Missing samples (NaN in some WFDB files) print as a flat line, like a lead-off segment.
    v = np.nan_to_num(
        record.signal[LEADS.index(lead), i0:i1].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0
    )
    xs = x0 + (np.arange(i0, i1) / fs - t0) * cfg.speed * ppm
    ys = base - v * cfg.gain * ppm
    pts = np.stack([xs, ys], 1).astype(np.float32)  # [n, 2]
    # Thick polylines cost per segment: drop points within 0.25 px of the drawn line (invisible).
    return cv2.approxPolyDP(pts.reshape(-1, 1, 2), 0.25, False).reshape(-1, 2)  # [m, 2]


def _print_traces(
    page: np.ndarray, record: ECGRecord, cfg: RenderConfig, grid: _GridArea, panels: list[_Panel]
) -> dict[str, np.ndarray]:
    """Print every panel's trace, column tick and lead label, and the calibration pulses; return the
    panels' boxes (float32 xyxy page px) by name."""
    ppm = cfg.px_per_mm
    W, H = cfg.page_size
    thick = max(1, round(cfg.trace_width_mm * ppm))
    # Thick antialiased polylines are slow in OpenCV (per-segment polygons). Draw every trace 1 px wide and
    # antialiased into an ink mask, widen the mask once, then print it in the trace colour.
    ink = np.zeros((H, W), np.uint8)
    color = tuple(int(c) for c in cfg.trace_color)
    label_h = 2.8 * ppm
    boxes: dict[str, np.ndarray] = {}
    for name, lead, r, x_mm, t0, t1 in panels:
        row_top, base, row_px = _row_top_and_base(grid, cfg, r)
        x0 = grid.x0 + x_mm * ppm
        pts = _trace_points(record, lead, t0, t1, x0, base, cfg)
        cv2.polylines(ink, [_poly(pts, H)], False, 255, 1, cv2.LINE_AA, 3)
        x1 = x0 + (t1 - t0) * cfg.speed * ppm
        boxes[name] = np.array([x0, row_top, x1, row_top + row_px], np.float32)
        if cfg.lead_labels:
            # above: at the row's top; below: under the baseline, clear of the pulse
            y_label = base + label_h + 3.0 * ppm if cfg.labels_below else row_top + label_h + 1.5 * ppm
            _put(page, lead, (x0 + 1.0 * ppm, y_label), label_h, color, max(1, thick - 1))
        if t0 > 0 and cfg.layout != "12x1":
            # The short vertical mark printers put where one column of leads gives way to the next.
            tick = _poly(np.array([[x0, base - 2.5 * ppm], [x0, base + 2.5 * ppm]]), H)
            cv2.polylines(ink, [tick], False, 255, 1, cv2.LINE_AA, 3)

    if cfg.calibration:
        for r in range(_ROWS[cfg.layout]):
            base = _row_top_and_base(grid, cfg, r)[1]
            pts = _pulse_points(grid.x0 + _X_START_MM * ppm, base, ppm, cfg)
            cv2.polylines(ink, [_poly(pts, H)], False, 255, 1, cv2.LINE_AA, 3)
    _print_ink(page, ink, thick, color)
    return boxes


def _print_header(page: np.ndarray, record: ECGRecord, cfg: RenderConfig, rng: np.random.Generator) -> None:
    """The header's three text columns above the grid and the footer (speed, gain, filters) below it."""
    ppm = cfg.px_per_mm
    W, H = cfg.page_size
    left, mid, right = _header_lines(record, cfg, rng)
    th = 3.0 * ppm
    text_color = (30, 30, 30)
    for i, line in enumerate(left):
        _put(page, line, (_SIDE_MM * ppm, (7 + 5.5 * i) * ppm), th, text_color)
    for i, line in enumerate(mid):
        _put(page, line, (0.33 * W, (7 + 4.6 * i) * ppm), 0.85 * th, text_color)
    for i, line in enumerate(right):
        _put(page, line, (0.62 * W, (7 + 5.0 * i) * ppm), th, text_color)
    mains = 50 if rng.random() < 0.6 else 60
    hp = rng.choice(["0.05", "0.15", "0.5"])
    lp = rng.choice(["40", "100", "150"])
    footer = f"{cfg.speed:g} mm/s   {cfg.gain:g} mm/mV   {hp}-{lp} Hz ~{mains} Hz"
    _put(page, footer, (_SIDE_MM * ppm, H - 3.5 * ppm), 0.8 * th, text_color)


def with_dpi(cfg: RenderConfig, dpi: float) -> RenderConfig:
    """The same configuration printed at another resolution."""
    return replace(cfg, dpi=float(dpi))
