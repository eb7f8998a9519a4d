"""The pre-processing chain the pipeline calls: find the paper, crop or warp it to the model size, CLAHE.

Order matters for speed: the detector letterboxes straight to its small input; the crop resizes only the
region of interest, and the warp maps straight into the model's input size; CLAHE then runs on that small
image. A 12 MP photo so costs milliseconds, where equalising and warping at full size costs ~100 ms.

Without a detector (`detector=None`) the whole image is taken as the paper: `crop` uses the full frame
(only the margin-free resize happens), `warp` looks for corners with the classical finder over the whole
image, and nothing is ever rejected. With a detector, every mode (`none` included) rejects an image whose
best detection scores below `conf_threshold`, so a picture of a desk never reaches the classifier.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg.errors import InputError, UsageError
from edgeecg.preprocess.clahe import SPACES, apply_clahe
from edgeecg.preprocess.cornermodel import CornerModel
from edgeecg.preprocess.corners import (
    box_corners,
    classical_corners,
    edge_colours,
    is_valid_quad,
    landscape_order,
    match_order,
    order_corners,
    refine_corners,
)
from edgeecg.preprocess.detector import Detection, Detector
from edgeecg.preprocess.geometry import (
    crop_resize,
    expand_box,
    paper_format,
    shrink,
    warp_to_size,
    working_copy,
)
from edgeecg.preprocess.sam import SamCorners
from edgeecg.preprocess.verifier import Verifier

log = logging.getLogger(__name__)

MODES = ("none", "crop", "warp")
CORNER_SOURCES = ("keypoints", "sam", "classical")
KEYPOINT_MIN_CONF = 0.5  # below this a predicted corner is treated as unknown (e.g. outside the frame)
# refined-side support (of 4) from which the sheet's bounding box replaces the detector's
BOX_FROM_EDGES = 3.0
REFINE_WORK_SIZE = 512  # longest side of the copy corners are found and refined on
# A warped page is turned by 180 degrees when the verifier's upright probability falls below this. That
# output is trained on balanced classes (half the pages turned), while only a few percent of sheets come out
# of the chain upside down: by Bayes, turning pays only below that prior. On real photos the output is unsure
# (mid-range), so an even threshold would turn many; tests/preprocess/test_realdata.py checks none is.
UPRIGHT_MIN = 0.02
# ECG sheets are printed landscape, so a quad that reads portrait is a quarter-turn off; which of the two
# quarter-turns is right is even odds, so there the check's upright output decides at an even threshold.
UPRIGHT_MIN_QUARTER = 0.5
# the corner model runs where the support (of 4) refinement found on clear edges stays below this (a side
# kept on the frame's edge earns none here: the sheet's true edge may lie inside)
CORNER_MODEL_BELOW = 3.6
CORNER_MODEL_BAND = 0.015  # how far (of the diagonal) its corners are searched for a clear edge
QUARTER_MIN_SUPPORT = 2.0  # refined-side support (of 4) from which a quad's aspect is the sheet's


@dataclass(frozen=True)
class PreprocessConfig:
    """Pre-processing settings (the bundle manifest's "preprocess" section).

    Attributes:
        mode: none (resize the whole image) | crop (detector box plus margin) | warp (corners, perspective).
        corners: where warp gets the corners: keypoints (detector pose head) | sam | classical (OpenCV).
        refine: warp: snap the corners onto the paper's straight edges (`refine_corners`), choosing among the
            configured source and the other rough quads at hand (classical, keypoints) by edge support.
        margin: crop margin on each side, as a fraction of the box width/height.
        clahe_clip: CLAHE clip limit.
        clahe_tiles: CLAHE tile grid (columns, rows).
        clahe_space: lab (equalise L, keep colour) | gray | none (no CLAHE).
        conf_threshold: detections scoring below this mean "no ECG found".
        full_frame_check: below conf_threshold, a chain with a verifier lets the check judge the whole
            frame (a scan or render edge to edge whose sheet edges are lost in texture) instead of turning
            the picture away; without a check the detector alone decides.
    """

    mode: str = "crop"
    corners: str = "keypoints"
    refine: bool = True
    margin: float = 0.02
    clahe_clip: float = 2.0
    clahe_tiles: tuple[int, int] = (8, 8)
    clahe_space: str = "lab"
    conf_threshold: float = 0.25
    full_frame_check: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown pre-processing mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.corners not in CORNER_SOURCES:
            raise UsageError(
                f"unknown corner source {self.corners!r} (choose from {', '.join(CORNER_SOURCES)})"
            )
        if self.clahe_space not in SPACES:
            raise UsageError(f"unknown CLAHE space {self.clahe_space!r} (choose from {', '.join(SPACES)})")
        if not 0 <= self.margin < 1:
            raise UsageError(f"crop margin must be in [0, 1), got {self.margin}")
        object.__setattr__(self, "clahe_tiles", (int(self.clahe_tiles[0]), int(self.clahe_tiles[1])))

    @classmethod
    def from_manifest(
        cls, section: dict[str, Any] | None, detector: dict[str, Any] | None = None
    ) -> PreprocessConfig:
        """Build from the manifest's "preprocess" section ({"mode", "corners", "refine", "margin", "clahe":
        {"clip_limit", "tile_grid", "space"}}); flat field names are accepted too; no "refine" means False.
        `detector` (the manifest's "detector" section) supplies conf_threshold when the preprocess section
        does not."""
        section = dict(section or {})
        kw: dict[str, Any] = {}
        clahe = section.pop("clahe", None) or {}
        for src, dst in (
            ("clip_limit", "clahe_clip"),
            ("tile_grid", "clahe_tiles"),
            ("space", "clahe_space"),
        ):
            if src in clahe:
                kw[dst] = clahe[src]
        if detector and "conf_threshold" in detector:
            kw["conf_threshold"] = float(detector["conf_threshold"])
        # a manifest from before corner refinement (or the whole-frame check) existed describes a chain
        # without it
        kw["refine"] = bool(section.pop("refine", False))
        kw["full_frame_check"] = bool(section.pop("full_frame_check", False))
        names = {f.name for f in fields(cls)}
        kw.update({k: v for k, v in section.items() if k in names})
        if "clahe_tiles" in kw:
            kw["clahe_tiles"] = tuple(kw["clahe_tiles"])
        return cls(**kw)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest "preprocess" section for this config."""
        return {
            "mode": self.mode,
            "corners": self.corners,
            "refine": self.refine,
            "margin": self.margin,
            "conf_threshold": self.conf_threshold,
            "full_frame_check": self.full_frame_check,
            "clahe": {
                "clip_limit": self.clahe_clip,
                "tile_grid": list(self.clahe_tiles),
                "space": self.clahe_space,
            },
        }


@dataclass(frozen=True)
class CornerSource:
    """Where the warp's corners came from and what was done to them; `str()` is the display form
    ("classical+refined+model+landscape"), which `Prepared.corner_source` and the JSON output carry.

    Attributes:
        origin: keypoints | sam | classical | box.
        refined: refinement moved them onto the sheet's edges.
        model: the corner model placed them (where no clear edge showed).
        landscape: turned a quarter: the quad read portrait.
        turned: turned by 180 degrees: the verifier read the page upside down.
        unmodelled: the corner model's page was turned away, the sheet as found before it was not, and won.
    """

    origin: str
    refined: bool = False
    model: bool = False
    landscape: bool = False
    turned: bool = False
    unmodelled: bool = False

    def __str__(self) -> str:
        steps = (("refined", self.refined), ("model", self.model), ("landscape", self.landscape))
        steps += (("turned", self.turned), ("unmodelled", self.unmodelled))
        return self.origin + "".join(f"+{k}" for k, on in steps if on)


@dataclass
class Prepared:
    """The result of pre-processing one image.

    Attributes:
        image: uint8 HxWx3 BGR at the model input size after CLAHE; None when rejected.
        box: float32 [4] xyxy paper box in input pixels (None when rejected or without a detector): the
            detector's, or in warp mode the refined corners' bounding box when all four of the sheet's
            edges were found inside the frame.
        corners: float32 [4, 2] corners used by warp (or the detector's keypoints), else None.
        confidence: detector score of the paper (1.0 without a detector).
        rejected: why there is no image, e.g. "no ECG found (confidence 0.07 < 0.25)"; None when accepted.
        timings: seconds per stage (detect, crop / warp / resize, clahe, total).
        stages: debug images by stage name (only with debug=True).
        corner_source: where the warp's corners came from (keypoints, sam, classical, box; "+refined" when
            `refine_corners` moved them onto the paper's edges), else None.
        paper: closest paper format of the warped quad (letter, a4), else None.
        ecg_score: the verifier's probability that the page is an ECG, when a verifier ran.
        debug_image: where the pipeline wrote the montage of `stages`, when it did.
    """

    image: np.ndarray | None
    box: np.ndarray | None
    corners: np.ndarray | None
    confidence: float
    rejected: str | None
    timings: dict[str, float] = field(default_factory=dict)
    stages: dict[str, np.ndarray] = field(default_factory=dict)
    corner_source: str | None = None
    paper: str | None = None
    ecg_score: float | None = None
    debug_image: str | None = None

    def page_box(self, height: int, width: int) -> np.ndarray | None:
        """float32 xyxy of where the accepted page lies in the input: the detector's box; else the bounds of
        the warp's corners, clipped to the frame; else the whole frame (no detector, or below its threshold
        the verifier judged the frame itself). None when rejected."""
        if self.rejected is not None:
            return None
        if self.box is not None:
            return np.asarray(self.box, np.float32)
        if self.corners is not None:
            c = np.asarray(self.corners, np.float32)
            return np.clip(np.r_[c.min(0), c.max(0)], 0, [width, height, width, height]).astype(np.float32)
        return np.array([0, 0, width, height], np.float32)


def as_bgr(img: np.ndarray) -> np.ndarray:
    """Accept uint8 HxW grey, HxWx3 BGR or HxWx4 BGRA; return HxWx3 BGR, or raise InputError."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise InputError("image must be a uint8 numpy array")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    raise InputError(f"image must be HxW, HxWx3 or HxWx4, got shape {img.shape}")


class Preprocessor:
    """Callable pre-processing chain.

    Args:
        cfg: settings.
        detector: the paper detector, or None to take the whole image as the paper (see module doc).
        out_size: model input (h, w).
        sam: SAM corner finder, needed when cfg.mode is warp and cfg.corners is sam.
        verifier: verifier on the pre-processed page; pages it scores below its threshold are rejected.
        corner_model: warp: places the corners from the sheet's content where refinement did not find all
            four edges clearly; sides with a clear edge are snapped onto it again.
    """

    def __init__(
        self,
        cfg: PreprocessConfig,
        detector: Detector | None,
        out_size: tuple[int, int],
        sam: SamCorners | None = None,
        verifier: Verifier | None = None,
        corner_model: CornerModel | None = None,
    ) -> None:
        if cfg.mode == "warp" and cfg.corners == "sam" and sam is None:
            raise UsageError(
                "corners 'sam' needs SAM encoder and decoder ONNX files (the manifest's 'sam' section)"
            )
        self.cfg = cfg
        self.detector = detector
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self.sam = sam
        self.verifier = verifier
        self.corner_model = corner_model

    def __call__(self, img_bgr: np.ndarray, debug: bool = False) -> Prepared:
        """Pre-process one image: detect, flatten (or crop / resize), CLAHE, the verifier. One pass over one
        image, stage by stage and timed; each stage's decisions live in its helper (_detect, _sheet, _page).

        Long but linear: the stages hand a dozen values (box, corners, source, page, check) down the pass,
        which helpers would only pass back and forth.

        Args:
            img_bgr: uint8 HxWx3 BGR (grey and BGRA are converted).
            debug: keep an image of every stage in `Prepared.stages`.
        """
        cfg = self.cfg
        t_start = time.perf_counter()
        img = as_bgr(img_bgr)
        h, w = img.shape[:2]
        timings: dict[str, float] = {}
        stages: dict[str, np.ndarray] = {}

        det, confidence, rejected = self._detect(img, timings)
        if rejected is not None:
            if debug:
                stages["input"] = _draw(img, det.box if det else None, det.corners if det else None, rejected)
            timings["total"] = time.perf_counter() - t_start
            return Prepared(None, None, None, confidence, rejected, timings, stages)
        det = det if det is not None and confidence >= cfg.conf_threshold else None
        box = det.box if det is not None else None
        full = np.array([0, 0, w, h], np.float32)

        corners = det.corners if det is not None else None
        source: CornerSource | None = None
        paper = None
        quarter = False
        known_look = fallback = None
        region = full
        t0 = time.perf_counter()
        if cfg.mode == "none":
            stage = "resize"
        elif cfg.mode == "crop":
            region = expand_box(box, cfg.margin, (h, w)) if box is not None else full
            stage = "crop"
        else:
            corners, source, box, quarter, known_look, fallback = self._sheet(img, det, box, full)
            timings["corners"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            paper = paper_format(corners)[0]
            stage = "warp"

        flat = None if stage != "warp" else corners  # the page is the warp of `flat`, else `region` resized
        out = self._page(img, flat, region, self.out_size)
        timings[stage] = time.perf_counter() - t0

        t0 = time.perf_counter()
        eq = apply_clahe(out, cfg.clahe_clip, cfg.clahe_tiles, cfg.clahe_space)
        timings["clahe"] = time.perf_counter() - t0
        ecg_score = reason = None
        verifier_page = None
        if self.verifier is not None:
            t0 = time.perf_counter()
            # the check reads pages made at its own size (it learned on those); where the classifier's page
            # is that size it is that very page
            own = eq.shape[:2] == tuple(self.verifier.input_size)
            if known_look is None:  # (the quarter-turn may already have made and assessed this page)
                known_look = (eq, self.verifier.assess(eq)) if own else self._verifier_look(img, flat, region)
            verifier_page, (ecg_score, upright) = known_look
            verifier_page = eq if own else verifier_page
            turn_below = UPRIGHT_MIN_QUARTER if stage == "warp" and quarter else UPRIGHT_MIN
            if upright is not None and upright < turn_below and stage == "warp":
                # the sheet lies turned by 180 degrees: its top-left is the opposite corner
                out, eq = cv2.rotate(out, cv2.ROTATE_180), cv2.rotate(eq, cv2.ROTATE_180)
                corners = np.roll(corners, 2, axis=0)
                source = replace(source, turned=True)
            if ecg_score < self.verifier.threshold and fallback is not None:
                # the first look's orientation stands: the model keeps the found corners' order
                second = self._second_look(img, np.roll(fallback, 2, axis=0) if source.turned else fallback)
                if second is not None:  # a bad warp costs more than none: the sheet as found, unmoved
                    corners, out, eq, ecg_score, verifier_page = second
                    source = replace(source, model=False, unmodelled=True)
                    paper = paper_format(corners)[0]
            timings["verify"] = time.perf_counter() - t0
            if ecg_score < self.verifier.threshold:
                reason = f"no ECG found (verifier {ecg_score:.2f} < {self.verifier.threshold:.2f})"
        timings["total"] = time.perf_counter() - t_start
        if debug:
            label = f"conf {confidence:.2f}" + (f", corners: {source}" if source else "")
            label += f", verifier {ecg_score:.2f}" if ecg_score is not None else ""
            stages.update({"input": _draw(img, box, corners, label), stage: out, "clahe": eq})
            if verifier_page is not None and verifier_page is not eq:
                stages["verifier"] = verifier_page
        shown = str(source) if source is not None else None
        page = eq if reason is None else None
        return Prepared(page, box, corners, confidence, reason, timings, stages, shown, paper, ecg_score)

    def _detect(
        self, img: np.ndarray, timings: dict[str, float]
    ) -> tuple[Detection | None, float, str | None]:
        """(the detector's best sheet, its confidence, why the picture is turned away or None). Without a
        detector the whole frame is the sheet (confidence 1). Below the threshold a chain with a verifier
        and `full_frame_check` goes on without a sheet: the frame itself may be the page (a scan or render
        edge to edge, its edges lost in texture), and the check decides on the whole frame."""
        cfg = self.cfg
        if self.detector is None:
            return None, 1.0, None
        t0 = time.perf_counter()
        det = self.detector.detect(img, conf_threshold=0.0)
        timings["detect"] = time.perf_counter() - t0
        confidence = det.confidence if det is not None else 0.0
        if confidence >= cfg.conf_threshold or (self.verifier is not None and cfg.full_frame_check):
            return det, confidence, None
        return det, confidence, f"no ECG found (confidence {confidence:.2f} < {cfg.conf_threshold:.2f})"

    def _sheet(
        self, img: np.ndarray, det: Detection | None, box: np.ndarray | None, full: np.ndarray
    ) -> tuple[np.ndarray, CornerSource, np.ndarray | None, bool, tuple | None, np.ndarray | None]:
        """Warp mode: the sheet's corners, turned a quarter where the quad reads portrait, and the box they
        bound where that beats the detector's. Returns (corners, source, box, quarter-turned, the verifier's
        (page, assessment) when deciding the turn already made and scored the chosen page, else None, the
        corners before the corner model moved them where it did and no quarter-turn followed, else None)."""
        h, w = img.shape[:2]
        corners, source, support, before_model = self._corners(img, det, box if box is not None else full)
        # A sheet reads portrait for sure only where the frame did not cut its width: a side along the
        # frame's top or bottom only hides more height, one along its left or right (a tight photo or
        # screenshot of part of a page) hides width.
        left, _, right, _ = _borders_with_a_side(corners, (h, w))
        portrait = paper_format(corners)[1] < 1.0
        whole = support is not None and support >= QUARTER_MIN_SUPPORT and not (left or right)
        quarter = whole and portrait
        known_look = None
        turned = landscape_order(corners, det.corners if det is not None else None) if portrait else None
        if portrait and not whole and source.model and self.verifier is not None:
            # The frame cut the sheet, but the corner model placed its hidden corners too, so the outline is
            # the whole sheet's; whether that is a sheet lying a quarter-turn round or a portrait crop of a
            # page, the content says: the verifier scores both ways up.
            turned_look, kept_look = (self._verifier_look(img, quad) for quad in (turned, corners))
            quarter = _look_score(*turned_look[1]) > _look_score(*kept_look[1])
            known_look = turned_look if quarter else kept_look
        if quarter:
            corners, source, before_model = turned, replace(source, landscape=True), None
        if box is not None and _box_from_corners(corners, support, source, (h, w)):
            # the sheet's own outline bounds it better than the detector's box
            box = np.clip(np.r_[corners.min(0), corners.max(0)], 0, [w, h, w, h]).astype(np.float32)
        return corners, source, box, quarter, known_look, before_model

    def _second_look(
        self, img: np.ndarray, quad: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray] | None:
        """Where the check turned away the corner model's page: the page of `quad` (the sheet as found before
        the model moved it) when the check accepts it, as (corners, page, CLAHE page, ECG score, the check's
        page), else None. The model learned where hidden corners lie; on a picture whose frame is the sheet
        it can still push them out and skew the page."""
        verifier_page, (score, _) = self._verifier_look(img, quad)
        if score < self.verifier.threshold:
            return None
        out = self._page(img, quad, None, self.out_size)
        eq = apply_clahe(out, self.cfg.clahe_clip, self.cfg.clahe_tiles, self.cfg.clahe_space)
        return quad, out, eq, score, verifier_page

    @staticmethod
    def _page(
        img: np.ndarray, flat: np.ndarray | None, region: np.ndarray | None, size: tuple[int, int]
    ) -> np.ndarray:
        """The page at `size`: the quad `flat` warped flat, or (without one) the box `region` resized."""
        return crop_resize(img, region, size) if flat is None else warp_to_size(img, flat, size)[0]

    def _verifier_page(
        self, img: np.ndarray, flat: np.ndarray | None, region: np.ndarray | None = None
    ) -> np.ndarray:
        """The page as the verifier reads it: made at the check's own size, then CLAHE."""
        cfg = self.cfg
        page = self._page(img, flat, region, self.verifier.input_size)
        return apply_clahe(page, cfg.clahe_clip, cfg.clahe_tiles, cfg.clahe_space)

    def _verifier_look(
        self, img: np.ndarray, corners: np.ndarray | None, region: np.ndarray | None = None
    ) -> tuple[np.ndarray, tuple[float, float | None]]:
        """The check's page of the sheet `corners` flatten (or of `region` resized), and its verdict (ECG
        score, upright)."""
        page = self._verifier_page(img, corners, region)
        return page, self.verifier.assess(page)

    def _corners(
        self, img: np.ndarray, det: Detection | None, box: np.ndarray
    ) -> tuple[np.ndarray, CornerSource, float | None, np.ndarray | None]:
        """Corners for warp from the configured source, falling back to classical, then to the box; with
        refinement also the support its edges found (0-4), else None; and the corners before the corner
        model moved them where it did, else None.

        With `refine`, every rough quad at hand (the configured source first, then classical and the
        keypoints) is snapped onto the paper's edges and the best-supported one wins; the keypoints, which
        know the paper's top-left, then fix the corner order of a sheet turned by 90 or 180 degrees.
        """
        cfg = self.cfg
        rough, keypoints = self._rough_quads(img, det, box)
        # refinement and the classical finder share one small working copy (one shrink of a 12 MP photo)
        if cfg.refine:
            work, scale = working_copy(img, REFINE_WORK_SIZE)
        else:
            work, scale = img, np.ones(2, np.float32)
        if not rough or cfg.refine:
            search = expand_box(box, max(cfg.margin, 0.05), img.shape[:2]) * np.tile(scale, 2)
            quad = classical_corners(work, search)
            if quad is not None:
                rough.append(("classical", quad / scale))
        if cfg.refine and keypoints is not None and cfg.corners != "keypoints":
            rough.append(("keypoints", keypoints))  # unsure keypoints still make a rough quad to refine
        if not rough:
            return box_corners(box), CornerSource("box"), None, None
        if not cfg.refine:
            return rough[0][1], CornerSource(rough[0][0]), None, None
        # refinement needs clockwise corners; keypoints of a mirrored prediction may not be
        colours = edge_colours(work)  # shared by every refinement pass below
        quad, i, support, edges = refine_corners(
            work,
            [order_corners(q) * scale for _, q in rough],
            work_size=REFINE_WORK_SIZE,
            return_index=True,
            colours=colours,
        )
        quad = quad / scale
        if keypoints is not None:
            quad = match_order(quad, keypoints)
        moved = not np.allclose(order_corners(quad), order_corners(rough[i][1]), atol=0.5)
        source = CornerSource(rough[i][0], refined=moved)
        if self.corner_model is not None and edges < CORNER_MODEL_BELOW:
            found = quad
            quad, source, support = self._model_corners(work, scale, colours, quad, source, support)
            return quad, source, support, found if source.model else None
        return quad, source, support, None

    def _rough_quads(
        self, img: np.ndarray, det: Detection | None, box: np.ndarray
    ) -> tuple[list[tuple[str, np.ndarray]], np.ndarray | None]:
        """(the configured source's rough quad as [(name, quad)] where it gave a sure one, else [], and the
        detector's keypoints where they form a quad, however sure)."""
        cfg = self.cfg
        rough: list[tuple[str, np.ndarray]] = []
        keypoints = None
        if det is not None and det.corners is not None and is_valid_quad(det.corners, min_area=16.0):
            keypoints = det.corners.astype(np.float32)
            conf = det.corner_conf if det.corner_conf is not None else np.ones(4, np.float32)
            if cfg.corners == "keypoints":
                if np.all(conf >= KEYPOINT_MIN_CONF):
                    rough.append(("keypoints", keypoints))
                else:
                    log.debug("keypoint corners unsure (conf %s)", np.round(conf, 2))
        if cfg.corners == "sam" and self.sam is not None:
            quad = self.sam.corners(img, box)
            if quad is not None and is_valid_quad(quad, min_area=16.0):
                rough.append(("sam", quad))
            else:
                log.debug("SAM gave no usable quadrilateral")
        return rough, keypoints

    def _model_corners(
        self,
        work: np.ndarray,
        scale: np.ndarray,
        colours: np.ndarray,
        quad: np.ndarray,
        source: CornerSource,
        support: float,
    ) -> tuple[np.ndarray, CornerSource, float]:
        """(quad, source, support) after the corner model placed the corners, its clear sides snapped onto
        their edges again; unchanged where the model gives no valid quad."""
        # the model's page is made from the working copy: it is far smaller than its source anyway
        placed = self.corner_model.corners(work, quad * scale) / scale
        if not is_valid_quad(placed, min_area=16.0):
            return quad, source, support
        # the model is a few px off where an edge shows: snap clear sides onto it again
        snapped, _, support, _ = refine_corners(
            work,
            [order_corners(placed) * scale],
            band=CORNER_MODEL_BAND,
            return_index=True,
            colours=colours,
            narrow_pass=False,
        )
        return match_order(snapped / scale, placed), replace(source, model=True), support


