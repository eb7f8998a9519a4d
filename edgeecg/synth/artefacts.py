"""Print, handling and camera artefacts for synthetic paper-ECG images (the GenECG / ecg-image-kit family).

Every function takes a uint8 HxWx3 BGR image and a numpy Generator and returns a new image; the geometric
ones (`rotate`, `perspective`) also return the 3x3 homography they applied, in the pixel-corner
convention of `edgeecg.synth.render.Geometry`, so ground truth can follow with `Geometry.transformed`.
Wrinkles and creases are photometric only (shading), so they never move the ground truth.

Speed: fields (light, shadows, wrinkles) are built on a coarse grid and upsampled once; a gain field is
applied as one uint8 multiply. The `*_field` functions return such coarse fields so a caller can combine
several and pay for one `apply_gain`.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)

_GAIN_ONE = 128.0  # a gain field is stored as uint8 with 128 meaning 1.0 (so up to ~2x brighter)
_T_CV = np.array([[1.0, 0, -0.5], [0, 1.0, -0.5], [0, 0, 1.0]])  # corner -> OpenCV pixel-centre coords
_T_CORNER = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])

INKS = ((140, 40, 10), (110, 30, 30), (30, 30, 30), (40, 40, 170), (120, 40, 90))  # BGR: blue, navy, black...


# ------------------------------------------------------------------------------------------- helpers


def catmull_rom(points: np.ndarray, n: int, closed: bool = True) -> np.ndarray:
    """Sample a uniform Catmull-Rom spline through `points`.

    Args:
        points: [m, 2] control points (m >= 2; m >= 3 when closed).
        n: number of samples to return.
        closed: join the last point back to the first (a closed loop) or stop at the last point.

    Returns:
        float32 [n, 2] points along the curve; the curve passes through every control point.
    """
    p = np.asarray(points, np.float64).reshape(-1, 2)  # [m, 2]
    m = len(p)
    if m < (3 if closed else 2):
        raise ValueError(f"catmull_rom needs at least {3 if closed else 2} points, got {m}")
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])  # [m + 3, 2]: wrap around
        n_seg = m
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])  # [m + 2, 2]: mirrored ends
        n_seg = m - 1
    s = np.linspace(0.0, n_seg, n, endpoint=not closed)
    seg = np.minimum(s.astype(np.int64), n_seg - 1)
    t = (s - seg)[:, None]  # [n, 1]
    p0, p1, p2, p3 = ext[seg], ext[seg + 1], ext[seg + 2], ext[seg + 3]
    out = 0.5 * (
        2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    return out.astype(np.float32)


def to_cv_homography(h: np.ndarray) -> np.ndarray:
    """A corner-convention homography as OpenCV wants it (pixel centres at integer coordinates)."""
    return _T_CV @ np.asarray(h, np.float64) @ _T_CORNER


def warp(
    img: np.ndarray, h: np.ndarray, size: tuple[int, int], background: np.ndarray | None = None
) -> np.ndarray:
    """Warp `img` by the corner-convention homography `h` into a (W, H) image, over `background` if given.

    Only the part of the output that the warped image's bounding box covers is computed.

    Args:
        img: source image.
        h: 3x3 homography from source to destination corner coordinates.
        size: (W, H) of the output.
        background: image of the output size to draw over (it is not modified); None gives black.
    """
    W, H = size
    dst = np.zeros((H, W) + img.shape[2:], img.dtype) if background is None else background.copy()
    ih, iw = img.shape[:2]
    quad = cv2.perspectiveTransform(
        np.array([[[0, 0], [iw, 0], [iw, ih], [0, ih]]], np.float64), np.asarray(h)
    )
    x0, y0 = np.floor(quad[0].min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(quad[0].max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 <= x0 or y1 <= y0:
        return dst
    shift = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])
    roi = np.ascontiguousarray(dst[y0:y1, x0:x1])
    cv2.warpPerspective(img, to_cv_homography(shift @ np.asarray(h, np.float64)), (x1 - x0, y1 - y0), dst=roi,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)  # fmt: skip
    dst[y0:y1, x0:x1] = roi
    return dst


def coarse_shape(shape_hw: tuple[int, int], cell: int = 16) -> tuple[int, int]:
    """(h, w) of the coarse grid used for smooth fields over an image of shape_hw."""
    return max(2, shape_hw[0] // cell + 1), max(2, shape_hw[1] // cell + 1)


def apply_gain(img: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Multiply `img` by a smooth gain field, upsampling it once.

    Args:
        img: uint8 HxWx3.
        field: float gain, [h, w] or [h, w, 3] at any (usually coarse) resolution; 1.0 keeps a pixel.
    """
    H, W = img.shape[:2]
    f8 = np.clip(np.asarray(field, np.float32) * _GAIN_ONE, 0, 255).astype(np.uint8)
    if f8.ndim == 2:
        f8 = cv2.merge([f8, f8, f8])  # [h, w, 3] while small, before upsampling
    big = cv2.resize(f8, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(img, big, scale=1.0 / _GAIN_ONE)


def _smooth_noise(shape_hw: tuple[int, int], rng: np.random.Generator, blobs: int) -> np.ndarray:
    """Smooth zero-mean noise on a coarse grid: a few random values bicubically upsampled; unit-ish range."""
    h, w = shape_hw
    gh = max(2, round(blobs * h / max(h, w)) + 1)
    gw = max(2, round(blobs * w / max(h, w)) + 1)
    seed = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(seed, (w, h), interpolation=cv2.INTER_CUBIC)


# --------------------------------------------------------------------------------------- gain fields


def light_field(shape_hw: tuple[int, int], rng: np.random.Generator, strength: float = 0.25) -> np.ndarray:
    """Uneven illumination as a coarse [h, w, 3] gain: a tilted gradient, a soft hotspot or vignette, a tint."""
    h, w = coarse_shape(shape_hw)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx /= w - 1
    yy /= h - 1
    ang = rng.uniform(0, 2 * np.pi)
    grad = (xx - 0.5) * np.cos(ang) + (yy - 0.5) * np.sin(ang)  # -0.7..0.7
    g = 1.0 + strength * rng.uniform(0.3, 1.0) * grad
    cx, cy = rng.uniform(0.1, 0.9, 2)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / rng.uniform(0.1, 0.6)
    g *= 1.0 + strength * rng.uniform(-0.5, 0.6) * np.exp(-r2)
    g += 0.03 * strength * _smooth_noise((h, w), rng, 4)
    tint = 1.0 + rng.normal(0, 0.04, 3).astype(np.float32)  # warm/cool cast
    g = g[:, :, None] * tint[None, None, :]  # [h, w, 3]
    return g * rng.uniform(0.85, 1.1)


def shadow_field(
    shape_hw: tuple[int, int], rng: np.random.Generator, strength: tuple[float, float] = (0.15, 0.5)
) -> np.ndarray:
    """A soft shadow from a random closed Catmull-Rom polygon (a hand, a phone) as a coarse [h, w] gain."""
    H, W = shape_hw
    h, w = coarse_shape(shape_hw, cell=8)
    n = int(rng.integers(4, 9))
    # Centre on the image, so the shadow always falls somewhere.
    cx, cy = rng.uniform(0.0, 1.0) * w, rng.uniform(0.0, 1.0) * h
    radius = rng.uniform(0.15, 0.6) * max(h, w)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = radius * rng.uniform(0.4, 1.2, n)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)  # [n, 2]
    curve = catmull_rom(pts, 120, closed=True)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(curve * 8).astype(np.int32)], 1.0, cv2.LINE_AA, 3)
    soft = rng.uniform(0.5, 4.0)
    mask = cv2.GaussianBlur(mask, (0, 0), soft)
    return 1.0 - rng.uniform(*strength) * mask


