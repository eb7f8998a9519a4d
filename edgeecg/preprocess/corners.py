"""Paper corners: ordering, checks, mask -> quadrilateral, and a classical OpenCV fallback.

Every quadrilateral here is float32 [4, 2] (x, y) in image pixels, clockwise from the paper's top-left
(top-left, top-right, bottom-right, bottom-left), the order the generator's `Geometry.paper_quad` uses.
"""

from __future__ import annotations

import functools
import logging

import cv2
import numpy as np

from edgeecg.preprocess.geometry import shrink

log = logging.getLogger(__name__)


def order_corners(pts: np.ndarray) -> np.ndarray:
    """Order four points clockwise from the top-left (image y points down).

    Sorted by angle around the centroid, then rotated so that the point with the smallest x + y comes first;
    robust for the rotations a handheld photo has (up to about 45 degrees).
    """
    pts = np.asarray(pts, np.float32).reshape(4, 2)  # any [4, 2]-compatible layout
    c = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])  # clockwise on screen as the angle grows
    pts = pts[np.argsort(ang)]
    start = int(np.argmin(pts.sum(1)))
    return np.roll(pts, -start, axis=0)


def quad_area(quad: np.ndarray) -> float:
    """Area of a polygon (shoelace), in square pixels."""
    x, y = quad[:, 0], quad[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def is_valid_quad(quad: np.ndarray | None, min_area: float = 1.0) -> bool:
    """True for a convex, non-degenerate quadrilateral of finite numbers."""
    if quad is None or quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        return False
    if quad_area(quad) < min_area:
        return False
    return bool(cv2.isContourConvex(quad.astype(np.float32).reshape(4, 1, 2)))  # [4, 2] -> cv2 contour


def quad_diagonal(quad: np.ndarray) -> float:
    """Mean length of a quadrilateral's two diagonals (the scale corner errors are measured against)."""
    return float((np.linalg.norm(quad[2] - quad[0]) + np.linalg.norm(quad[3] - quad[1])) / 2)


def box_corners(box: np.ndarray) -> np.ndarray:
    """The four corners of an xyxy box, clockwise from the top-left."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def quad_from_mask(mask: np.ndarray, min_fraction: float = 0.05) -> np.ndarray | None:
    """The quadrilateral that best fits the largest blob of a binary mask.

    The blob's convex hull is simplified with approxPolyDP, widening the tolerance until four points remain;
    when it never gives exactly four, the minimum-area rectangle is used.

    Args:
        mask: HxW, nonzero = paper.
        min_fraction: blobs smaller than this fraction of the mask are ignored (None returned).

    Returns:
        float32 [4, 2] ordered corners, or None.
    """
    m = (mask > 0).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    cnt = max(contours, key=cv2.contourArea)
    if cv2.contourArea(cnt) < min_fraction * m.size:
        return None
    hull = cv2.convexHull(cnt)
    peri = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float32)  # [4, 1, 2] -> [4, 2]
            break
        if len(approx) < 4:
            break
    if quad is None:
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float32)
    return order_corners(quad)


def classical_corners(
    img_bgr: np.ndarray, box: np.ndarray | None = None, work_size: int = 256, min_contrast: float = 60.0
) -> np.ndarray | None:
    """Find the paper's quadrilateral with plain OpenCV (no model): the bright, low-saturation sheet.

    Works on a small copy (longest side `work_size`) of the region `box` (or the whole image): Otsu
    threshold on brightness minus half the saturation, a closing that fills the grid and trace lines, the
    largest blob, then `quad_from_mask`. When the two Otsu classes differ by less than `min_contrast` grey
    levels there is no paper/background edge to find (a full-frame scan, pink grid and all): the whole
    region is the paper.

    Args:
        img_bgr: uint8 HxWx3 BGR image.
        box: xyxy region to search (a detector box, slightly enlarged by the caller), or None for all.
        work_size: longest side of the working copy.

    Returns:
        float32 [4, 2] corners in image pixels, or None when nothing paper-like is found.
    """
    h, w = img_bgr.shape[:2]
    if box is None:
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    roi = img_bgr[y0:y1, x0:x1]
    scale = work_size / max(roi.shape[:2])
    if scale < 1:
        roi = shrink(
            roi, (max(int(round(roi.shape[1] * scale)), 1), max(int(round(roi.shape[0] * scale)), 1))
        )
    small = roi
    scale = small.shape[1] / (x1 - x0)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    # paper is bright and nearly colourless; desks, hands and shadows are darker or coloured
    score = cv2.subtract(hsv[:, :, 2], hsv[:, :, 1] // 2)
    score = cv2.GaussianBlur(score, (5, 5), 0)
    t, mask = cv2.threshold(score, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hi, lo = score[mask > 0], score[mask == 0]
    if not hi.size or not lo.size or float(hi.mean()) - float(lo.mean()) < min_contrast:
        return box_corners(np.array([x0, y0, x1, y1], np.float32))
    k = max(3, int(round(min(small.shape[:2]) * 0.03)) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    quad = quad_from_mask(mask, min_fraction=0.1)
    if quad is None:
        return None
    # contour points are pixel indices; +0.5 then /scale maps pixel centres back, clip to the region
    quad = (quad + 0.5) / scale - 0.5 + np.array([x0, y0], np.float32)
    quad = np.clip(quad, [0, 0], [w, h]).astype(np.float32)
    # a blob hugging the working copy's border edge reaches the image edge: snap it there
    tol = 1.5 / scale
    quad[:, 0] = np.where(quad[:, 0] < tol, 0, np.where(quad[:, 0] > w - tol, w, quad[:, 0]))
    quad[:, 1] = np.where(quad[:, 1] < tol, 0, np.where(quad[:, 1] > h - tol, h, quad[:, 1]))
    return quad if is_valid_quad(quad) else None


MIN_STEP = 6.0  # weakest colour step (Lab units) a sample may vote with; RANSAC rejects lone noise peaks
# (4 found one more faint scanner-lid edge in 100 synthetic scenes, but pulled a real full-frame scan's side
# onto its grid: kept at 6)
CONFIDENT_SUPPORT = 3.6  # summed side support (of 4) above which later candidates are not tried
BORDER_FLAT = 6.0  # the most lightness spread (std) plain background beyond that edge may show
# squared weights of the Lab channels in a colour step: chroma counts twice (a pink sheet on a grey desk
# steps as much as a white one on a dark desk)
CHROMA_WEIGHT = np.float32([1.0, 4.0, 4.0])
BORDER_CREDIT = 1.0  # support of a side on the frame's edge with no edge inside it: the paper runs off there


@functools.lru_cache(maxsize=64)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of well-separated samples: the line hypotheses RANSAC tries (fewer, steadier)."""
    i, j = np.triu_indices(n, 1)
    keep = j - i >= max(n // 3, 1)
    return i[keep], j[keep]


def _fit_offsets(t: np.ndarray, off: np.ndarray, w: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Robustly fit off = a + b t (RANSAC over every pair of samples, then least squares on the inliers).

    Returns (a, b) and the inlier mask; the pair whose inliers carry the largest summed weight wins.
    """
    i, j = _pairs(len(t))
    keep = np.abs(t[j] - t[i]) > 1e-6
    i, j = i[keep], j[keep]
    b = (off[j] - off[i]) / (t[j] - t[i])
    a = off[i] - b * t[i]
    resid = np.abs(off[None, :] - (a[:, None] + b[:, None] * t[None, :]))  # [pairs, samples]
    support = ((resid <= tol) * w[None, :]).sum(1)
    best = int(np.argmax(support))
    inl = resid[best] <= tol
    ti, oi, wi = t[inl], off[inl], w[inl]
    tm, om = float(np.dot(wi, ti) / wi.sum()), float(np.dot(wi, oi) / wi.sum())
    var = float(np.sum(wi * (ti - tm) ** 2))
    if inl.sum() < 2 or var <= 1e-12:
        return np.array([a[best], b[best]]), inl
    slope = float(np.sum(wi * (ti - tm) * (oi - om))) / var  # weighted least squares line through the inliers
    return np.array([om - slope * tm, slope]), inl


def edge_colours(img_bgr: np.ndarray) -> np.ndarray:
    """The working copy in the colour space refinement measures steps in: Lab on OpenCV's 8-bit scale, as
    float32 (so that the passes sample it without rounding).

    Made once per working copy and shared by every refinement pass: converting each pass's sampled profiles
    instead cost ~1 ms a pass (the conversion's tables fall out of cache between passes).
    """
    return cv2.cvtColor(img_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)


def refine_corners(
    img_bgr: np.ndarray,
    candidates: np.ndarray | list[np.ndarray],
    work_size: int = 512,
    band: float = 0.09,
    samples: int = 32,
    half_window: int = 3,
    min_support: float = 0.4,
    return_index: bool = False,
    colours: np.ndarray | None = None,
    narrow_pass: bool = True,
) -> np.ndarray | tuple[np.ndarray, int, float]:
    """Snap rough quadrilaterals (keypoints, classical, SAM) onto the paper's straight edges; keep the best.

    For each side, the colour step across the side is measured at `samples` points within +-`band` of the
    paper diagonal along its normal: the difference of the mean Lab colour `half_window` px inside and
    outside each position, so a step (paper to desk) scores and a thin line (grid, trace) does not; a step
    that is darker inside than outside (a grid area's edge on its white margin) does not count. A line is
    fitted through the strongest step of every sample with RANSAC; the corners are the intersections of
    adjacent lines. A side whose best line is supported by fewer than `min_support` of its samples (shadow,
    clutter, the side lies outside the frame) keeps its rough position. With several candidates, the refined
    quad whose sides found the most support wins.

    Args:
        img_bgr: uint8 HxWx3 BGR image.
        candidates: one float32 [4, 2] ordered quad (see `order_corners`) in image pixels, or a list of them.
        work_size: longest side of the working copy (the search cost does not depend on the input size).
        band: search half-width as a fraction of the quad's diagonal (covers the rough corners' error).
        samples: points per side.
        half_window: px of the working copy averaged on each side of a candidate edge.
        min_support: fraction of a side's samples that must agree on its line.
        return_index: also return the index of the candidate that won, the support its sides found in
            the final pass (0-4; a side left on the frame's edge counts BORDER_CREDIT) and the part of it
            that clear edges found (0-4, no credit for the frame's edge).
        colours: `edge_colours` of the working copy, when the caller has it already (`img_bgr` must then
            be no larger than `work_size`: it is the working copy).
        narrow_pass: after the winner is found, search again within a third of `band` with each side
            spanning the corners its neighbours found; a `band` already that narrow (snapping corners that
            are close) needs no second pass.

    Returns:
        float32 [4, 2] refined corners (a candidate unchanged when refining it would make it invalid), and
        with `return_index` the winning candidate's index, its support and its edges' support.
    """
    if isinstance(candidates, np.ndarray):
        candidates = [candidates]
    scale, colours = _working_colours(img_bgr, work_size, colours)
    side = (samples, half_window, min_support)
    best, best_i, best_score, best_edges = _best_candidate(colours, candidates, scale, band, side)
    if narrow_pass:
        # a second, narrow pass on the winner: each side now spans the corners found by its neighbours
        q, score, edges = _refine_quad(colours, best * scale - 0.5, band / 3, *side)
        best, support = _accept(best, q, score, scale, band)
        edges = edges if support > 0 else 0.0
    else:
        support, edges = best_score, best_edges if best_score > 0 else 0.0
    return (best, best_i, support, edges) if return_index else best


def _working_colours(
    img_bgr: np.ndarray, work_size: int, colours: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(working copy px per image px in x and y, the copy's `edge_colours`): made here unless given."""
    h, w = img_bgr.shape[:2]
    s = min(1.0, work_size / max(h, w))
    small = shrink(img_bgr, (max(round(w * s), 1), max(round(h * s), 1))) if s < 1 else img_bgr
    scale = np.array([small.shape[1] / w, small.shape[0] / h], np.float32)
    if colours is None:
        colours = edge_colours(small)
    elif colours.shape[:2] != small.shape[:2]:
        raise ValueError(f"colours are {colours.shape[:2]}, the working copy {small.shape[:2]}")
    return scale, colours


def _accept(
    quad: np.ndarray, q: np.ndarray, score: float, scale: np.ndarray, band: float
) -> tuple[np.ndarray, float]:
    """The refined quad `q` (working copy) in image px with its score, or `quad` and 0 where it is unusable."""
    refined = (q + 0.5) / scale  # working-copy pixel centres -> edge coordinates
    diag = quad_diagonal(quad)
    # a corner moved further than the search reaches means two sides snapped to different things
    if not is_valid_quad(refined) or np.linalg.norm(refined - quad, axis=1).max() > 3 * band * diag:
        return quad, 0.0
    return refined.astype(np.float32), score


def _best_candidate(
    colours: np.ndarray,
    candidates: list[np.ndarray],
    scale: np.ndarray,
    band: float,
    side: tuple[int, int, float],
) -> tuple[np.ndarray, int, float, float]:
    """(refined quad, index, support, edges' support) of the candidate whose refined sides found the most
    support; `side` is (samples, half_window, min_support)."""
    best, best_i, best_score, best_edges = None, 0, -1.0, 0.0
    for i, quad in enumerate(candidates):
        quad = np.asarray(quad, np.float32).reshape(4, 2)
        q, score, edges = _refine_quad(colours, quad * scale - 0.5, band, *side)
        refined, score = _accept(quad, q, score, scale, band)
        if score > best_score:
            best, best_i, best_score, best_edges = refined, i, score, edges
        if best_score >= CONFIDENT_SUPPORT:  # every side clearly found: the other candidates cannot beat it
            break
    return best, best_i, best_score, best_edges


def match_order(quad: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`quad` cyclically shifted so that its corners lie closest to `reference`'s (same orientation).

    Geometric ordering cannot tell a sheet turned by 90 degrees from an upright portrait one; the detector's
    keypoints know which corner is the paper's top-left, so they fix the order of a more precise quad.
    """
    shifts = [np.roll(quad, -r, axis=0) for r in range(4)]
    return min(shifts, key=lambda q: float(np.linalg.norm(q - reference, axis=1).sum()))


def landscape_order(quad: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """`quad` (clockwise) re-ordered by a quarter-turn so that its top and bottom sides are the longer pair.

    Of the two quarter-turns, the one whose corners lie closer to `reference` (the detector's keypoints)
    wins, else the turn that makes the old top-right the new top-left; either may be upside down, which
    only the page's content can tell (the verifier's upright output).
    """
    turns = [np.roll(quad, -1, axis=0), np.roll(quad, 1, axis=0)]
    if reference is None or not is_valid_quad(reference, min_area=16.0):
        return turns[0]
    return min(turns, key=lambda q: float(np.linalg.norm(q - reference, axis=1).sum()))


@functools.lru_cache(maxsize=8)
def _sample_positions(samples: int) -> np.ndarray:
    """Where along a side its samples lie (fractions of its length), clear of the corners."""
    ts = np.linspace(0.08, 0.92, samples, dtype=np.float32)
    ts.flags.writeable = False  # shared between calls
    return ts


def _step_response(colours: np.ndarray, q: np.ndarray, reach: int, samples: int, k: int):
    """Colour-step strength across each side of `q` (working-copy pixels) at `samples` points per side,
    measured in `colours` (`edge_colours` of the working copy).

    Returns (offsets of the candidate edge positions [C], sample parameters along the side [S], outward normals
    [4, 2], response [4, S, C], whether each side lies on the frame's edge [4], lightness from the first
    candidate position outwards [4, S, C + 2k]).
    """
    sh, sw = colours.shape[:2]
    offs = np.arange(-reach - 2 * k, reach + 2 * k + 1, dtype=np.float32)
    ts = _sample_positions(samples)
    p0, p1 = q, q[[1, 2, 3, 0]]  # side i runs from corner i to corner i+1
    d = p1 - p0
    t_dir = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    normals = np.stack([t_dir[:, 1], -t_dir[:, 0]], 1)  # outward for clockwise corners (y down)
    pts = p0[:, None, :] + ts[None, :, None] * d[:, None, :]  # [4, S, 2]
    # the sampling maps, x and y each contiguous [4 * S, O] (remap copies strided maps)
    mx = (pts[:, :, None, 0] + offs[None, None, :] * normals[:, None, None, 0]).reshape(4 * samples, -1)
    my = (pts[:, :, None, 1] + offs[None, None, :] * normals[:, None, None, 1]).reshape(4 * samples, -1)
    lab = cv2.remap(colours, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lab = lab.reshape(4, samples, len(offs), 3)
    in_img = ((mx >= 0) & (mx <= sw - 1) & (my >= 0) & (my <= sh - 1)).reshape(4, samples, len(offs))
    cs = np.empty((4, samples, len(offs) + 1, 3), np.float32)  # [4, S, O+1, 3]: running sums from 0
    cs[:, :, 0] = 0.0
    np.cumsum(lab, 2, out=cs[:, :, 1:])
    c0, c1 = 2 * k, len(offs) - 2 * k  # candidate edge positions: offs[c0:c1]

    def mean(lo: int, hi: int) -> np.ndarray:  # mean colour over offs[c+lo .. c+hi-1]: [4, S, C, 3] (views)
        return (cs[:, :, c0 + hi : c1 + hi] - cs[:, :, c0 + lo : c1 + lo]) * np.float32(1.0 / (hi - lo))

    def dist2(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # squared: one sqrt after the minimum
        d = a - b
        d *= d
        return d @ CHROMA_WEIGHT  # a matrix product: ~4x faster than einsum over a last axis of 3

    inner, far_in = mean(-k, 0), mean(-2 * k, -k)
    outer, far_out = mean(1, k + 1), mean(k + 1, 2 * k + 1)
    # a step keeps its colour on each side; a thin line (grid, trace) inside one window does not, so the
    # weakest of the near/far pairings scores
    resp = np.sqrt(np.minimum(dist2(inner, outer), np.minimum(dist2(inner, far_out), dist2(far_in, outer))))
    # paper is not darker than what lies outside it, near or far (a grid area's edge on its white margin)
    li, lfi, lo_, lfo = inner[..., 0], far_in[..., 0], outer[..., 0], far_out[..., 0]
    resp *= (li > lo_ - 4.0) & (li > lfo - 4.0) & (lfi > lo_ - 4.0)
    resp *= in_img[:, :, : c1 - c0] & in_img[:, :, 2 * c0 :]  # every window inside the frame
    border = np.array([-0.5, -0.5, sw - 0.5, sh - 0.5], np.float32)
    on_border = np.zeros(4, bool)
    for j, e in zip((0, 1, 0, 1), border, strict=True):
        on_border |= (np.abs(p0[:, j] - e) < 1.5) & (np.abs(p1[:, j] - e) < 1.5)
    return offs[c0:c1], ts, normals, resp, on_border, lab[:, :, c0:, 0]


def _peaks(resp: np.ndarray, offs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The strongest step of every sample of every side (`resp`: [4, S, C]), all sides at once: its index
    into `offs` [4, S], its strength [4, S] and its sub-sample offset [4, S] (float64)."""
    last = len(offs) - 1
    top = resp.argmax(2)
    strength = np.take_along_axis(resp, top[..., None], 2)[..., 0]
    r0 = np.take_along_axis(resp, np.maximum(top - 1, 0)[..., None], 2)[..., 0]
    r2 = np.take_along_axis(resp, np.minimum(top + 1, last)[..., None], 2)[..., 0]
    # sub-sample peak position: the vertex of a parabola through the peak and its neighbours
    den = r0 - 2 * strength + r2
    peak = (top > 0) & (top < last) & (den < 0)
    off = offs[top].astype(np.float64) + np.where(peak, 0.5 * (r0 - r2) / np.where(peak, den, -1.0), 0.0)
    return top, strength, off


def _fit_side(strength: np.ndarray, off: np.ndarray, ts: np.ndarray, need: float):
    """The RANSAC line through one side's strongest steps (`_peaks` of that side): ((a, b), inlier indices
    into the samples) or None with too little support."""
    ok = strength > MIN_STEP
    if ok.sum() < need:
        return None
    line, inl = _fit_offsets(ts[ok].astype(np.float64), off[ok], strength[ok].astype(np.float64), 1.0)
    if inl.sum() < need:
        return None
    return line, np.flatnonzero(ok)[inl]


def _plain_beyond(light_side: np.ndarray, idx: np.ndarray, top: np.ndarray, k: int) -> bool:
    """True when the lightness just outside the fitted edge is plain (background, not more of the sheet)."""
    outside = np.stack([light_side[j, top[j] + 1 : top[j] + 1 + 2 * k] for j in idx])
    return bool(np.median(outside.std(1)) <= BORDER_FLAT)


def _refine_quad(
    colours: np.ndarray, q: np.ndarray, band: float, samples: int, k: int, min_support: float
) -> tuple[np.ndarray, float, float]:
    """refine_corners on the working copy: (refined quad, summed support of its sides, 0-4, and the part
    of it that clear edges found)."""
    diag = quad_diagonal(q)
    reach = max(int(np.ceil(band * diag)), 4)
    offs, ts, normals, resp, on_border, light = _step_response(colours, q, reach, samples, k)
    lines: list[tuple[np.ndarray, np.ndarray] | None] = []
    score = edges = 0.0
    need = max(min_support * samples, 3)
    top, strength, off = _peaks(resp, offs)
    long_enough = np.linalg.norm(q[[1, 2, 3, 0]] - q, axis=1) >= 4 * k
    for i in range(4):
        fit = _fit_side(strength[i], off[i], ts, need) if long_enough[i] else None
        if fit is not None and on_border[i] and not _plain_beyond(light[i], fit[1], top[i], k):
            # a side on the frame's edge moves inwards only onto an edge with plain background beyond it
            # (a scanner lid, a desk), not onto more of the sheet (a rhythm strip's baseline, a grid line)
            fit = None
        if fit is None:
            score += BORDER_CREDIT * on_border[i]
            lines.append(None)
            continue
        (a, b), inl = fit
        score += len(inl) / samples
        edges += len(inl) / samples
        n = normals[i]
        lines.append((q[i] + a * n, q[(i + 1) % 4] + (a + b) * n))  # two points on the refined side
    out = q.copy()
    for i in range(4):
        prev, cur = lines[(i - 1) % 4], lines[i]
        if prev is None and cur is None:
            continue
        a0, a1 = prev if prev is not None else (q[(i - 1) % 4], q[i])
        b0, b1 = cur if cur is not None else (q[i], q[(i + 1) % 4])
        p = _intersect(a0, a1, b0, b1)
        if p is not None:
            out[i] = p
    return out, float(score), float(edges)


def _intersect(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray | None:
    """Intersection of the lines a0-a1 and b0-b1, or None when they are (nearly) parallel."""
    da, db = a1 - a0, b1 - b0
    den = da[0] * db[1] - da[1] * db[0]
    if abs(den) < 1e-9:
        return None
    u = ((b0[0] - a0[0]) * db[1] - (b0[1] - a0[1]) * db[0]) / den
    return (a0 + u * da).astype(np.float32)
