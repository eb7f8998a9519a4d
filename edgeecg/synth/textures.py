"""Cheap procedural backgrounds for photo scenes: wood, cloth, plain desks, keyboards, paper clutter.

Everything smooth is made on a coarse grid and upsampled; everything periodic is a small tile repeated.
All functions return uint8 HxWx3 BGR images; `size` is (W, H) as in OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeecg.synth.artefacts import catmull_rom


def _lowres_noise(h: int, w: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    gh = max(2, round(cells * h / max(h, w)) + 1)
    gw = max(2, round(cells * w / max(h, w)) + 1)
    return cv2.resize(rng.standard_normal((gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def _colorize(v: np.ndarray, c0, c1) -> np.ndarray:
    """Blend two BGR colours by v in [0, 1] ([h, w] -> [h, w, 3] uint8)."""
    c0 = np.asarray(c0, np.float32)
    c1 = np.asarray(c1, np.float32)
    return np.clip(c0 + (c1 - c0) * v[..., None], 0, 255).astype(np.uint8)


def wood(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Desk wood: planks with wavy grain lines and streaks."""
    W, H = size
    h, w = max(8, H // 6), max(8, W // 6)
    ang = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = xx * np.cos(ang) + yy * np.sin(ang)
    across = -xx * np.sin(ang) + yy * np.cos(ang)
    warp = _lowres_noise(h, w, rng, 6) * rng.uniform(2, 8)
    freq = rng.uniform(0.22, 0.75)
    grain = 0.5 + 0.5 * np.sin(freq * (across + warp + 0.02 * along))
    streak = _lowres_noise(h, w, rng, 40) * 0.15
    plank_w = rng.uniform(17, 47)
    seam = (np.mod(across, plank_w) < 0.8).astype(np.float32)
    v = np.clip(0.55 * grain**3 + streak + 0.3 + 0.1 * _lowres_noise(h, w, rng, 3), 0, 1) * (1 - 0.6 * seam)
    light = np.array(
        rng.choice([[120, 170, 210], [90, 140, 190], [150, 185, 215], [60, 90, 130]]), np.float32
    )
    dark = light * rng.uniform(0.45, 0.7)
    img = _colorize(v, dark, light)
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_LINEAR)


def cloth(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Woven fabric: a small over-under tile repeated, with soft folds."""
    W, H = size
    p = int(rng.integers(3, 9))
    t = np.arange(2 * p, dtype=np.float32)
    wx = 0.5 + 0.5 * np.sin(2 * np.pi * t / p)
    weave = np.outer(wx, np.ones_like(wx))
    weave[: p, : p] = weave[: p, : p].T  # over-under: alternate thread direction per cell  # fmt: skip
    weave[p:, p:] = weave[p:, p:].T
    tile = np.tile(weave, (8, 8))  # [16p, 16p]
    base = np.array(rng.integers(30, 230, 3), np.float32)
    img_tile = _colorize(tile, base * 0.75, np.minimum(base * 1.1, 255))
    img = np.tile(img_tile, (-(-H // img_tile.shape[0]), -(-W // img_tile.shape[1]), 1))[:H, :W]
    folds = 1.0 + 0.15 * _lowres_noise(max(8, H // 16), max(8, W // 16), rng, 4)
    folds = cv2.resize(folds, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(img, cv2.merge([folds] * 3), dtype=cv2.CV_8U)


def plain(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A plain surface (table top, bed sheet, floor) with gentle unevenness."""
    W, H = size
    base = np.array(rng.integers(20, 250, 3), np.float32)
    if rng.random() < 0.5:  # greys and beiges are common
        base = np.full(3, rng.uniform(20, 240), np.float32) + rng.normal(0, 12, 3)
    h, w = max(8, H // 16), max(8, W // 16)
    v = 0.5 + 0.25 * _lowres_noise(h, w, rng, 5)
    img = _colorize(v, base * 0.8, np.minimum(base * 1.15, 255))
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_LINEAR)


def keyboard(img: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int] | None = None) -> None:
    """Draw a keyboard-like block of keys in place (box = x0, y0, x1, y1; random if None)."""
    H, W = img.shape[:2]
    if box is None:
        kw, kh = int(W * rng.uniform(0.3, 0.7)), int(H * rng.uniform(0.15, 0.35))
        x0, y0 = int(rng.uniform(-0.2, 0.9) * W), int(rng.uniform(-0.2, 0.9) * H)
        box = (x0, y0, x0 + kw, y0 + kh)
    x0, y0, x1, y1 = box
    body = tuple(int(v) for v in rng.choice([[30, 30, 30], [200, 200, 200], [60, 55, 50], [235, 235, 235]]))
    key = tuple(int(min(255, max(0, c + rng.choice([-25, 25])))) for c in body)
    cv2.rectangle(img, (x0, y0), (x1, y1), body, -1)
    rows, cols = 5, int(rng.integers(12, 16))
    kw = (x1 - x0) / cols
    kh = (y1 - y0) / rows
    gap = max(1, int(kw * 0.12))
    for r in range(rows):
        off = (r % 3) * kw * 0.25
        for c in range(cols):
            a = (int(x0 + off + c * kw + gap), int(y0 + r * kh + gap))
            b = (int(x0 + off + (c + 1) * kw - gap), int(y0 + (r + 1) * kh - gap))
            if b[0] > x1 or a[0] >= b[0] or a[1] >= b[1]:
                continue
            cv2.rectangle(img, a, b, key, -1)