def crease_field(shape_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A fold line across the sheet: one side a little darker, a bright or dark ridge along the line."""
    h, w = coarse_shape(shape_hw, cell=4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.7:  # folds are mostly along the middle, horizontal or vertical
        vertical = rng.random() < 0.5
        ang = (0.0 if vertical else np.pi / 2) + rng.normal(0, 0.05)
        c = np.array([w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)])
    else:
        ang = rng.uniform(0, np.pi)
        c = np.array([w * rng.uniform(0.2, 0.8), h * rng.uniform(0.2, 0.8)])
    d = (xx - c[0]) * np.cos(ang) + (yy - c[1]) * np.sin(ang)  # signed distance in coarse cells
    side = np.where(d > 0, rng.uniform(-0.08, 0.02), 0.0)
    ridge = rng.uniform(-0.12, 0.1) * np.exp(-0.5 * (d / rng.uniform(0.4, 1.2)) ** 2)
    return (1.0 + side + ridge).astype(np.float32)


def wrinkle_field(shape_hw: tuple[int, int], rng: np.random.Generator, strength: float = 0.06) -> np.ndarray:
    """Crumpled-paper shading: a smooth random height field's slope lit from one side (coarse [h, w])."""
    h, w = coarse_shape(shape_hw, cell=6)
    height = _smooth_noise((h, w), rng, int(rng.integers(4, 12)))
    gy, gx = np.gradient(height)
    ang = rng.uniform(0, 2 * np.pi)
    shade = gx * np.cos(ang) + gy * np.sin(ang)
    shade /= max(float(np.abs(shade).max()), 1e-6)
    return (1.0 + strength * rng.uniform(0.3, 1.0) * shade).astype(np.float32)


# ------------------------------------------------------------------------------------ photometric ops


def uneven_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency illumination gain."""
    return apply_gain(img, light_field(img.shape[:2], rng))


def shadow(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft darkening shadow of random shape."""
    return apply_gain(img, shadow_field(img.shape[:2], rng))


def crease(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fold across the sheet (shading only)."""
    return apply_gain(img, crease_field(img.shape[:2], rng))


def wrinkles(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crumpled-paper shading (photometric only, the geometry does not move)."""
    return apply_gain(img, wrinkle_field(img.shape[:2], rng))


def blur(
    img: np.ndarray, rng: np.random.Generator, max_sigma: float = 1.2, max_motion: int = 7
) -> np.ndarray:
    """Camera blur: Gaussian defocus or a short linear motion blur."""
    if rng.random() < 0.7:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, max_sigma))
    k = int(rng.integers(3, max(4, max_motion + 1)))
    kernel = np.zeros((k, k), np.float32)
    c = (k - 1) / 2
    ang = rng.uniform(0, np.pi)
    dx, dy = np.cos(ang) * c, np.sin(ang) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    kernel /= kernel.sum()
    return cv2.filter2D(img, -1, kernel)


