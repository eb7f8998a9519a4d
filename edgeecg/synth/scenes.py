"""Whole synthetic images: a printed ECG page as a clean render, a flatbed scan or a phone photo, and
no-ECG negatives, each with exact ground truth of where the sheet lies.

Geometry is exact because the page is drawn once, at about the resolution it will occupy in the output,
and moved by one composed homography (page -> output) applied both to the pixels (one warp) and to the
ground truth (`Geometry.transformed`). Photometric artefacts (light, shadows, creases, wrinkles, blur,
noise, JPEG) never move anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgeecg.synth import artefacts as art
from edgeecg.synth import textures
from edgeecg.synth.ecgrecord import ECGRecord
from edgeecg.synth.render import PAPER_MM, Geometry, RenderConfig, draw_grid, render_page, solid

logger = logging.getLogger(__name__)

STYLES = ("clean", "scan", "photo", "negative")
PHOTO_SIZE = (1600, 1200)  # (W, H) of a photo or negative scene when no size is asked for


@dataclass(frozen=True)
class Scene:
    """One synthetic image and its ground truth.

    Attributes:
        image: uint8 HxWx3 BGR.
        geometry: where the sheet and lead panels lie (corner-convention pixels); None for a no-ECG negative.
        style: "clean", "scan", "photo" or "negative".
    """

    image: np.ndarray
    geometry: Geometry | None
    style: str


def _page_quad(w: int, h: int) -> np.ndarray:
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return cv2.getPerspectiveTransform(np.float32(src), np.float32(dst)).astype(np.float64)


def _quad_area(q: np.ndarray) -> float:
    x, y = np.asarray(q, np.float64).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def camera_quad(
    paper_mm: tuple[float, float],
    size: tuple[int, int],
    rng: np.random.Generator,
    coverage: tuple[float, float] = (0.35, 0.95),
) -> np.ndarray:
    """Where a phone camera sees a flat sheet: a pinhole view of the tilted sheet, scaled to the frame.

    Args:
        paper_mm: (width, height) of the sheet in mm.
        size: (W, H) of the photo.
        rng: randomness.
        coverage: range of the sheet's area as a fraction of the frame's.

    Returns:
        float32 [4, 2] corners (TL, TR, BR, BL of the sheet) in the photo; some may lie outside it.
    """
    W, H = size
    w, h = paper_mm
    corners = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]])
    yaw = np.radians(rng.normal(0, 6))
    if rng.random() < 0.12:  # phone held the other way round, or the sheet lies rotated
        yaw += np.radians(rng.choice([90, -90, 180]))
    pitch, roll = np.radians(np.clip(rng.normal(0, 14, 2), -35, 35))
    cz, sz = np.cos(yaw), np.sin(yaw)
    cx, sx = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(roll), np.sin(roll)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    pts = corners @ (ry @ rx @ rz).T  # [4, 3] sheet corners in camera coordinates
    dist = rng.uniform(1.1, 3.0) * max(w, h)
    proj = pts[:, :2] / (pts[:, 2:3] + dist)  # pinhole, focal length 1
    cov = rng.uniform(*coverage)
    scale = np.sqrt(cov * W * H / max(_quad_area(proj), 1e-12))
    quad = proj * scale
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    span = hi - lo
    room = np.array([W, H]) - span
    # Centre it, then shift: within the frame where it fits, else (or sometimes) a little past the edge.
    shift = np.where(
        room > 0, rng.uniform(-0.5, 0.5, 2) * np.maximum(room, 0), rng.normal(0, 0.05, 2) * [W, H]
    )
    if rng.random() < 0.15:
        shift += rng.uniform(-0.12, 0.12, 2) * [W, H]
    quad = quad - (lo + hi) / 2 + np.array([W, H]) / 2 + shift
    return quad.astype(np.float32)


def _render_ppm(quad: np.ndarray, paper_mm: tuple[float, float]) -> float:
    """Pixels per mm at which to draw the page so its nearest edge maps about 1:1 into the output."""
    q = np.asarray(quad, np.float64)
    top, bottom = np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3])
    left, right = np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1])
    ppm = max(top / paper_mm[0], bottom / paper_mm[0], left / paper_mm[1], right / paper_mm[1])
    return float(np.clip(ppm, 1.5, 300 / 25.4))


def _page_artefacts(page: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Things that happen to the sheet itself: handwriting, stamps, folds, crumples (p scales how often)."""
    if rng.random() < 0.3 * p:
        page = art.scribble(page, rng)
    if rng.random() < 0.15 * p:
        page = art.stamp(page, rng)
    fields = []
    if rng.random() < 0.25 * p:
        fields.append(art.crease_field(page.shape[:2], rng))
    if rng.random() < 0.3 * p:
        fields.append(art.wrinkle_field(page.shape[:2], rng))
    if fields:
        shape = fields[0].shape
        gain = np.ones(shape, np.float32)
        for f in fields:
            gain *= cv2.resize(f, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        page = art.apply_gain(page, gain)
    return page


def _finish_photo(img: np.ndarray, rng: np.random.Generator, quad: np.ndarray | None) -> np.ndarray:
    """Camera-side artefacts: fingers, light and shadows (one gain), blur, sensor noise, JPEG."""
    if quad is not None and rng.random() < 0.35:
        img = art.fingers(img, rng, quad)
    gain = art.light_field(img.shape[:2], rng, strength=rng.uniform(0.1, 0.4))
    for _ in range(int(rng.random() < 0.5) + int(rng.random() < 0.15)):
        sh = art.shadow_field(img.shape[:2], rng)
        gain = (
            gain * cv2.resize(sh, (gain.shape[1], gain.shape[0]), interpolation=cv2.INTER_LINEAR)[..., None]
        )
    img = art.apply_gain(img, gain)
    if rng.random() < 0.6:
        diag = float(np.hypot(*img.shape[:2]))
        img = art.blur(img, rng, max_sigma=0.4 + diag / 3000, max_motion=max(3, int(diag / 400)))
    if rng.random() < 0.8:
        img = art.sensor_noise(img, rng)
    if rng.random() < 0.5:
        img = art.jpeg(img, rng, quality=(40, 95))
    return img


def _background(size: tuple[int, int], rng: np.random.Generator, background: np.ndarray | None) -> np.ndarray:
    if background is None:
        return textures.random_background(size, rng)
    bg = np.asarray(background)
    if bg.ndim == 2:
        bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR)
    return cv2.resize(bg, size, interpolation=cv2.INTER_AREA).astype(np.uint8)