def text_lines(
    img: np.ndarray, rng: np.random.Generator, box: tuple[float, float, float, float], color=(40, 40, 40)
) -> None:
    """Fill a box with lines of random 'words' in place (a printed page, a form)."""
    x0, y0, x1, y1 = box
    line_h = max(4.0, (y1 - y0) / rng.uniform(20, 45))
    scale = line_h * 0.6 / 22.0
    # Letters a-z with about one space in six: word-like runs, made in one call per line.
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)
    chars_per_line = max(8, int((x1 - x0) / (line_h * 0.55)))
    y = y0 + line_h
    while y < y1:
        n = int(chars_per_line * rng.uniform(0.3, 1.0))
        line = alphabet[rng.integers(0, len(alphabet), n)].tobytes().decode()
        if rng.random() < 0.15:
            line = line[: n // 3].upper()
        cv2.putText(img, line, (int(x0), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
        y += line_h * (2.2 if rng.random() < 0.1 else 1.0)


def clutter(img: np.ndarray, rng: np.random.Generator, n: int | None = None) -> None:
    """Add desk clutter in place: papers with text, coloured boxes, mugs, pens, blobs."""
    H, W = img.shape[:2]
    diag = float(np.hypot(H, W))
    for _ in range(int(rng.integers(0, 6)) if n is None else n):
        kind = rng.choice(
            ["paper", "rect", "circle", "pen", "blob", "keyboard"], p=[0.3, 0.2, 0.15, 0.15, 0.15, 0.05]
        )
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        if kind == "paper":
            w, h = rng.uniform(0.15, 0.5) * W, rng.uniform(0.15, 0.5) * H
            rect = ((cx, cy), (w, h), rng.uniform(0, 180))
            pts = cv2.boxPoints(rect).astype(np.int32)
            shade = int(rng.integers(215, 252))
            cv2.fillPoly(img, [pts], (shade, shade, shade - int(rng.integers(0, 12))), cv2.LINE_AA)
            bx = pts.min(axis=0)
            bb = pts.max(axis=0)
            if rng.random() < 0.7:
                sub = img[max(bx[1], 0) : max(bb[1], 0), max(bx[0], 0) : max(bb[0], 0)]
                if sub.size:
                    m = np.zeros(sub.shape[:2], np.uint8)
                    cv2.fillPoly(m, [pts - [max(bx[0], 0), max(bx[1], 0)]], 255)
                    txt = sub.copy()
                    mh, mw = m.shape
                    text_lines(txt, rng, (mw * 0.15, mh * 0.15, mw * 0.85, mh * 0.85))
                    np.copyto(sub, txt, where=(m > 0)[..., None])
        elif kind == "rect":
            w, h = rng.uniform(0.05, 0.3) * W, rng.uniform(0.05, 0.3) * H
            pts = cv2.boxPoints(((cx, cy), (w, h), rng.uniform(0, 180))).astype(np.int32)
            cv2.fillPoly(img, [pts], col, cv2.LINE_AA)
        elif kind == "circle":
            r = int(rng.uniform(0.03, 0.12) * diag)
            cv2.circle(img, (int(cx), int(cy)), r, col, -1, cv2.LINE_AA)
            inner = tuple(int(v * 0.6) for v in col)
            cv2.circle(img, (int(cx), int(cy)), int(r * 0.8), inner, -1, cv2.LINE_AA)  # a mug seen from above
        elif kind == "pen":
            ang = rng.uniform(0, np.pi)
            length = rng.uniform(0.1, 0.25) * diag
            d = np.array([np.cos(ang), np.sin(ang)]) * length / 2
            a = (int(cx - d[0]), int(cy - d[1]))
            b = (int(cx + d[0]), int(cy + d[1]))
            cv2.line(img, a, b, col, max(2, int(diag * 0.008)), cv2.LINE_AA)
        elif kind == "blob":
            k = int(rng.integers(4, 8))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = rng.uniform(0.03, 0.12) * diag * rng.uniform(0.5, 1.2, k)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
            curve = catmull_rom(pts, 64, closed=True)
            cv2.fillPoly(img, [np.round(curve).astype(np.int32)], col, cv2.LINE_AA)
        else:
            keyboard(img, rng)


def random_background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random photo background of size (W, H): a surface texture plus some clutter."""
    kind = rng.choice(["wood", "cloth", "plain", "keyboard"], p=[0.35, 0.2, 0.35, 0.1])
    if kind == "wood":
        img = wood(size, rng)
    elif kind == "cloth":
        img = cloth(size, rng)
    else:
        img = plain(size, rng)
        if kind == "keyboard":
            keyboard(img, rng)
    if rng.random() < 0.6:
        clutter(img, rng)
    return img
