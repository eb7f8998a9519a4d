"""torch → ONNX for classifier members, checked against torch in ONNX Runtime right after export.

The legacy TorchScript exporter (`dynamo=False`) at opset 17 gives one LayerNormalization node for ConvNeXt's
LayerNorm and real opset 17 (the dynamo exporter emits opset 18 even when 17 is asked for; docs/design.md section 7).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg._lazy import require
from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.errors import EdgeECGError
from edgeecg.preprocess.chain import to_model_input

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "image"


def ecg_like_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image that looks like a paper ECG: pink grid, twelve traces of PQRST beats, some text.

    Used as a "real-looking" input for export checks, so they see the value ranges a real page gives
    rather than only Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), (235, 235, 255), np.uint8)  # BGR: light pink paper
    small = max(2, width // 100)
    for x in range(0, width, small):
        cv2.line(img, (x, 0), (x, height - 1), (200, 200, 250) if x % (5 * small) else (160, 160, 240), 1)
    for y in range(0, height, small):
        cv2.line(img, (0, y), (width - 1, y), (200, 200, 250) if y % (5 * small) else (160, 160, 240), 1)
    rows, cols = 4, 3
    t = np.linspace(0.0, 1.0, max(8, width // cols), dtype=np.float64)
    for r in range(rows):
        for c in range(cols if r < rows - 1 else 1):
            span = width // cols if r < rows - 1 else width
            tt = np.linspace(0.0, 1.0, span) if r == rows - 1 else t
            rate = rng.uniform(2.5, 4.5)
            phase = (tt * rate + rng.uniform()) % 1.0
            amp = rng.uniform(0.5, 1.0)
            beat = (
                0.15 * np.exp(-(((phase - 0.2) / 0.03) ** 2))  # P
                - 0.1 * np.exp(-(((phase - 0.33) / 0.01) ** 2))  # Q
                + amp * np.exp(-(((phase - 0.35) / 0.012) ** 2))  # R
                - 0.2 * np.exp(-(((phase - 0.37) / 0.01) ** 2))  # S
                + 0.25 * np.exp(-(((phase - 0.6) / 0.05) ** 2))  # T
            )
            base = int((r + 0.6) * height / (rows + 0.4))
            ys = base - beat * height / (rows * 2.5)
            xs = c * span + np.arange(len(tt))
            pts = np.stack([xs, ys], axis=1).round().astype(np.int32).reshape(-1, 1, 2)  # [n, 1, 2] for cv2
            cv2.polylines(img, [pts], False, (20, 20, 20), max(1, height // 200), cv2.LINE_AA)
    scale = max(0.3, height / 600)
    cv2.putText(
        img, "25 mm/s 10 mm/mV", (small, height - small), cv2.FONT_HERSHEY_SIMPLEX, scale, (30, 30, 30), 1
    )
    return img


def manifest_batch(images: list[np.ndarray], input_cfg: dict[str, Any]) -> np.ndarray:
    """BGR uint8 images -> float32 NCHW batch as the manifest's classifier input describes: each resized to
    the input size, then the runtime's own `to_model_input` (order and normalisation)."""
    h, w = int(input_cfg["height"]), int(input_cfg["width"])
    if not images:
        return np.zeros((0, 3, h, w), np.float32)
    sized = [cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) for img in images]
    order = str(input_cfg["channel_order"]).upper()
    return to_model_input(
        sized, input_cfg["mean"], input_cfg["std"], order, float(input_cfg.get("scale", 255.0))
    )


def check_inputs(input_cfg: dict[str, Any], n_random: int = 2, n_ecg: int = 2, seed: int = 0) -> np.ndarray:
    """A float32 batch for export checks: Gaussian noise and ECG-like pages, normalised like real input."""
    h, w = int(input_cfg["height"]), int(input_cfg["width"])
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_random, 3, h, w)).astype(np.float32)
    pages = manifest_batch([ecg_like_image(h, w, seed + i) for i in range(n_ecg)], input_cfg)
    return np.concatenate([noise, pages], axis=0)


def export_onnx(
    module: Any,
    path: str | Path,
    height: int,
    width: int,
    output_names: list[str],
    opset: int = OPSET,
    input_name: str = INPUT_NAME,
) -> Path:
    """Export a torch module taking one NCHW input (named `input_name`), with a dynamic batch axis on every
    tensor."""
    torch = require("torch")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, 3, height, width)
    axes = {name: {0: "batch"} for name in [input_name, *output_names]}
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice; we choose it on purpose
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx = require("onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise EdgeECGError(f"{path.name} was exported at opset {got}, not {opset}")
    return path


def ort_run(path: str | Path, batch: np.ndarray, threads: int = 0) -> dict[str, np.ndarray]:
    """Run an ONNX model in ONNX Runtime on the CPU through the project's runner."""

    with OnnxRuntimeRunner(path, threads=threads, providers=["CPUExecutionProvider"]) as runner:
        return runner.infer(batch)


def torch_run(module: Any, batch: np.ndarray) -> list[np.ndarray]:
    """Run a torch module on a numpy batch; every output as numpy."""
    torch = require("torch")
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(batch))
    outs = out if isinstance(out, tuple | list) else (out,)
    return [o.detach().cpu().numpy() for o in outs]


def export_page_model(module: Any, path: str | Path, pages: np.ndarray, output: str, what: str) -> float:
    """Export a small model of the pre-processing chain (the verifier, the corner model: one input "page"
    [N, 3, H, W], BGR / 255, one output) and check it against torch on `pages` (uint8 [N, H, W, 3]).

    Returns:
        The max abs difference of the output.

    Raises:
        EdgeECGError: ONNX Runtime and torch differ by more than 1e-3.
    """
    h, w = pages.shape[1:3]
    export_onnx(module, path, h, w, [output], input_name="page")
    batch = np.ascontiguousarray(pages.transpose(0, 3, 1, 2), np.float32) / np.float32(255.0)
    diff = float(np.abs(ort_run(path, batch)[output] - torch_run(module, batch)[0]).max())
    if diff > 1e-3:
        raise EdgeECGError(f"{what} ONNX differs from torch by {diff:.2e}")
    return diff


def export_member(model: Any, path: str | Path, input_cfg: dict[str, Any], atol: float = 1e-4) -> float:
    """Export one classifier member (output "logits") and check it against torch.

    Args:
        model: the timm model (eval mode).
        path: where the .onnx goes.
        input_cfg: the classifier input (height, width, mean, std, channel_order).
        atol: largest allowed max abs logit difference between torch and ONNX Runtime.

    Returns:
        The max abs difference seen on random and ECG-like inputs.

    Raises:
        EdgeECGError: the ONNX model differs from torch by more than `atol`.
    """
    export_onnx(model, path, int(input_cfg["height"]), int(input_cfg["width"]), ["logits"])
    batch = check_inputs(input_cfg)
    want = torch_run(model, batch)[0]
    got = ort_run(path, batch)["logits"]
    diff = float(np.abs(want - got).max())
    log.info("%s: max abs diff vs torch %.2e", Path(path).name, diff)
    if not diff <= atol:
        raise EdgeECGError(f"{Path(path).name} differs from torch by {diff:.2e} (> {atol:.0e})")
    return diff
