"""What a stage I model's stride-16 features read, lead by lead: AUROC of its lead-map head on a synthetic set.

    python scripts/lead_map_report.py STATE DATASET [--config CFG] [--limit N] [--json OUT]

STATE is the resume file of a stage I run trained with `lead_maps` > 0 (RUN/stage1/last.state.safetensors:
it holds the map head, which the saved checkpoints leave out). DATASET is an `edgeecg synth` directory with
geometry and findings, made with a seed the run did not train on. CFG defaults to the run's own config.yaml
beside STATE. Pages are flattened by their ground-truth quadrilateral, without augmentation. For every channel
of the map (the 12 leads, the local findings, the global ones) it prints the AUROC of the head's output on the
cells that lie inside lead boxes (covered > 90% by leads) against the target (the cell's share > 0.5): which
lead is where, and whether each lead's ST depression, T inversion, Q waves, PR interval ... can be read there.
`--json` writes {channel: {"positives": n, "auroc": x}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeecg import LEADS  # noqa: E402
from edgeecg.errors import EdgeECGError, UsageError  # noqa: E402
from edgeecg.metrics import roc_auc  # noqa: E402


def read_maps(state: Path, dataset: Path, config: Path | None = None, limit: int = 0) -> dict[str, dict]:
    """{channel: {"positives": cells, "auroc": AUROC or NaN}} of the map head in `state` on `dataset`.

    Raises:
        UsageError: a state without a map head, or a dataset without lead boxes or findings.
    """
    import torch  # noqa: PLC0415

    from edgeecg.export.checkpoints import read_tensors  # noqa: PLC0415
    from edgeecg.train.config import DataConfig, load_config  # noqa: PLC0415
    from edgeecg.train.data import ImageFolderSource  # noqa: PLC0415
    from edgeecg.train.leadmaps import map_channels, with_lead_maps  # noqa: PLC0415
    from edgeecg.train.model import create_model  # noqa: PLC0415
    from edgeecg.train.stages import datasets_for  # noqa: PLC0415

    cfg_path = config or state.parent / "config.yaml"
    if not cfg_path.is_file():
        raise UsageError(f"no config at {cfg_path} (name one with --config)")
    still = {
        "rotate_p": 0.0,
        "perspective_p": 0.0,
        "brightness_contrast_p": 0.0,
        "shadow_p": 0.0,
        "elastic_p": 0.0,
    }
    cfg = load_config(cfg_path, {"lead_maps": 1.0, "preprocess": "warp_clahe", "augment": still})
    tensors, _ = read_tensors(Path(state))
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    if weights and all(k.startswith(("net.", "ema.")) for k in weights):  # a run with ema_decay
        weights = {k[4:]: v for k, v in weights.items() if k.startswith("net.")}
    if not any(k.startswith("map_head.") for k in weights):
        raise UsageError(f"{state} holds no lead-map head: train stage I with --set lead_maps=1")
    model = create_model(cfg.model, num_classes=weights["model.head.fc.weight"].shape[0], **cfg.model_kwargs)
    net = with_lead_maps(model, len(map_channels()))
    net.load_state_dict(weights)
    net.eval()

    src = ImageFolderSource(DataConfig(path=str(dataset)))
    if src.findings is None or not src.geometry:
        raise UsageError(f"{dataset} needs edgeecg synth's findings column and geometry.jsonl")
    ds = datasets_for(cfg, [src])
    n = min(len(ds), limit) if limit > 0 else len(ds)
    preds, targets = [], []
    with torch.no_grad():
        for i in range(n):
            x, _, target = ds[(i, 0)]
            side = net(x[None])[1][0]
            preds.append(torch.sigmoid(side).numpy().reshape(len(target), -1).T)
            targets.append(target.numpy().reshape(len(target), -1).T)
    p, t = np.concatenate(preds), np.concatenate(targets)  # [cells, channels]
    inside = t[:, : len(LEADS)].sum(axis=1) > 0.9
    out = {}
    for c, name in enumerate(map_channels()):
        y = (t[inside, c] > 0.5).astype(np.float64)
        out[name] = {"positives": int(y.sum()), "auroc": float(roc_auc(y, p[inside, c]))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("state", type=Path, help="RUN/stage1/last.state.safetensors of a lead_maps run")
    ap.add_argument("dataset", type=Path, help="an edgeecg synth directory (geometry and findings)")
    ap.add_argument("--config", type=Path, default=None, help="the run's config (default: beside STATE)")
    ap.add_argument("--limit", type=int, default=0, help="first N pages only (0: all)")
    ap.add_argument("--json", type=Path, default=None, help="write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        if not args.state.is_file():
            raise UsageError(f"no state file {args.state}")
        table = read_maps(args.state, args.dataset, args.config, args.limit)
    except EdgeECGError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, row in table.items():
        print(f"{name:24s} positive cells {row['positives']:6d}  AUROC {row['auroc']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
