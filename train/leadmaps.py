"""Lead maps: a training-only dense target that says, for every cell of a feature map, which lead is there
and what the simulator put into that lead (`lead_maps` in the config, stage I only).

A globally pooled classifier is told only "this page shows an MI". A 1D network on the same signals, whose
channels are the leads, reaches 0.99 (scripts/signal_ceiling.py); the image model has to find out for itself
that a trace's position names its lead and that an infarct shows in some leads and not others. The renderer
knows every lead's box, so each cell of the stride-16 feature map gets a target: the share of the cell each
lead covers (12 channels, the rhythm strip counts as lead II), and, for the findings, the share covered by
leads that show them: local findings (an MI's territory, an ST depression's or T inversion's wall) only
where those leads are, global ones (AF, a bundle branch block, LVH, ...) on every lead. A 1x1 head on that
map learns it beside the labels and is never saved: export and the runtime see the plain model.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edgeecg import LEADS
from edgeecg._lazy import require
from edgeecg.preprocess.geometry import warp_matrix
from edgeecg.synth.waveforms import FINDINGS, TERRITORY_LEADS

__all__ = [
    "STRIDE",
    "LOCAL_KINDS",
    "GLOBAL_FINDINGS",
    "map_channels",
    "lead_mask",
    "lead_findings",
    "map_target",
    "with_lead_maps",
]

#: Feature map stride the head reads (timm ConvNeXt stage 2 output).
STRIDE = 16
#: Local findings, each shown only in its territory's / wall's leads: finding-name prefix -> channel.
LOCAL_KINDS: tuple[str, ...] = ("MI acute", "MI old", "ST depression", "T inversion")
#: Findings seen on every lead (rhythm, conduction, voltage, repolarisation everywhere).
GLOBAL_FINDINGS: tuple[str, ...] = tuple(
    f for f in FINDINGS if not (" MI " in f or f.startswith(("ST depression", "T inversion")))
)
_LEAD_INDEX = {name: i for i, name in enumerate(LEADS)}


def map_channels() -> list[str]:
    """Names of the target's channels, in order: the 12 leads, the local kinds, the global findings."""
    return [f"lead {name}" for name in LEADS] + [f"{k} (local)" for k in LOCAL_KINDS] + list(GLOBAL_FINDINGS)


def _where(finding: str) -> tuple[int, tuple[str, ...]]:
    """(channel among the findings' channels, leads showing it) of one finding name."""
    if " MI " in finding:  # "anterior MI acute"
        territory, _, age = finding.split()
        return LOCAL_KINDS.index(f"MI {age}"), TERRITORY_LEADS[territory]
    for j, kind in enumerate(LOCAL_KINDS[2:], start=2):
        if finding.startswith(kind):  # "ST depression lateral"
            return j, TERRITORY_LEADS[finding[len(kind) + 1 :]]
    return len(LOCAL_KINDS) + GLOBAL_FINDINGS.index(finding), tuple(LEADS)


_FINDING_WHERE = [_where(f) for f in FINDINGS]


def lead_findings(row: np.ndarray) -> np.ndarray:
    """float32 [12 leads, len(LOCAL_KINDS) + len(GLOBAL_FINDINGS)]: what each lead shows, from one 0/1
    findings row (FINDINGS order)."""
    out = np.zeros((len(LEADS), len(LOCAL_KINDS) + len(GLOBAL_FINDINGS)), np.float32)
    for k in np.flatnonzero(np.asarray(row) > 0.5):
        j, leads = _FINDING_WHERE[k]
        out[[_LEAD_INDEX[name] for name in leads], j] = 1.0
    return out


def lead_mask(geometry: dict, size_hw: tuple[int, int]) -> np.ndarray | None:
    """uint8 [H, W]: 1 + the lead index where a lead's box lies after the paper is warped to `size_hw`
    (0 elsewhere), or None when the geometry has no lead boxes or paper quadrilateral.

    The boxes are mapped by the matrix `WarpClahe`'s warp uses (`warp_matrix` of the ground-truth quad).
    """

    boxes, quad = geometry.get("lead_boxes"), geometry.get("paper_quad")
    if not boxes or quad is None:
        return None
    h, w = size_hw
    m = warp_matrix(np.asarray(quad, np.float32), size_hw)  # image edges -> output pixel centres
    mask = np.zeros((h, w), np.uint8)
    for name, (x0, y0, x1, y1) in boxes.items():
        lead = "II" if name.endswith("_rhythm") else name
        if lead not in _LEAD_INDEX:
            continue
        corners = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])[None] - 0.5  # edges -> centres
        poly = cv2.perspectiveTransform(corners, m)[0]
        cv2.fillConvexPoly(mask, np.round(poly).astype(np.int32), _LEAD_INDEX[lead] + 1)
    return mask


def map_target(mask: np.ndarray, per_lead: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """float32 [12 + per_lead.shape[1], H // stride, W // stride] from a lead mask and `lead_findings`.

    Each cell holds the share of its pixels each lead covers, and for each finding channel the share covered
    by leads that show it: soft targets where a cell straddles two leads or a lead's edge.
    """
    h, w = mask.shape
    gh, gw = h // stride, w // stride
    cells = mask[: gh * stride, : gw * stride].reshape(gh, stride, gw, stride).transpose(0, 2, 1, 3)
    cells = cells.reshape(gh * gw, stride * stride).astype(np.int64)
    n = len(LEADS) + 1
    # one histogram of mask values per cell: cell c, value v -> bin c * n + v
    counts = np.bincount((cells + n * np.arange(gh * gw)[:, None]).ravel(), minlength=gh * gw * n)
    cover = counts.reshape(gh * gw, n)[:, 1:] / float(stride * stride)  # [cells, 12], background dropped
    found = cover @ per_lead  # [cells, K]
    return np.concatenate([cover, found], axis=1).T.reshape(-1, gh, gw).astype(np.float32)


def with_lead_maps(model: Any, channels: int, stage: int = 2, hidden: int = 64) -> Any:
    """`model` plus a 1x1 head on the output of its `stage` that predicts the lead map (training only).

    Returns:
        A module whose forward gives (the model's logits, the map's logits [B, channels, h, w]); `.model` is
        `model`, the one that is saved and exported.
    """
    torch = require("torch")
    nn = torch.nn
    width = int(model.feature_info[stage]["num_chs"])

    class WithLeadMaps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.stage = stage
            self.map_head = nn.Sequential(
                nn.BatchNorm2d(width), nn.Conv2d(width, hidden, 1), nn.GELU(), nn.Conv2d(hidden, channels, 1)
            )

        def forward(self, x: Any) -> tuple[Any, Any]:
            m = self.model
            x = m.stem(x)
            side = None
            for i, block in enumerate(m.stages):
                x = block(x)
                if i == self.stage:
                    side = self.map_head(x)
            return m.forward_head(m.norm_pre(x)), side

    return WithLeadMaps()
