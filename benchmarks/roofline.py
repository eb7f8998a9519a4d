"""Compute floors for GPU figures: a model's FLOPs over the card's peak rate.

A latency below `flops / peak` is impossible; the ratio of the floor to the measured time says how much of
the card a model uses (small models at batch 1 use little: launches and copies dominate). Peaks are the
vendors' dense (no sparsity) datasheet figures in TFLOP/s: FP16 on tensor cores, FP32 on CUDA cores.
Jetson AGX Orin's FP16 figure is derived from NVIDIA's 170 sparse INT8 TOPS for its GPU (halved for
dense, halved again for FP16), so treat it as approximate.
"""

from __future__ import annotations

import re
from typing import Any

#: (pattern matched against torch.cuda.get_device_name(), label, FP16 TFLOP/s, FP32 TFLOP/s). First match wins,
#: so more specific names come first ("A100" before "A10", "H100 PCIe" before "H100").
PEAKS: list[tuple[str, str, float, float]] = [
    (r"\bT4\b", "Tesla T4", 65.0, 8.1),
    (r"\bA100\b", "A100", 312.0, 19.5),
    (r"\bA10\b", "A10", 125.0, 31.2),
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.0, 51.2),
    (r"\bH100\b", "H100 SXM", 989.0, 67.0),
    (r"\bH200\b", "H200", 989.0, 67.0),
    (r"\bL40S\b", "L40S", 362.0, 91.6),
    (r"\bL4\b", "L4", 121.0, 30.3),
    (r"\bOrin\b", "Jetson AGX Orin (approx.)", 42.5, 5.3),
]


def peak(gpu_name: str | None) -> dict[str, Any] | None:
    """{"label", "fp16", "fp32"} peak TFLOP/s for a device name, or None when the card is not in the table."""
    if not gpu_name:
        return None
    for pattern, label, fp16, fp32 in PEAKS:
        if re.search(pattern, gpu_name, flags=re.IGNORECASE):
            return {"label": label, "fp16": fp16, "fp32": fp32}
    return None


def floor_ms(flops: float | None, gpu_name: str | None, precision: str) -> float | None:
    """The shortest time `flops` can take on the card at `precision` ("fp16" or "fp32"), in ms; None if unknown."""
    p = peak(gpu_name)
    if not flops or p is None:
        return None
    rate = p["fp16" if precision == "fp16" else "fp32"] * 1e12
    return flops / rate * 1e3


def count_flops(module: Any, example: Any) -> int:
    """FLOPs of one forward pass of a torch module (convolutions and matmuls, as torch's FlopCounterMode counts
    them: 2 per multiply-add; normalisations and activations are not counted)."""
    import torch  # noqa: PLC0415
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(example)
    return int(counter.get_total_flops())
