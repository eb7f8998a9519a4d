"""Per-stage latency on the synthetic 12 MP photo: decode, detect, crop / warp, CLAHE, resize / normalise,
the whole pre-processing chain, and each ensemble member (ONNX Runtime, batch 1); plus the pre-processing
order comparison (shrink first vs equalise and warp at full resolution).

Run: `scripts/bench.sh` (everything, with the report) or `pytest benchmarks/test_bench_stages.py`.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from benchsuite import BenchSettings

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.io import read_image
from edgeecg.preprocess import (
    Detector,
    PreprocessConfig,
    Preprocessor,
    apply_clahe,
    crop_resize,
    to_model_input,
    warp_to_size,
)
from edgeecg.preprocess.corners import classical_corners, refine_corners
from edgeecg.preprocess.geometry import expand_box

CPU = ["CPUExecutionProvider"]
SETTINGS = BenchSettings.from_env()  # parametrisation needs the member count at collection time


@pytest.fixture(scope="module")
def manifest(models):
    return models.manifest


@pytest.fixture(scope="module")
def out_size(manifest) -> tuple[int, int]:
    inp = manifest["classifier"]["input"]
    return int(inp["height"]), int(inp["width"])


@pytest.fixture(scope="module")
def detector(models, settings, manifest):
    runner = OnnxRuntimeRunner(
        models.detector_file(), threads=settings.threads, providers=CPU, name="detector"
    )
    with runner:
        yield Detector.from_manifest(runner, manifest["detector"])


@pytest.fixture(scope="module")
def small(photo_image, photo, out_size):
    """The photo's paper warped to the model input (what CLAHE and normalisation see)."""
    return warp_to_size(photo_image, photo.quad, out_size)[0]


def _norm(manifest):
    inp = manifest["classifier"]["input"]
    return inp["mean"], inp["std"], inp.get("channel_order", "RGB"), float(inp.get("scale", 255.0))


@pytest.mark.benchmark(group="stages (photo)")
def test_decode(bench, photo):
    img = bench(lambda: read_image(photo.path), case="stage/decode", size=list(photo.size))
    assert img.shape[:2] == (photo.size[1], photo.size[0])


@pytest.mark.benchmark(group="stages (photo)")
def test_detect(bench, detector, photo_image):
    det = bench(lambda: detector.detect(photo_image), case="stage/detect", input=list(detector.input_size))
    assert det is None or det.box.shape == (4,)


@pytest.mark.benchmark(group="stages (photo)")
def test_detect_model_only(bench, detector, photo_image):
    """The YOLO model alone at its input size (the T4 runbook's ~1.5 ms figure is this, on a GPU)."""
    blob, _ = detector.prepare(photo_image)
    out = bench(
        lambda: detector.runner.infer(blob), case="stage/detect-model", input=list(detector.input_size)
    )
    assert next(iter(out.values())).shape[0] == 1


@pytest.mark.benchmark(group="stages (photo)")
def test_crop(bench, photo, photo_image, out_size):
    box = expand_box(photo.box, 0.02, photo_image.shape[:2])
    out = bench(lambda: crop_resize(photo_image, box, out_size), case="stage/crop")
    assert out.shape[:2] == out_size


@pytest.mark.benchmark(group="stages (photo)")
def test_warp(bench, photo, photo_image, out_size):
    out = bench(lambda: warp_to_size(photo_image, photo.quad, out_size)[0], case="stage/warp")
    assert out.shape[:2] == out_size


@pytest.mark.benchmark(group="stages (photo)")
def test_corners_classical(bench, photo, photo_image):
    box = expand_box(photo.box, 0.05, photo_image.shape[:2])
    quad = bench(lambda: classical_corners(photo_image, box), case="stage/corners-classical")
    assert quad is not None


@pytest.mark.benchmark(group="stages (photo)")
def test_corners_refine(bench, photo, photo_image):
    """Snapping two rough quads (as keypoints and the classical finder give) onto the paper's edges."""
    diag = float(np.linalg.norm(photo.quad[2] - photo.quad[0]))
    rough = [photo.quad + 0.02 * diag, photo.quad - 0.01 * diag]
    quad = bench(lambda: refine_corners(photo_image, rough), case="stage/corners-refine")
    assert np.linalg.norm(quad - photo.quad, axis=1).max() < 0.01 * diag


@pytest.mark.benchmark(group="stages (photo)")
def test_resize_whole(bench, photo_image, out_size):
    """Mode "none": the whole frame resized to the model input."""
    h, w = photo_image.shape[:2]
    full = np.array([0, 0, w, h], np.float32)
    out = bench(lambda: crop_resize(photo_image, full, out_size), case="stage/resize")
    assert out.shape[:2] == out_size


