"""One ONNX graph for the whole ensemble: one "image" input, the members in parallel, mean of their sigmoids.

Five separate engines on five streams rarely overlap on one GPU; one graph with a shared input cuts launches
and copies (docs/design.md section 6). We export a torch module that wraps the members, so the graph is what the
members compute, by construction, and the check against separate members is a real comparison.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg._lazy import require
from edgeecg.errors import EdgeECGError
from edgeecg.export.onnx_export import export_onnx, ort_run

# Imported inside functions, so they load only when used: optional or heavy libraries (timm).

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


def _exact_gelu(act: Any) -> bool:
    """torch's or timm's GELU, erf form (what `grouped_module` rebuilds)."""
    return type(act).__name__ == "GELU" and getattr(act, "approximate", "none") == "none"


def _supports_grouping(m: Any) -> bool:
    """True for a timm ConvNeXt whose every layer is a conv, BatchNorm, GELU or per-channel scale.

    That is the BatchNorm, conv-MLP ConvNeXt of the bundled model; LayerNorm ConvNeXts (the method's
    convnext_base) normalise across channels, which stacking members along the channels would mix.
    """
    torch = require("torch")
    nn = torch.nn
    try:
        from timm.layers import NormMlpClassifierHead
        from timm.models.convnext import ConvNeXt
    except ImportError:
        return False
    if not isinstance(m, ConvNeXt) or not isinstance(m.head, NormMlpClassifierHead):
        return False
    ok = isinstance(m.norm_pre, nn.Identity) and len(m.stem) == 2 and isinstance(m.stem[1], nn.BatchNorm2d)
    ok &= isinstance(m.head.norm, nn.BatchNorm2d) and isinstance(m.head.pre_logits, nn.Identity)
    ok &= getattr(m.head.global_pool, "pool_type", "") == "avg"
    for stage in m.stages:
        down = stage.downsample
        ok &= isinstance(down, nn.Identity) or (
            len(down) == 2 and isinstance(down[0], nn.BatchNorm2d) and isinstance(down[1], nn.Conv2d)
        )
        for b in stage.blocks:
            ok &= bool(b.use_conv_mlp) and isinstance(b.norm, nn.BatchNorm2d) and b.gamma is not None
            ok &= isinstance(b.shortcut, nn.Identity) and _exact_gelu(b.mlp.act)
            ok &= isinstance(b.mlp.norm, nn.Identity)
    return bool(ok)


def grouped_module(members: list[Any]) -> Any | None:
    """The members as ONE network of K-fold width: convolutions grouped by member, the rest concatenated.

    Member k owns channels [k*C, (k+1)*C) of every layer: the stem reads the shared image with the K stems'
    filters side by side; every later conv has K times its groups (block-diagonal weights), BatchNorm and
    layer scale are concatenated, and the K heads become one grouped 1x1 conv. The outputs equal the
    members' to float rounding, with K times fewer operators: at batch 1 on a CPU, where per-operator
    overhead is a large share of a small model's time, that is what makes one graph faster than K.
    Same outputs as `fused_module`; None when the architecture is not supported (`_supports_grouping`).
    """
    torch = require("torch")
    nn = torch.nn
    if len(members) < 2 or not all(_supports_grouping(m) for m in members):
        return None
    k = len(members)

    def conv(mods: list[Any], shared_input: bool = False) -> Any:
        m0 = mods[0]
        c = nn.Conv2d(
            m0.in_channels * (1 if shared_input else k),
            m0.out_channels * k,
            m0.kernel_size,
            m0.stride,
            m0.padding,
            groups=m0.groups * (1 if shared_input else k),
            bias=m0.bias is not None,
        )
        c.weight.data = torch.cat([m.weight.data for m in mods])  # [K*out, in/groups, kh, kw]
        if m0.bias is not None:
            c.bias.data = torch.cat([m.bias.data for m in mods])
        return c

    def bn(mods: list[Any]) -> Any:
        b = nn.BatchNorm2d(mods[0].num_features * k, eps=mods[0].eps)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(b, name).data = torch.cat([getattr(m, name).data for m in mods])
        return b

    class Block(nn.Module):
        def __init__(self, blocks: list[Any]) -> None:
            super().__init__()
            self.conv_dw = conv([b.conv_dw for b in blocks])
            self.norm = bn([b.norm for b in blocks])
            self.fc1 = conv([b.mlp.fc1 for b in blocks])
            self.act = nn.GELU()
            self.fc2 = conv([b.mlp.fc2 for b in blocks])
            self.gamma = nn.Parameter(torch.cat([b.gamma.data for b in blocks]).reshape(1, -1, 1, 1))

        def forward(self, x: Any) -> Any:
            return x + self.fc2(self.act(self.fc1(self.norm(self.conv_dw(x))))) * self.gamma

    class GroupedEnsemble(nn.Module):
        def __init__(self, ms: list[Any]) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                conv([m.stem[0] for m in ms], shared_input=True), bn([m.stem[1] for m in ms])
            )
            layers = []
            for i, stage in enumerate(ms[0].stages):
                if not isinstance(stage.downsample, nn.Identity):
                    layers += [
                        bn([m.stages[i].downsample[0] for m in ms]),
                        conv([m.stages[i].downsample[1] for m in ms]),
                    ]
                layers += [Block([m.stages[i].blocks[j] for m in ms]) for j in range(len(stage.blocks))]
            self.body = nn.Sequential(*layers)
            self.head_norm = bn([m.head.norm for m in ms])
            fcs = [m.head.fc for m in ms]
            self.classes = fcs[0].out_features
            self.fc = nn.Conv2d(fcs[0].in_features * k, self.classes * k, 1, groups=k)
            self.fc.weight.data = torch.cat([f.weight.data for f in fcs])[:, :, None, None]
            self.fc.bias.data = torch.cat([f.bias.data for f in fcs])

        def forward(self, image: Any) -> tuple[Any, Any, Any]:
            x = self.body(self.stem(image))
            x = self.head_norm(x.mean(dim=(2, 3), keepdim=True))  # [N, K*D, 1, 1]
            logits = self.fc(x).reshape(x.shape[0], k, self.classes)  # [N, K*C, 1, 1] -> [N, K, C]
            probs = torch.sigmoid(logits)
            return probs.mean(dim=1), probs, logits

    return GroupedEnsemble(members).eval()


def export_fused(
    members: list[Any], path: str | Path, input_cfg: dict[str, Any], grouped: bool = True
) -> tuple[Path, str]:
    """Export the fused ensemble of torch `members` to `path`; returns it and how it was fused.

    "grouped" (`grouped_module`, where the architecture allows and `grouped` is on) or "parallel" (the
    members side by side in one graph, `fused_module`).
    """

    module = grouped_module(members) if grouped else None
    how = "grouped" if module is not None else "parallel"
    if module is None:
        module = fused_module(members)
    names = [OUTPUTS["mean"], OUTPUTS["members"], OUTPUTS["member_logits"]]
    return export_onnx(module, path, int(input_cfg["height"]), int(input_cfg["width"]), names), how


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
