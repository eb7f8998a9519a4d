"""One ONNX graph for the whole ensemble: one "image" input, the members in parallel, mean of their sigmoids.

Five separate engines on five streams rarely overlap on one GPU; one graph with a shared input cuts launches
and copies (DESIGN.md section 6). We export a torch module that wraps the members, so the graph is what the
members compute, by construction, and the check against separate members is a real comparison.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg._lazy import require
from edgeecg.errors import EdgeECGError

log = logging.getLogger(__name__)

#: Output names of the fused graph, as the manifest's "fused.outputs" records them.
OUTPUTS: dict[str, str] = {"mean": "prob", "members": "member_probs", "member_logits": "member_logits"}


def fused_module(members: list[Any]) -> Any:
    """A torch module: image [N,3,H,W] → (prob [N,C], member_probs [N,M,C], member_logits [N,M,C])."""
    torch = require("torch")

    class FusedEnsemble(torch.nn.Module):
        def __init__(self, models: list[Any]) -> None:
            super().__init__()
            self.members = torch.nn.ModuleList(models)

        def forward(self, image: Any) -> tuple[Any, Any, Any]:
            logits = torch.stack([m(image) for m in self.members], dim=1)  # [N, M, C]
            probs = torch.sigmoid(logits)
            return probs.mean(dim=1), probs, logits

    return FusedEnsemble(members).eval()


def export_fused(members: list[Any], path: str | Path, input_cfg: dict[str, Any]) -> Path:
    """Export the fused ensemble of torch `members` to `path`."""
    from edgeecg.export.onnx_export import export_onnx  # noqa: PLC0415

    module = fused_module(members)
    names = [OUTPUTS["mean"], OUTPUTS["members"], OUTPUTS["member_logits"]]
    return export_onnx(module, path, int(input_cfg["height"]), int(input_cfg["width"]), names)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in float64."""
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def check_fused(
    fused_path: str | Path, member_paths: list[str | Path], batch: np.ndarray, atol: float = 1e-5
) -> float:
    """Compare the fused graph with the separate member graphs in ONNX Runtime.

    Returns:
        The max abs difference over "prob" and "member_probs".

    Raises:
        EdgeECGError: the difference exceeds `atol`.
    """
    from edgeecg.export.onnx_export import ort_run  # noqa: PLC0415

    fused = ort_run(fused_path, batch)
    member_probs = np.stack([sigmoid(ort_run(p, batch)["logits"]) for p in member_paths], axis=1)  # [N, M, C]
    diff = max(
        float(np.abs(fused[OUTPUTS["members"]] - member_probs).max()),
        float(np.abs(fused[OUTPUTS["mean"]] - member_probs.mean(axis=1)).max()),
    )
    log.info("%s: max abs diff vs separate members %.2e", Path(fused_path).name, diff)
    if not diff <= atol:
        raise EdgeECGError(f"fused ensemble differs from its members by {diff:.2e} (> {atol:.0e})")
    return diff