def sensor_noise(
    img: np.ndarray, rng: np.random.Generator, sigma: tuple[float, float] = (1.0, 6.0)
) -> np.ndarray:
    """Additive Gaussian sensor noise, partly colour. A random tile is repeated to stay cheap."""
    H, W = img.shape[:2]
    th, tw = min(H, 192), min(W, 256)
    s = rng.uniform(*sigma)
    tile = rng.standard_normal((th, tw, 3), dtype=np.float32) * s
    tile += rng.standard_normal((th, tw, 1), dtype=np.float32) * s  # luminance part shared by channels
    tile8 = np.clip(np.round(tile) + 128, 0, 255).astype(np.uint8)  # noise + 128, so uint8 holds its sign
    big = cv2.repeat(tile8, -(-H // th), -(-W // tw))[:H, :W]  # [H, W, 3]
    return cv2.addWeighted(img, 1.0, big, 1.0, -128.0)  # one saturating pass


def jpeg(img: np.ndarray, rng: np.random.Generator, quality: tuple[int, int] = (35, 95)) -> np.ndarray:
    """Re-encode as JPEG at a random quality (blocking, ringing, chroma loss)."""
    q = int(rng.integers(quality[0], quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def grayscale(img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Grey-scale copy (3 equal channels), as from a black-and-white scan or copier."""
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return cv2.merge([g, g, g])


# --------------------------------------------------------------------------------- drawn-on artefacts


def scribble(img: np.ndarray, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Handwriting-like ink strokes: cursive-ish Catmull-Rom loops, underlines and ticks."""
    out = img.copy()
    H, W = img.shape[:2]
    diag = float(np.hypot(H, W))
    ink = INKS[int(rng.integers(len(INKS)))]
    thick = max(1, round(diag * rng.uniform(0.0008, 0.0022)))
    for _ in range(int(rng.integers(1, 4)) if n is None else n):
        x0, y0 = rng.uniform(0.05, 0.85) * W, rng.uniform(0.03, 0.95) * H
        length = rng.uniform(0.05, 0.25) * W
        height = rng.uniform(0.008, 0.025) * diag
        k = int(rng.integers(6, 24))
        xs = x0 + np.sort(rng.uniform(0, length, k))
        ys = y0 + height * np.where(np.arange(k) % 2 == 0, -1.0, 1.0) * rng.uniform(0.2, 1.0, k)
        xs += rng.normal(0, height * 0.4, k)  # loops: let x step back now and then
        curve = catmull_rom(np.stack([xs, ys], 1), 40 * k, closed=False)
        slant = rng.uniform(-0.3, 0.1)
        curve[:, 0] += slant * (curve[:, 1] - y0)
        pts = np.round((curve - 0.5) * 8).astype(np.int32).reshape(-1, 1, 2)  # [n, 1, 2]
        cv2.polylines(out, [pts], False, ink, thick, cv2.LINE_AA, 3)
    return out


def stamp(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rubber stamp: rectangular or round outline with text, in faded red/blue/violet ink."""
    H, W = img.shape[:2]
    diag = float(np.hypot(H, W))
    size = rng.uniform(0.08, 0.16) * diag
    cx, cy = rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H
    ink = [(50, 40, 200), (170, 60, 30), (150, 50, 120), (60, 60, 60)][int(rng.integers(4))]
    thick = max(1, round(size * 0.02))
    words = ["RECEIVED", "REVIEWED", "COPY", "CONFIDENTIAL", "SCANNED", "CARDIOLOGY", "URGENT", "FILED"]
    text = words[int(rng.integers(len(words)))]
    x0, y0 = int(max(cx - size, 0)), int(max(cy - size, 0))
    x1, y1 = int(min(cx + size, W)), int(min(cy + size, H))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return img.copy()
    # Draw the ink on white, rotate it, then multiply-blend: ink only darkens what is under it.
    layer = np.full((y1 - y0, x1 - x0, 3), 255, np.uint8)
    c = (cx - x0, cy - y0)
    scale = size / 260.0
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
    if rng.random() < 0.5:
        cv2.circle(layer, (int(c[0]), int(c[1])), int(size * 0.5), ink, thick, cv2.LINE_AA)
        cv2.circle(layer, (int(c[0]), int(c[1])), int(size * 0.42), ink, max(1, thick // 2), cv2.LINE_AA)
    else:
        hw, hh = size * 0.6, size * 0.25
        cv2.rectangle(layer, (int(c[0] - hw), int(c[1] - hh)), (int(c[0] + hw), int(c[1] + hh)), ink, thick)
        day = f"{int(rng.integers(1, 29)):02d}.{int(rng.integers(1, 13)):02d}.{int(rng.integers(2012, 2027))}"
        cv2.putText(layer, day, (int(c[0] - tw / 2), int(c[1] + th * 1.6)), cv2.FONT_HERSHEY_DUPLEX,
                    scale * 0.7, ink, max(1, thick // 2), cv2.LINE_AA)  # fmt: skip
    cv2.putText(layer, text, (int(c[0] - tw / 2), int(c[1] + th / 2)), cv2.FONT_HERSHEY_DUPLEX, scale, ink,
                thick, cv2.LINE_AA)  # fmt: skip
    rot = cv2.getRotationMatrix2D((c[0] - 0.5, c[1] - 0.5), rng.uniform(-25, 25), 1.0)
    layer = cv2.warpAffine(layer, rot, (x1 - x0, y1 - y0), borderValue=(255, 255, 255))
    patch = img[y0:y1, x0:x1]
    inked = cv2.multiply(patch, layer, scale=1.0 / 255)
    strength = rng.uniform(0.5, 0.9)  # ink that did not fully take
    out = img.copy()
    out[y0:y1, x0:x1] = cv2.addWeighted(patch, 1.0 - strength, inked, strength, 0.0)
    return out


SKIN = ((95, 125, 190), (120, 160, 225), (60, 90, 140), (80, 110, 170), (140, 175, 230), (45, 60, 95))


def fingers(img: np.ndarray, rng: np.random.Generator, quad: np.ndarray, n: int | None = None) -> np.ndarray:
    """Fingers holding the sheet: skin-coloured rounded strokes from outside over the quad's border.

    Args:
        img: the scene.
        rng: randomness.
        quad: [4, 2] paper corners (corner convention), clockwise from the top-left.
        n: number of fingers (default 1-3).
    """
    out = img.copy()
    H, W = img.shape[:2]
    q = np.asarray(quad, np.float64)
    diag = float(np.hypot(H, W))
    skin = np.array(SKIN[int(rng.integers(len(SKIN)))], np.float64) * rng.uniform(0.85, 1.1)
    for _ in range(int(rng.integers(1, 4)) if n is None else n):
        e = int(rng.integers(4))
        a, b = q[e], q[(e + 1) % 4]
        p = a + (b - a) * rng.uniform(0.1, 0.9)
        if not (0 <= p[0] < W and 0 <= p[1] < H):
            continue
        d = (b - a) / max(np.linalg.norm(b - a), 1e-6)
        normal = np.array([d[1], -d[0]])  # outward for a clockwise quad in y-down coordinates
        normal = normal * np.cos(rng.normal(0, 0.3)) + d * np.sin(rng.normal(0, 0.3))
        width = diag * rng.uniform(0.025, 0.05)
        tip = p - normal * width * rng.uniform(0.4, 1.5)
        root = p + normal * diag * 0.4
        col = tuple(float(c) for c in np.clip(skin, 0, 255))
        dark = tuple(float(c) * 0.7 for c in col)
        light = tuple(min(255.0, float(c) * 1.15) for c in col)
        t_pt = tuple(int(round(v)) for v in tip)
        r_pt = tuple(int(round(v)) for v in root)
        cv2.line(out, t_pt, r_pt, dark, int(width * 1.08), cv2.LINE_AA)  # rim shadow
        cv2.line(out, t_pt, r_pt, col, int(width), cv2.LINE_AA)
        hi = tuple(int(round(v)) for v in (tip + normal * width * 0.3 + d * width * 0.15))
        cv2.line(out, hi, r_pt, light, max(1, int(width * 0.35)), cv2.LINE_AA)
        nail = tip + normal * width * 0.35
        axes = (max(1, int(width * 0.3)), max(1, int(width * 0.22)))
        ang = float(np.degrees(np.arctan2(normal[1], normal[0])))
        nail_col = tuple(min(255.0, float(c) * 1.1 + 15) for c in col)
        cv2.ellipse(out, tuple(int(round(v)) for v in nail), axes, ang, 0, 360, nail_col, -1, cv2.LINE_AA)
    return out


# ------------------------------------------------------------------------------------ geometric ops


def rotate(
    img: np.ndarray,
    rng: np.random.Generator,
    max_deg: float = 3.0,
    fill: tuple[int, int, int] = (255, 255, 255),
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre by up to ±max_deg, same size; returns (image, 3x3 corner homography)."""
    H, W = img.shape[:2]
    ang = np.radians(rng.uniform(-max_deg, max_deg))
    c, s = np.cos(ang), np.sin(ang)
    cx, cy = W / 2, H / 2
    h = np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1.0]])
    out = cv2.warpPerspective(img, to_cv_homography(h), (W, H), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=fill)  # fmt: skip
    return out, h


def perspective(
    img: np.ndarray,
    rng: np.random.Generator,
    strength: float = 0.08,
    fill: tuple[int, int, int] = (0, 0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Random perspective: each corner moves up to `strength` of the size; returns (image, homography)."""
    H, W = img.shape[:2]
    src = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)
    dst = src + rng.uniform(-strength, strength, (4, 2)).astype(np.float32) * np.array([W, H], np.float32)
    h = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
    out = cv2.warpPerspective(img, to_cv_homography(h), (W, H), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=fill)  # fmt: skip
    return out, h


# ------------------------------------------------------------------------------ worn and other paper

#: Paper colour casts (BGR gains): aged/sepia, yellowed, grey recycled, bluish white, pinkish thermal.
PAPER_CASTS = (
    (0.62, 0.80, 0.98),
    (0.80, 0.95, 1.0),
    (0.86, 0.88, 0.90),
    (1.0, 0.95, 0.88),
    (0.92, 0.88, 1.0),
)


def paper_texture_field(shape_hw: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """Full-resolution [H, W] gain: paper fibre or cloth-like mesh (fine) plus mottling (coarse)."""
    H, W = shape_hw
    fine = rng.standard_normal((H, W), dtype=np.float32)
    fine = cv2.GaussianBlur(fine, (0, 0), rng.uniform(0.6, 1.6))
    if rng.random() < 0.5:  # a woven mesh: two crossing periodic ridges
        period = rng.uniform(3.0, 8.0)
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        u = xx * np.cos(ang) + yy * np.sin(ang)
        v = -xx * np.sin(ang) + yy * np.cos(ang)
        fine += 1.2 * (np.sin(2 * np.pi * u / period) + np.sin(2 * np.pi * v / period))
    fine /= max(float(fine.std()), 1e-6)
    coarse = cv2.resize(_smooth_noise((max(H // 8, 2), max(W // 8, 2)), rng, 24), (W, H))
    return 1.0 + strength * (0.5 * fine + 0.5 * coarse)


def crease_lines_field(shape_hw: tuple[int, int], rng: np.random.Generator, n: int) -> np.ndarray:
    """Full-resolution [H, W] gain with `n` sharp folds: a thin bright or dark line, a soft shade beside it."""
    H, W = shape_hw
    field = np.zeros((H, W), np.float32)
    for _ in range(n):
        ang = (
            rng.uniform(0, np.pi) if rng.random() < 0.6 else rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.1)
        )
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        L = 2 * (H + W)
        p0 = (int(cx - L * np.cos(ang)), int(cy - L * np.sin(ang)))
        p1 = (int(cx + L * np.cos(ang)), int(cy + L * np.sin(ang)))
        line = np.zeros((H, W), np.float32)
        cv2.line(line, p0, p1, 1.0, max(1, int(round(rng.uniform(0.5, 3.0) * max(H, W) / 1000))), cv2.LINE_AA)
        sharp = cv2.GaussianBlur(line, (0, 0), rng.uniform(0.5, 1.5))
        shade = cv2.GaussianBlur(line, (0, 0), rng.uniform(4, 14) * max(H, W) / 1000)
        shade /= max(float(shade.max()), 1e-6)
        field += rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.45) * sharp / max(float(sharp.max()), 1e-6)
        field -= rng.uniform(0.0, 0.15) * shade
    return 1.0 + field


def hue_turn(img: np.ndarray, degrees: float, saturation: float = 1.0) -> np.ndarray:
    """Turn every hue by `degrees` and scale saturation: a red grid becomes green, blue, violet..."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    h = (hsv[..., 0].astype(np.int16) + int(round(degrees / 2))) % 180
    hsv[..., 0] = h.astype(np.uint8)
    if saturation != 1.0:
        hsv[..., 1] = np.clip(hsv[..., 1].astype(np.float32) * saturation, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def weathered(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paper and print far from our renderer's defaults, on the whole image (photometric only, so ground
    truth holds): another grid colour or none, a colour cast (aged, yellowed, thermal...), fibre or mesh
    texture, strong wrinkles and sharp creases, faded or heavy print, noise and blur. Each part is drawn
    on or off at random; what the verifier and classifier must not be thrown by (ecg-image-kit's
    distortions and real archives are of this strength)."""
    out = img
    H, W = img.shape[:2]
    if rng.random() < 0.5:  # grid and ink colours: turn hues, or wash colour out (grey, black grids)
        out = hue_turn(out, rng.uniform(-180, 180), rng.uniform(0.0, 1.3) if rng.random() < 0.3 else 1.0)
    if rng.random() < 0.35:  # faded thermal print / light toner, or a heavy dark print
        lo = rng.uniform(0.45, 0.85) if rng.random() < 0.7 else rng.uniform(1.2, 1.8)
        g = np.clip(255.0 * (np.arange(256) / 255.0) ** lo, 0, 255).astype(np.uint8)
        out = cv2.LUT(out, g)
        if lo < 1:  # and paler: less contrast, a lighter floor
            out = cv2.convertScaleAbs(out, alpha=rng.uniform(0.55, 0.9))
            out = cv2.add(out, np.full_like(out, int(rng.uniform(15, 60))))
    gain = np.ones((H, W), np.float32)
    if rng.random() < 0.6:
        gain *= paper_texture_field((H, W), rng, rng.uniform(0.03, 0.18))
    if rng.random() < 0.5:
        gain *= crease_lines_field((H, W), rng, int(rng.integers(1, 7)))
    if rng.random() < 0.6:
        w = wrinkle_field((H, W), rng, rng.uniform(0.1, 0.4))
        gain *= cv2.resize(w, (W, H), interpolation=cv2.INTER_CUBIC)
    out = cv2.multiply(out.astype(np.float32), cv2.merge([gain, gain, gain]))
    if rng.random() < 0.6:  # colour cast of the paper and light
        cast = np.asarray(PAPER_CASTS[int(rng.integers(len(PAPER_CASTS)))], np.float32)
        cast = 1.0 + (cast - 1.0) * rng.uniform(0.4, 1.3)
        out = out * cast[None, None, :]
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        out = sensor_noise(out, rng, (2.0, 12.0))
    if rng.random() < 0.3:
        out = blur(out, rng, max_sigma=1.5)
    return out


# ------------------------------------------------------------------------- heavily handled printouts


def colour_temperature(img: np.ndarray, kelvin: float) -> np.ndarray:
    """The image lit at `kelvin` instead of daylight: BGR gains of a black body (2000 K: orange, blue all
    but gone; 15000 K: blue), as a camera with its white balance off would record it."""
    t = kelvin / 100.0
    r = 1.0 if t <= 66 else 1.2930 * (t - 60) ** -0.1332
    g = 0.3901 * np.log(t) - 0.6318 if t <= 66 else 1.1299 * (t - 60) ** -0.0755
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.5432 * np.log(t - 10) - 1.1963)
    gains = np.clip(np.array([b, g, r], np.float32), 0.0, 1.0)
    return np.clip(img.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def fold_grid_field(shape_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """[H, W] gain of a sheet folded into panels: 1-10 evenly spaced folds each way (at any angle), each a
    bright ridge with fainter ridges beside it, the strength of ecg-image-kit's creases."""
    H, W = shape_hw
    field = np.ones((H, W), np.float32)
    base = rng.uniform(0, np.pi / 2)
    scale = max(H, W) / 2200  # the kit draws its folds on 2200 px pages
    for ang in (base, base + np.pi / 2):
        d = np.array([np.cos(ang), np.sin(ang)])
        nrm = np.array([-d[1], d[0]])
        span = abs(nrm[0]) * W + abs(nrm[1]) * H
        n = int(rng.integers(1, 11))
        for k in range(1, n + 1):
            mid = np.array([W / 2, H / 2]) + nrm * (k / (n + 1) - 0.5) * span
            for off, gain in ((0, 1.25), (-5, 1.15), (5, 1.15), (-10, 1.05), (10, 1.05)):
                p = mid + nrm * off * scale
                a, b = (p - d * (H + W)).astype(int), (p + d * (H + W)).astype(int)
                cv2.line(
                    field, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), gain, max(1, round(5 * scale))
                )
    return cv2.GaussianBlur(field, (3, 3), 0)


def crumple_texture(shape_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """[H, W] grey texture of crumpled paper in [0, 1], mean ~0.4: sharp ridges at several scales (the
    zero crossings of smooth noise) over lit slopes."""
    H, W = shape_hw
    h, w = max(H // 4, 8), max(W // 4, 8)
    acc = np.zeros((h, w), np.float32)
    for blobs, weight in ((5, 1.0), (12, 0.7), (28, 0.45)):
        n = _smooth_noise((h, w), rng, blobs)
        n /= max(float(np.abs(n).max()), 1e-6)
        gy, gx = np.gradient(n)
        ang = rng.uniform(0, 2 * np.pi)
        slope = gx * np.cos(ang) + gy * np.sin(ang)
        ridge = rng.choice([-1.0, 1.0]) * 0.3 * np.exp(-((n / 0.04) ** 2))  # a fold line, dark or bright
        acc += weight * (slope / max(float(np.abs(slope).max()), 1e-6) + ridge)
    acc = (acc - acc.mean()) / max(float(acc.std()), 1e-6)
    tex = cv2.resize(acc, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(0.4 + rng.uniform(0.08, 0.16) * tex, 0.0, 1.0)


def heavy_wear(img: np.ndarray, rng: np.random.Generator, turn: bool = True) -> np.ndarray:
    """A printout handled the way ecg-image-kit distorts its pages, at the strengths its generator
    documents: another grid colour, folds into panels, a crumpled texture blended in hard light, a turn
    of up to 8 degrees with the cut-off corners black (`turn`; it moves the page), grey noise of
    sigma up to 50, a crop of up to 1% and a strong colour temperature (2000-4000 K or 10000-20000 K).
    Stronger than `weathered`: what a verifier and a classifier meet in other generators' pages."""
    H, W = img.shape[:2]
    out = img
    if rng.random() < 0.5:
        out = hue_turn(out, rng.uniform(-180, 180))
    x = out.astype(np.float32) / 255.0
    if rng.random() < 0.5:
        x *= fold_grid_field((H, W), rng)[..., None]
    if rng.random() < 0.5:
        t = crumple_texture((H, W), rng)[..., None]
        x = np.clip(x, 0.0, 1.0)
        x = np.where(t > 0.6, 1.0 - 2.0 * (1.0 - x) * (1.0 - t), 2.0 * x * t)  # hard light
    x = np.clip(x * 255.0, 0, 255)
    if turn:
        m = cv2.getRotationMatrix2D((W / 2, H / 2), float(rng.integers(-8, 9)), 1.0)
        x = cv2.warpAffine(x, m, (W, H), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    x += rng.normal(0.0, float(rng.integers(1, 51)), (H, W, 1)).astype(np.float32)
    if rng.random() < 0.5:
        c = rng.uniform(0, 0.01)
        y0, x0 = int(c * H), int(c * W)
        if y0 and x0:
            x = cv2.resize(x[y0 : H - y0, x0 : W - x0], (W, H))
    out = np.clip(x, 0, 255).astype(np.uint8)
    kelvin = rng.uniform(2000, 4000) if rng.random() < 0.5 else rng.uniform(10000, 20000)
    return colour_temperature(out, kelvin)


def crumpled_sheet(shape_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A close-up of a blank sheet, crumpled or folded and lit from one side, filling the frame: paper with
    no ECG that looks most like a worn printout (a hard negative for the verifier). Crumpled paper is
    facets between sharp creases: each random crease line tilts the sheet on one side of it."""
    H, W = shape_hw
    h, w = max(H // 4, 16), max(W // 4, 16)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(8, 40))):
        ang = rng.uniform(0, np.pi)
        d = (xx - rng.uniform(0, w)) * np.cos(ang) + (yy - rng.uniform(0, h)) * np.sin(ang)
        shade += rng.normal(0, 1) * np.tanh(d / rng.uniform(0.5, 3.0))  # a crease: a step in the tilt
    shade = (shade - shade.mean()) / max(float(shade.std()), 1e-6)
    gain = 1.0 + rng.uniform(0.05, 0.2) * cv2.resize(shade, (W, H), interpolation=cv2.INTER_LINEAR)
    paper = np.asarray(PAPER_CASTS[int(rng.integers(len(PAPER_CASTS)))], np.float32) * rng.uniform(200, 250)
    x = gain[..., None] * paper[None, None, :]
    if rng.random() < 0.3:
        x *= fold_grid_field((H, W), rng)[..., None]
    x *= cv2.resize(light_field((H, W), rng, rng.uniform(0.2, 0.6)), (W, H))
    out = np.clip(x, 0, 255).astype(np.uint8)
    return sensor_noise(out, rng, (1.0, 10.0))
