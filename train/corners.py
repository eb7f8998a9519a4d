"""The corner model (`edgeecg.preprocess.CornerModel`): a small CNN that places the sheet's corners from
the sheet's own content, trained on `edgeecg synth` scenes and their true corners.

Each training sample is a rough quad around a scene's sheet, flattened with a margin by the runtime's own
`corner_page`, and the true corners in that quad's unit square. The rough quads imitate what the chain
hands over: the sheet's visible box, enlarged (what a scan without visible edges leaves), and the true
corners moved by a few percent of the diagonal (keypoints, a side snapped onto the wrong line); some come
turned by 90 or 180 degrees, as a corner order may before the verifier turns the page.

Usage::

    edgeecg-train corners --data build/detector/train_photo build/detector/train_scan ... \\
        --val build/detector/val --out runs/corners

writes OUT/corners.onnx, OUT/corners.json (manifest fields) and OUT/weights.safetensors (+ .json sidecar).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg.errors import UsageError
from edgeecg.preprocess.chain import REFINE_WORK_SIZE
from edgeecg.preprocess.cornermodel import MAX_PASSES, UNIT, corner_page, to_unit
from edgeecg.preprocess.geometry import working_copy
from edgeecg.synth.dataset import parse_size
from edgeecg.train.checkpoint import atomic_write_json
from edgeecg.train.pagemodel import fit_page_model, save_page_model

# Imported inside functions, so they load only when used: optional or heavy libraries (torch, tqdm); modules
# that import this one back (edgeecg.train.detector).

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CornerConfig:
    """Corner model training settings (saved as OUT/corners_config.json).

    Attributes:
        data: synth dataset dirs to train on (geometry.jsonl has the true quads; negatives are skipped).
        val: synth dataset dir (another seed) for model selection.
        out: output directory.
        input_size: (h, w) of the flattened page the model sees.
        expand: margin around the rough quad, as a fraction of its sides.
        per_scene: rough quads drawn per training scene.
        width: channels of the first block (the net doubles them down to 1/32 of the input).
        epochs, batch, lr, weight_decay: optimisation (AdamW, one-cycle schedule).
        seed: everything random (rough quads, init, order).
        threads: torch threads, and threads building the pages.
        device: auto (CUDA where present), cpu or cuda.
        passes: how often the runtime runs the model, each pass from the last one's corners (written to
            corners.json, and from there to the manifest).
    """

    data: tuple[str, ...] = ()
    val: str = ""
    out: str = "runs/corners"
    input_size: tuple[int, int] = (128, 192)
    expand: float = 0.12
    per_scene: int = 4
    width: int = 16
    epochs: int = 12
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    device: str = "auto"
    passes: int = 3


def rough_quads(
    quad: np.ndarray, shape: tuple[int, int], rng: np.random.Generator, n: int
) -> list[np.ndarray]:
    """`n` rough quads around the true `quad` (same corner order), as the chain might hand them over."""
    h, w = shape
    diag = float(np.linalg.norm(quad[2] - quad[0]))
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.35:  # the visible box, enlarged and clipped to the frame: a scan's search region
            lo, hi = np.clip(quad.min(0), 0, [w, h]), np.clip(quad.max(0), 0, [w, h])
            c, s = (lo + hi) / 2, (hi - lo) / 2 * rng.uniform(0.97, 1.12, 2)
            lo = np.clip(c - s + rng.normal(0, 0.01, 2) * diag, 0, [w, h])
            hi = np.clip(c + s + rng.normal(0, 0.01, 2) * diag, 0, [w, h])
            r = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]], np.float32)
            # the box's corner nearest each true corner stands for it
            r = min(
                (np.roll(r, -i, 0) for i in range(4)),
                key=lambda z: float(np.linalg.norm(z - quad, axis=1).sum()),
            )
        else:  # the true corners, scaled and moved a little or more
            c = quad.mean(0)
            noise = rng.normal(0, 0.025 if u < 0.8 else 0.05, (4, 2)) * diag
            r = c + (quad - c) * rng.uniform(0.95, 1.08) + noise
        out.append(r.astype(np.float32))
    return out


def build_set(
    data: str | Path, cfg: CornerConfig, per_scene: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pages uint8 [N, H, W, 3] and targets float32 [N, 8] (true corners in the rough quad's unit square,
    less the unit square's corners) for every ECG scene of an `edgeecg synth` dir."""
    from tqdm import tqdm

    from edgeecg.train.detector import scene_image, scene_rows

    rows = [r for r in scene_rows(data) if r.get("paper_quad") is not None]
    if not rows:
        raise UsageError(f"{data} has no ECG scenes with a paper_quad")
    seeds = np.random.default_rng(seed).integers(1 << 31, size=len(rows))

    def one(i: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        img = scene_image(data, rows[i])
        quad = np.asarray(rows[i]["paper_quad"], np.float32)
        # the runtime makes the model's page from its working copy: so does training
        work, scale = working_copy(img, REFINE_WORK_SIZE)
        rng = np.random.default_rng(int(seeds[i]))
        xs, ys = [], []
        for rough in rough_quads(quad, img.shape[:2], rng, per_scene):
            k = int(rng.choice(4, p=[0.75, 0.05, 0.15, 0.05]))  # a turned corner order
            page, hom = corner_page(work, np.roll(rough * scale, -k, 0), cfg.input_size, cfg.expand)
            xs.append(page)
            ys.append((to_unit(hom, np.roll(quad * scale, -k, 0)) - UNIT).reshape(8))
        return xs, ys

    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    with ThreadPoolExecutor(max(cfg.threads, 1)) as pool:
        bar = tqdm(
            pool.map(one, range(len(rows))), total=len(rows), desc=f"pages {Path(data).name}", disable=None
        )
        for x, y in bar:
            xs += x
            ys += y
    return np.stack(xs), np.stack(ys).astype(np.float32)


def build_net(width: int = 16, input_size: tuple[int, int] = (128, 192)):
    """Five stride-2 double-conv blocks and a linear head over the whole 1/32 map: where things are
    matters, so no global pooling (~0.5 M parameters at width 16)."""
    import torch.nn as nn

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
            nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
        )  # fmt: skip

    h, w = input_size
    if h % 32 or w % 32:
        raise UsageError(f"corner model input {h}x{w}: both sides must be multiples of 32")
    c = [width, 2 * width, 4 * width, 6 * width, 8 * width]
    return nn.Sequential(
        block(3, c[0]), block(c[0], c[1]), block(c[1], c[2]), block(c[2], c[3]), block(c[3], c[4]),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(c[4] * (h // 32) * (w // 32), 8),
    )  # fmt: skip


def corner_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean corner distance per sample in unit-square units ([N, 8] each)."""
    return np.linalg.norm((pred - target).reshape(-1, 4, 2), axis=2).mean(1)


def _predict(net, x: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    net.eval()
    dev = next(net.parameters()).device
    with torch.no_grad():
        out = [
            net(torch.from_numpy(x[i : i + batch]).to(dev).permute(0, 3, 1, 2).float() / 255.0).cpu().numpy()
            for i in range(0, len(x), batch)
        ]
    return np.concatenate(out)


def train(cfg: CornerConfig) -> dict[str, Any]:
    """Build the pages, train, keep the epoch best on the validation set, export ONNX; returns the fields."""
    import torch

    if not cfg.data or not cfg.val:
        raise UsageError("corner model training needs --data and --val")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"corner model device must be auto, cpu or cuda, not {cfg.device!r}")

    if not 1 <= cfg.passes <= MAX_PASSES:
        raise UsageError(f"--passes must be from 1 to {MAX_PASSES}, got {cfg.passes}")
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UsageError("corner model device cuda: this torch sees no CUDA device (use auto or cpu)")
    for d in (*cfg.data, cfg.val):  # refuse before minutes of page building
        if not (Path(d) / "geometry.jsonl").is_file():
            raise UsageError(f"{d} has no geometry.jsonl: not an `edgeecg synth` dataset")
    build_net(cfg.width, cfg.input_size)  # checks the input size
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "corners_config.json", asdict(cfg))
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    parts = [build_set(d, cfg, cfg.per_scene, cfg.seed + i) for i, d in enumerate(cfg.data)]
    x_tr, y_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    del parts
    x_va, y_va = build_set(cfg.val, cfg, cfg.per_scene, cfg.seed + 1000)
    net = build_net(cfg.width, cfg.input_size)
    yt = torch.from_numpy(y_tr)

    def batch_loss(xb: Any, idx: Any, gen: Any) -> Any:
        # exposure: the content, not the brightness, says where the sheet is (drawn on the CPU generator,
        # so a GPU run draws what a CPU run does)
        gain = torch.empty(len(idx), 1, 1, 1).uniform_(0.8, 1.2, generator=gen).to(xb.device)
        shift = torch.empty(len(idx), 1, 1, 1).uniform_(-0.1, 0.1, generator=gen).to(xb.device)
        # offsets are ~0.01-0.1: scaled so that smooth L1 is linear beyond 0.005
        return torch.nn.functional.smooth_l1_loss(
            net(xb * gain + shift) * 10, yt[idx].to(xb.device) * 10, beta=0.05
        )

    def evaluate(net: Any, epoch: int) -> tuple[dict[str, Any], float]:
        err = corner_errors(_predict(net, x_va), y_va)
        row = {
            "epoch": epoch,
            "median_error": float(np.median(err)),
            "within_0.01": float((err <= 0.01).mean()),
        }
        return row, -row["median_error"]

    t0 = time.perf_counter()
    best, history = fit_page_model(
        net, x_tr, lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs, batch=cfg.batch,
        seed=cfg.seed, batch_loss=batch_loss, evaluate=evaluate, desc="corners", drop_last=True,
        device=device,
    )  # fmt: skip
    h, w = cfg.input_size
    fields = {
        "kind": "corner-regressor",
        "input_size": [h, w],
        "expand": cfg.expand,
        "passes": cfg.passes,
        "input": "page",
        "channel_order": "BGR",
        "scale": 255.0,
        "validation": {
            "data": cfg.val,
            **best,
            "unit": "mean corner distance in the rough quad's unit square",
        },
        "data": list(cfg.data),
    }
    fields = save_page_model(
        net, out, "corners", fields, x_va[:16], "offsets", "corner model", {"history": history}
    )
    log.info("corner model trained in %.0f s", time.perf_counter() - t0)
    return {**fields, "history": history}


def main_corners(argv: list[str] | None = None) -> int:
    """`edgeecg-train corners ...`."""
    d = CornerConfig()
    p = argparse.ArgumentParser(prog="edgeecg-train corners", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="synth dataset dirs to train on")
    p.add_argument("--val", required=True, help="synth dataset dir (another seed) for model selection")
    p.add_argument("--out", default=d.out, help=f"output dir (default {d.out})")
    p.add_argument("--input-size", default="128x192", help="HxW of the page the model sees (multiples of 32)")
    p.add_argument(
        "--expand", type=float, default=d.expand, help=f"margin around the rough quad (default {d.expand})"
    )
    p.add_argument(
        "--per-scene", type=int, default=d.per_scene, help=f"rough quads per scene (default {d.per_scene})"
    )
    p.add_argument("--width", type=int, default=d.width, help=f"first block's channels (default {d.width})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed")
    p.add_argument(
        "--passes", type=int, default=d.passes,
        help=f"runs of the model at serving time, each from the last one's corners (default {d.passes})",
    )  # fmt: skip
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"), help="where to train")
    p.add_argument(
        "--threads", type=int, default=d.threads, help=f"torch and page threads (default {d.threads})"
    )
    args = p.parse_args(argv)
    h, w = parse_size(args.input_size, "--input-size", "128x192")
    cfg = CornerConfig(
        data=tuple(args.data), val=args.val, out=args.out, input_size=(h, w), expand=args.expand,
        per_scene=args.per_scene, width=args.width, epochs=args.epochs, seed=args.seed,
        threads=args.threads, device=args.device, passes=args.passes,
    )  # fmt: skip
    res = train(cfg)
    v = res["validation"]
    print(
        f"corner model: {Path(cfg.out) / 'corners.onnx'}; validation median corner error {v['median_error']:.4f} "
        f"of the quad's sides, {v['within_0.01']:.1%} within 0.01 (epoch {v['epoch']})"
    )
    print(json.dumps({"onnx_vs_torch_max_abs": res["onnx_vs_torch_max_abs"]}))
    return 0