# -------------------------------------------------------------------------------------------- styles


def _clean(record: ECGRecord, cfg: RenderConfig, rng: np.random.Generator, size) -> Scene:
    if size is None:
        page, geom = render_page(record, cfg, rng)
        return Scene(page, geom, "clean")
    w_mm, h_mm = PAPER_MM[cfg.paper]
    dpi = min(size[0] / w_mm, size[1] / h_mm) * 25.4  # draw at the output scale, then stretch the rest
    page, geom = render_page(record, replace(cfg, dpi=dpi), rng)
    ph, pw = page.shape[:2]
    if (pw, ph) == tuple(size):
        return Scene(page, geom, "clean")
    h = np.diag([size[0] / pw, size[1] / ph, 1.0])
    img = cv2.resize(page, tuple(size), interpolation=cv2.INTER_LINEAR)
    return Scene(img, geom.transformed(h), "clean")


def _scan_quad(paper_mm, size, rng: np.random.Generator) -> np.ndarray:
    """A sheet on a flatbed: nearly fills the bed, a little rotated and skewed."""
    W, H = size
    w_mm, h_mm = paper_mm
    fit = min(W / w_mm, H / h_mm)
    cover = max(W / w_mm, H / h_mm)
    u = rng.random()
    margin = u < 0.4
    # 15%: a tight scan or screenshot where the grid runs off the frame and the sheet's edges are not
    # seen (real full-frame scans look like this; a detector that never saw one boxes half the page).
    zoom = u > 0.85
    s = fit * (
        rng.uniform(0.86, 0.97) if margin else rng.uniform(1.08, 1.4) if zoom else rng.uniform(0.98, 1.03)
    )
    if zoom:  # the sheet runs off every side, also in a frame far wider than the sheet (a 2:1 screenshot)
        s = max(s, cover)
    w, h = w_mm * s, h_mm * s
    q = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    ang = np.radians(rng.normal(0, 1.2) if rng.random() < 0.8 else rng.uniform(-3, 3))
    shear = rng.normal(0, 0.004)
    a = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) @ np.array([[1, shear], [0, 1]])
    q = q @ a.T
    q += rng.normal(0, 0.0015, (4, 2)) * [w, h]  # slight non-flatness: a touch of perspective
    off = rng.uniform(-1, 1, 2) * np.maximum(np.array([W, H]) - np.array([w, h]), 0) * 0.5
    if not margin:
        off = rng.normal(0, 0.005, 2) * [W, H]
    return (q + np.array([W, H]) / 2 + off).astype(np.float32)


