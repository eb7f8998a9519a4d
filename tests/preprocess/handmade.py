"""Hand-made scenes and tiny ONNX models for pre-processing tests (imported by the test modules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from onnx import TensorProto, helper, numpy_helper

PAPER = (560, 432)  # canonical sheet (w, h) in pixels: letter aspect 279:216


def paper_image(size: tuple[int, int] = PAPER, seed: int = 0) -> np.ndarray:
    """A canonical ECG-like sheet: pink grid (fine and bold lines), black traces, a dark frame marker."""
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 250, np.uint8)
    for x in range(0, w, 8):
        cv2.line(img, (x, 0), (x, h - 1), (200, 200, 255) if x % 40 else (120, 120, 240), 1)
    for y in range(0, h, 8):
        cv2.line(img, (0, y), (w - 1, y), (200, 200, 255) if y % 40 else (120, 120, 240), 1)
    for row in range(4):
        y0 = int(h * (row + 0.6) / 4.4)
        xs = np.arange(20, w - 20)
        ys = y0 + 12 * np.sin(xs / 7.0 + row) * (rng.random(xs.size) > 0.2) + 25 * (xs % 90 < 4)
        pts = np.stack([xs, ys], 1).astype(np.int32).reshape(-1, 1, 2)  # [n, 2] -> cv2 polyline
        cv2.polylines(img, [pts], False, (20, 20, 20), 2)
    return img


def background(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A dark, textured desk: smooth colour noise plus wood-like stripes."""
    h, w = shape
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 110, (max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    stripes = (12 * np.sin(np.arange(w) / 9.0)).astype(np.int16)[None, :, None]
    noise = rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    bg = np.clip(bg.astype(np.int16) + stripes + noise, 0, 255).astype(np.uint8)
    bg[..., 0] = np.clip(bg[..., 0].astype(np.int16) - 20, 0, 255)  # brownish, not grey
    return bg


@dataclass
class HandScene:
    image: np.ndarray  # BGR
    quad: np.ndarray  # float32 [4, 2], clockwise from the paper's top-left, edge coordinates
    paper: np.ndarray  # the canonical sheet that was warped in


def make_hand_scene(
    size: tuple[int, int] = (800, 600), quad: np.ndarray | None = None, seed: int = 0
) -> HandScene:
    """Warp the canonical sheet onto a background so that its outer corners land on `quad`."""
    w, h = size
    rng = np.random.default_rng(seed)
    if quad is None:
        base = np.array([[0.15, 0.15], [0.85, 0.12], [0.88, 0.86], [0.12, 0.84]]) * [w, h]
        quad = base + rng.uniform(-0.03, 0.03, (4, 2)) * [w, h]
    quad = np.asarray(quad, np.float32)
    paper = paper_image(seed=seed)
    ph, pw = paper.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32) - 0.5  # edges -> pixel centres
    m = cv2.getPerspectiveTransform(src, quad - 0.5)
    img = background((h, w), seed)
    cv2.warpPerspective(paper, m, (w, h), dst=img, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)
    return HandScene(img, quad, paper)


def constant_onnx(
    path: Path, input_name: str, input_shape: list[int | str], output_name: str, output: np.ndarray
) -> Path:
    """A real ONNX model whose output is `output` whatever its input: output = const + 0 * mean(input).
    The input is wired in, so ONNX Runtime checks its shape."""
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["const", "z"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, list(output.shape))],
        initializer=[
            numpy_helper.from_array(output.astype(np.float32), "const"),
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def constant_detector_onnx(
    path: Path, output: np.ndarray, size: tuple[int | str, int | str] = (64, 64)
) -> Path:
    """A real ONNX model with input `images` [1, 3, h, w] whose output0 is `output` whatever the input
    (names for h and w make them dynamic, as a dynamic ultralytics export has them)."""
    return constant_onnx(path, "images", [1, 3, *size], "output0", output)


def raw_rows(rows: list[list[float]], n_anchors: int = 84) -> np.ndarray:
    """A raw pose output [1, 17, n_anchors]: given columns (cx, cy, w, h, score, 4 x (x, y, v)), rest zero."""
    out = np.zeros((1, 17, n_anchors), np.float32)
    for i, r in enumerate(rows):
        out[0, : len(r), i] = r
    return out


def brightness_verifier_onnx(path: Path, size: tuple[int, int] = (32, 64), gain: float = 20.0) -> Path:
    """A real verifier ONNX (input `page` [N, 3, h, w], output `logit` [N, 1]): logit = gain * (mean - 0.5).

    A bright page scores near 1, a dark one near 0: enough to drive the accept / reject paths.
    """
    h, w = size
    nodes = [
        helper.make_node("ReduceMean", ["page"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["m2"]),
        helper.make_node("Sub", ["m2", "half"], ["d"]),
        helper.make_node("Mul", ["d", "gain"], ["logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness_verifier",
        [helper.make_tensor_value_info("page", TensorProto.FLOAT, ["N", 3, h, w])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 1], np.int64), "shape"),
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
            numpy_helper.from_array(np.array(gain, np.float32), "gain"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def constant_corner_model_onnx(path: Path, offsets: np.ndarray, size: tuple[int, int] = (64, 96)) -> Path:
    """A real corner model ONNX (input `page` [1, 3, h, w], output `offsets` [1, 8]) whose output is
    `offsets` whatever the page."""
    return constant_onnx(
        path, "page", [1, 3, *size], "offsets", np.asarray(offsets, np.float32).reshape(1, 8)
    )


def white_on_white_scene(size: tuple[int, int] = (800, 600), seed: int = 0) -> HandScene:
    """The canonical sheet on a background as white as its paper: no edge to see (a scanner lid)."""
    scene = make_hand_scene(size, seed=seed)
    w, h = size
    ph, pw = scene.paper.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32) - 0.5
    m = cv2.getPerspectiveTransform(src, scene.quad - 0.5)
    img = np.full((h, w, 3), 250, np.uint8)
    cv2.warpPerspective(
        scene.paper, m, (w, h), dst=img, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT
    )
    return HandScene(img, scene.quad, scene.paper)