def _look_score(ecg: float, upright: float | None) -> float:
    """How well a flattened page reads as an ECG the right way round: the check's ECG logit plus how sure its
    upright output is either way. A page turned sideways is still an ECG to a check that learned from
    pages at any scale (both ways score ~0.99), but which way up it is reads only from a landscape page
    (sure: upright near 0 or 1; sideways near 0.5)."""

    def lg(p: float) -> float:
        p = min(max(p, 1e-6), 1 - 1e-6)
        return math.log(p / (1 - p))

    return lg(ecg) + (abs(lg(upright)) if upright is not None else 0.0)


def _box_from_corners(
    corners: np.ndarray, support: float | None, source: CornerSource, shape: tuple[int, int]
) -> bool:
    """True when the warp's quad bounds the visible sheet better than the detector's box: the corner model
    placed it (from the whole sheet's content), or refinement found its sides (summed support >=
    BOX_FROM_EDGES) and either moved the quad onto them, or found all four inside the frame, or the quad is
    the whole frame (a page that fills the picture). An unmoved rough quad with a side kept on the frame's
    edge is only the search region (the detector's box, enlarged)."""
    if source.model:
        return True
    if support is None or support < BOX_FROM_EDGES:
        return False
    on_frame = _borders_with_a_side(corners, shape)
    return source.refined or not on_frame.any() or bool(on_frame.all())