def _scan(record, cfg: RenderConfig, rng, size, background) -> Scene:
    paper_mm = PAPER_MM[cfg.paper]
    if size is None:
        size = cfg.page_size
    size = (int(size[0]), int(size[1]))
    quad = _scan_quad(paper_mm, size, rng)
    ppm = _render_ppm(quad, paper_mm)
    page, geom = render_page(record, replace(cfg, dpi=ppm * 25.4), rng)
    page = _page_artefacts(page, rng, p=0.7)
    if background is None:
        u = rng.random()
        lid = (
            rng.uniform(238, 255) if u < 0.7 else (rng.uniform(170, 225) if u < 0.9 else rng.uniform(15, 50))
        )
        bg = solid((size[1], size[0]), tuple(int(np.clip(lid + d, 0, 255)) for d in rng.normal(0, 2, 3)))
    else:
        bg = _background(size, rng, background)
    h = _homography(_page_quad(page.shape[1], page.shape[0]), quad)
    img = art.warp(page, h, size, bg)
    # Scanner lamp: a gentle gradient along the scan direction, a little lamp fall-off at one side.
    gain = art.light_field(img.shape[:2], rng, strength=rng.uniform(0.02, 0.12))
    img = art.apply_gain(img, gain / max(float(gain.max()), 1e-6) * rng.uniform(0.97, 1.03))
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.8))
    if rng.random() < 0.7:
        img = art.sensor_noise(img, rng, sigma=(0.5, 3.0))
    if rng.random() < 0.3:
        img = art.grayscale(img)
    if rng.random() < 0.7:
        img = art.jpeg(img, rng, quality=(50, 95))
    return Scene(img, geom.transformed(h), "scan")


def _photo(record, cfg: RenderConfig, rng, size, background) -> Scene:
    size = PHOTO_SIZE if size is None else (int(size[0]), int(size[1]))
    paper_mm = PAPER_MM[cfg.paper]
    bg = _background(size, rng, background)
    quad = camera_quad(paper_mm, size, rng)
    ppm = _render_ppm(quad, paper_mm)
    page, geom = render_page(record, replace(cfg, dpi=ppm * 25.4), rng)
    page = _page_artefacts(page, rng, p=1.0)
    h = _homography(_page_quad(page.shape[1], page.shape[0]), quad)
    img = art.warp(page, h, size, bg)
    geom = geom.transformed(h)
    img = _finish_photo(img, rng, geom.paper_quad)
    return Scene(img, geom, "photo")


