"""Benchmark: full pre-processing of a 12 MP photo (decode excluded, detector included) vs the naive order.

The issue's target is <= 40 ms median on the project's 2-core CPUs with the detector at 320 px. Shared or
loaded machines drift a lot, so the test asserts the ratio to the naive full-resolution order measured in
the same run, and the absolute target only with EDGEECG_BENCH_STRICT=1 (on an idle machine). Run: pytest -m bench tests/preprocess -s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from handmade import make_hand_scene

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.preprocess import Detector, PreprocessConfig, Preprocessor, apply_clahe

pytestmark = [
    pytest.mark.bench,
    pytest.mark.ultralytics,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
OUT = (256, 512)


@pytest.fixture(scope="module")
def yolov8n_pose_320(tmp_path_factory) -> Path:
    """A random-init yolov8n-pose (1 class, 4 keypoints) exported at 320: the shipped detector's cost."""
    os.environ.setdefault(
        "YOLO_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "build" / "yolo-config")
    )
    ultralytics = pytest.importorskip("ultralytics")
    yaml = pytest.importorskip("yaml")
    torch = pytest.importorskip("torch")
    tmp = tmp_path_factory.mktemp("bench-det")
    cfg = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-pose.yaml").read_text())
    cfg.update(nc=1, kpt_shape=[4, 3])
    (tmp / "yolov8n-pose.yaml").write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        out = ultralytics.YOLO("yolov8n-pose.yaml", task="pose").export(
            format="onnx", imgsz=320, opset=17, simplify=False, dynamic=False
        )
    finally:
        os.chdir(cwd)
    return tmp / out


def _median_ms(fn, n: int = 15) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def test_12mp_preprocess_is_fast(yolov8n_pose_320):
    scene = make_hand_scene((4000, 3000), seed=0)
    img = scene.image
    with OnnxRuntimeRunner(yolov8n_pose_320, threads=2) as runner:
        det = Detector(runner, keypoints=4)
        pre = Preprocessor(PreprocessConfig(mode="crop", conf_threshold=0.0), det, OUT)
        fast = _median_ms(lambda: pre(img))

        def naive():
            # the order to avoid: equalise and warp at full resolution, then shrink
            det.detect(img)
            eq = apply_clahe(img)
            m = cv2.getPerspectiveTransform(
                scene.quad, np.float32([[0, 0], [2970, 0], [2970, 2100], [0, 2100]])
            )
            return cv2.resize(
                cv2.warpPerspective(eq, m, (2970, 2100)), OUT[::-1], interpolation=cv2.INTER_AREA
            )

        slow = _median_ms(naive, n=5)
    print(
        f"\n12 MP pre-processing (crop, detector 320): {fast:.1f} ms median; naive full-res order {slow:.1f} ms"
    )
    assert fast < slow / 2, f"fast path {fast:.1f} ms is not well below the naive order {slow:.1f} ms"
    if os.environ.get("EDGEECG_BENCH_STRICT") == "1":
        assert fast <= 40.0, f"{fast:.1f} ms > 40 ms target"