def _borders_with_a_side(corners: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which of the frame's borders (left, top, right, bottom) a side of the quad lies along (both its
    corners within 1% of that border)."""
    h, w = shape
    mx, my = 0.01 * w, 0.01 * h
    x, y = corners[:, 0], corners[:, 1]
    near = np.stack([x <= mx, y <= my, x >= w - mx, y >= h - my])  # [border, corner]
    return (near & np.roll(near, -1, axis=1)).any(1)  # a side: corner i and i + 1 on one border


def to_model_input(
    images: list[np.ndarray],
    mean: tuple[float, float, float] | list[float],
    std: tuple[float, float, float] | list[float],
    channel_order: str = "RGB",
    scale: float = 255.0,
) -> np.ndarray:
    """Stack BGR images into the classifier's float32 NCHW batch: (pixel / scale - mean) / std.

    Args:
        images: uint8 HxWx3 BGR images, all the same size.
        mean: per-channel mean, in the manifest's channel order, in units of pixel / scale.
        std: per-channel std, same order and units.
        channel_order: "RGB" or "BGR" (the manifest's classifier.input.channel_order).
        scale: divisor taking pixels to the units of mean and std.

    Returns:
        float32 [N, 3, H, W].
    """
    if channel_order not in ("RGB", "BGR"):
        raise UsageError(f"channel_order must be RGB or BGR, got {channel_order!r}")
    if not images:
        raise UsageError("to_model_input needs at least one image")
    batch = np.stack(images)  # N x [H, W, 3] -> [N, H, W, 3]
    if channel_order == "RGB":
        batch = batch[..., ::-1]
    m = np.asarray(mean, np.float32) * np.float32(scale)
    s = np.asarray(std, np.float32) * np.float32(scale)
    x = (batch.astype(np.float32) - m) / s
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # [N, H, W, 3] -> [N, 3, H, W]


def _draw(img: np.ndarray, box: np.ndarray | None, corners: np.ndarray | None, text: str) -> np.ndarray:
    """A small copy of the input with the box (green), corners (red, first one filled) and a caption."""
    h, w = img.shape[:2]
    s = min(1.0, 640 / max(h, w))
    vis = shrink(img, (max(round(w * s), 1), max(round(h * s), 1))) if s < 1 else img.copy()
    if box is not None:
        p = (np.asarray(box) * s).round().astype(int)
        cv2.rectangle(vis, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), (0, 200, 0), 2)
    if corners is not None:
        q = (np.asarray(corners) * s).round().astype(np.int32)
        cv2.polylines(vis, [q.reshape(-1, 1, 2)], True, (0, 0, 255), 2)  # [4, 2] -> cv2 polyline
        for i, (x, y) in enumerate(q):
            cv2.circle(vis, (int(x), int(y)), 6, (0, 0, 255), -1 if i == 0 else 2)
    cv2.putText(vis, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(vis, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return vis


def debug_montage(prepared: Prepared, height: int = 360) -> np.ndarray:
    """Every debug stage side by side, each captioned with its name (BGR uint8).

    Args:
        prepared: a result computed with debug=True.
        height: height of each tile in pixels.
    """
    if not prepared.stages:
        raise UsageError("no debug stages recorded: call the Preprocessor with debug=True")
    tiles = []
    for name, im in prepared.stages.items():
        im = as_bgr(im)
        tile = cv2.resize(im, (max(int(round(im.shape[1] * height / im.shape[0])), 1), height))
        cv2.putText(tile, name, (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(
            tile, name, (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 255), 1, cv2.LINE_AA
        )
        tiles.append(tile)
        tiles.append(np.full((height, 6, 3), 255, np.uint8))  # white gutter
    return np.hstack(tiles[:-1])


def save_debug_montage(prepared: Prepared, path: str | Path, height: int = 360) -> None:
    """Write `debug_montage(prepared, height)` as a PNG at `path` (parent directories are created)."""
    montage = debug_montage(prepared, height)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), montage):
        raise InputError(f"cannot write debug montage {path}")