def _blank_sheet(paper_mm, ppm: float, rng: np.random.Generator) -> np.ndarray:
    """A sheet that is not an ECG: blank, printed text, or a grid-like non-ECG pattern."""
    w, h = round(paper_mm[0] * ppm), round(paper_mm[1] * ppm)
    shade = int(rng.integers(228, 256))
    page = solid((h, w), (shade, shade, max(0, shade - int(rng.integers(0, 10)))))
    kind = rng.choice(["blank", "text", "graph", "table"], p=[0.2, 0.4, 0.2, 0.2])
    if kind == "text":
        textures.text_lines(page, rng, (0.08 * w, 0.08 * h, 0.92 * w, 0.92 * h))
    elif kind == "graph":  # mm graph paper in non-ECG colours, or a coarse squared pad
        color = [
            ((230, 200, 170), (200, 150, 110)),
            ((200, 225, 200), (140, 190, 140)),
            ((215, 215, 215), (170, 170, 170)),
        ]
        pitch = ppm * rng.choice([1.0, 4.0, 5.0])
        n = (int((w * 0.9) / pitch), int((h * 0.9) / pitch))
        draw_grid(page, (int(0.05 * w), int(0.05 * h)), n, pitch, color[int(rng.integers(3))])
    elif kind == "table":
        rows, cols = int(rng.integers(8, 30)), int(rng.integers(2, 8))
        x0, y0, x1, y1 = 0.08 * w, 0.1 * h, 0.92 * w, 0.9 * h
        for r in range(rows + 1):
            y = int(y0 + (y1 - y0) * r / rows)
            cv2.line(page, (int(x0), y), (int(x1), y), (60, 60, 60), 1, cv2.LINE_AA)
        for c in range(cols + 1):
            x = int(x0 + (x1 - x0) * c / cols)
            cv2.line(page, (x, int(y0)), (x, int(y1)), (60, 60, 60), 1, cv2.LINE_AA)
        if rng.random() < 0.7:
            textures.text_lines(page, rng, (x0 + 3, y0, x1, y1))
    return page


def _negative(rng: np.random.Generator, size, background, paper: str | None) -> Scene:
    size = PHOTO_SIZE if size is None else (int(size[0]), int(size[1]))
    paper_mm = PAPER_MM[paper or str(rng.choice(list(PAPER_MM)))]
    if rng.random() < 0.5:
        paper_mm = paper_mm[::-1]  # non-ECG pages are mostly portrait
    bg = _background(size, rng, background)
    u = rng.random()
    quad = None
    if u < 0.25:
        img = bg  # only the desk and its clutter
    else:
        quad = _scan_quad(paper_mm, size, rng) if u < 0.4 else camera_quad(paper_mm, size, rng)
        page = _blank_sheet(paper_mm, _render_ppm(quad, paper_mm), rng)
        page = _page_artefacts(page, rng, p=1.0)
        h = _homography(_page_quad(page.shape[1], page.shape[0]), quad)
        img = art.warp(page, h, size, bg)
    img = _finish_photo(img, rng, quad)
    return Scene(img, None, "negative")


def make_scene(
    record: ECGRecord | None,
    style: str,
    rng: np.random.Generator,
    size: tuple[int, int] | None = None,
    render: RenderConfig | None = None,
    *,
    background: np.ndarray | None = None,
) -> Scene:
    """Make one synthetic image with its ground truth.

    Args:
        record: the ECG to print; None makes a no-ECG negative whatever the style.
        style: "clean" (the page as printed), "scan" (flatbed), "photo" (phone photo of the sheet on a desk)
            or "negative" (the same kinds of scenes without an ECG).
        rng: all randomness comes from here: the same seed gives the same bytes.
        size: (W, H) of the output; None = the page at its DPI for clean/scan, 1600x1200 for photo/negative.
        render: how the page is printed; None draws a realistic random configuration. Its DPI is replaced
            by the scale the page occupies in the output (except for "clean" with size None).
        background: an image to use as the desk / scanner lid instead of a random one (resized to size).

    Returns:
        Scene(image uint8 HxWx3 BGR, geometry or None, style).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if size is not None and (int(size[0]) < 16 or int(size[1]) < 16):
        raise ValueError(f"size must be at least 16x16, got {size}")
    cfg = RenderConfig.random(rng) if render is None else render
    if record is None or style == "negative":
        return _negative(rng, size, background, None if render is None else render.paper)
    if style == "clean":
        return _clean(record, cfg, rng, size)
    if style == "scan":
        return _scan(record, cfg, rng, size, background)
    return _photo(record, cfg, rng, size, background)