@pytest.mark.benchmark(group="stages (photo)")
def test_clahe(bench, small, manifest):
    c = manifest["preprocess"]["clahe"]
    args = (float(c["clip_limit"]), tuple(c["tile_grid"]), c["space"])
    out = bench(lambda: apply_clahe(small, *args), case="stage/clahe")
    assert out.shape == small.shape


@pytest.mark.benchmark(group="stages (photo)")
def test_normalise(bench, small, manifest):
    x = bench(lambda: to_model_input([small], *_norm(manifest)), case="stage/normalise")
    assert x.dtype == np.float32 and x.shape[:2] == (1, 3)


@pytest.mark.benchmark(group="stages (photo)")
def test_preprocess_chain(bench, detector, photo_image, manifest, out_size):
    """The pipeline's pre-processing as the bundle configures it (detect, crop or warp, CLAHE)."""
    cfg = PreprocessConfig.from_manifest(manifest["preprocess"], manifest["detector"])
    pre = Preprocessor(cfg, detector, out_size)
    p = bench(lambda: pre(photo_image), case="stage/preprocess", mode=cfg.mode)
    assert p.rejected is None and p.image.shape[:2] == out_size


@pytest.mark.benchmark(group="stages (photo)")
def test_preprocess_chain_warp_refined(bench, detector, photo_image, manifest, out_size):
    """The chain with warp: detect, classical corners, refinement onto the paper's edges, warp, CLAHE."""
    cfg = PreprocessConfig.from_manifest(manifest["preprocess"], manifest["detector"])
    cfg = replace(cfg, mode="warp", corners="classical", refine=True, conf_threshold=0.0)
    pre = Preprocessor(cfg, detector, out_size)
    p = bench(lambda: pre(photo_image), case="stage/preprocess-warp-refined", mode="warp")
    assert p.rejected is None and p.image.shape[:2] == out_size


@pytest.mark.benchmark(group="members (onnxruntime, batch 1)")
@pytest.mark.parametrize("member", range(SETTINGS.folds))
def test_member(bench, models, settings, small, manifest, member):
    files = models.member_files()
    x = to_model_input([small], *_norm(manifest))
    with OnnxRuntimeRunner(files[member], threads=settings.threads, providers=CPU) as r:
        out = bench(lambda: r.infer(x), case=f"member/onnxruntime/{member}", backend="onnxruntime")
    assert out["logits"].shape == (1, 5)


# -- pre-processing order: shrink first (what the runtime does) vs full resolution (what to avoid) -----------


def _naive_warp(img, quad, out_size, clahe_args):
    """Equalise the whole photo, warp it at full resolution to the paper's own size, then shrink."""
    eq = apply_clahe(img, *clahe_args)
    q = np.asarray(quad, np.float32)
    pw = int(round(max(np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3]))))
    ph = int(round(max(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1]))))
    m = cv2.getPerspectiveTransform(q, np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]]))
    page = cv2.warpPerspective(eq, m, (pw, ph))
    return cv2.resize(page, out_size[::-1], interpolation=cv2.INTER_AREA)


def _naive_crop(img, box, out_size, clahe_args):
    eq = apply_clahe(img, *clahe_args)
    x0, y0, x1, y1 = (int(v) for v in box)
    return cv2.resize(eq[y0:y1, x0:x1], out_size[::-1], interpolation=cv2.INTER_AREA)


@pytest.mark.benchmark(group="pre-processing order (photo, detector included)")
@pytest.mark.parametrize("mode", ["warp", "crop"])
@pytest.mark.parametrize("order", ["shrink-first", "full-resolution"])
def test_preprocess_order(bench, detector, photo, photo_image, manifest, out_size, mode, order):
    """Detector, then crop or warp and CLAHE; the runtime's order against equalising at full size first.

    The paper's ground-truth corners stand in for the random detector's so both orders do the same work.
    """
    c = manifest["preprocess"]["clahe"]
    clahe_args = (float(c["clip_limit"]), tuple(c["tile_grid"]), c["space"])
    box = expand_box(photo.box, 0.02, photo_image.shape[:2])

    def fast():
        detector.detect(photo_image)
        if mode == "warp":
            out = warp_to_size(photo_image, photo.quad, out_size)[0]
        else:
            out = crop_resize(photo_image, box, out_size)
        return apply_clahe(out, *clahe_args)

    def slow():
        detector.detect(photo_image)
        if mode == "warp":
            return _naive_warp(photo_image, photo.quad, out_size, clahe_args)
        return _naive_crop(photo_image, box, out_size, clahe_args)

    out = bench(fast if order == "shrink-first" else slow, case=f"preprocess-order/{mode}/{order}")
    assert out.shape[:2] == out_size
