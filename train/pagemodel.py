"""Training and saving of the pre-processing chain's small page models (the verifier, the corner model):
one loop and one way to write them, so that the two cannot drift apart.

A page model takes uint8 pages [N, H, W, 3] (BGR, scaled to [0, 1] here) and is trained from random init
with AdamW and a one-cycle schedule; after every epoch a caller-given evaluation ranks it and the best
epoch's weights are kept. It is saved as safetensors, ONNX (checked against torch) and the manifest fields
as JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg.export.onnx_export import export_page_model
from edgeecg.train.checkpoint import atomic_write_json, save_weights

# Imported inside functions, so they load only when used: optional or heavy libraries (torch, tqdm).

log = logging.getLogger(__name__)


def fit_page_model(
    net: Any,
    pages: np.ndarray,
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    batch: int,
    seed: int,
    batch_loss: Callable[[Any, Any, Any], Any],
    evaluate: Callable[[Any, int], tuple[dict[str, Any], Any]],
    desc: str,
    drop_last: bool = False,
    device: str = "cpu",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train `net` on `pages` and leave it with the weights of its best epoch, in eval mode.

    Args:
        net: the torch module.
        pages: uint8 training pages [N, H, W, 3].
        lr, weight_decay: AdamW's; `lr` is also the one-cycle peak (10% warm-up).
        epochs, batch: passes over `pages` and pages per step.
        seed: the shuffling and augmentation generator's seed.
        batch_loss: (float pages [B, 3, H, W] in [0, 1], their indices into `pages`, the generator) -> loss;
            it augments as it likes, drawing from the generator.
        evaluate: (net, epoch from 1) -> (the epoch's row for the history, a rank); the highest rank wins,
            an earlier epoch on a tie.
        desc: the progress bar's label.
        drop_last: skip the last, incomplete batch of every epoch.
        device: where the net trains ("cpu", "cuda"); batches reach `batch_loss` there, the net is handed
            to `evaluate` there, and it is back on the CPU on return.

    Returns:
        The best epoch's row and every epoch's row.
    """
    import torch
    from tqdm import tqdm

    net.to(device)

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = len(pages) // batch if drop_last else int(np.ceil(len(pages) / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(epochs * per_epoch, 1), pct_start=0.1
    )
    gen = torch.Generator().manual_seed(seed)
    best: tuple[dict[str, Any], Any, dict[str, Any]] | None = None  # row, rank, weights
    history = []
    stop = len(pages) - batch + 1 if drop_last else len(pages)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(pages), generator=gen)
        bar = tqdm(range(0, stop, batch), desc=f"{desc} epoch {epoch + 1}", disable=None)
        for i in bar:
            idx = order[i : i + batch]
            xb = torch.from_numpy(pages[idx.numpy()]).to(device).permute(0, 3, 1, 2).float() / 255.0
            loss = batch_loss(xb, idx, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        row, rank = evaluate(net, epoch + 1)
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        if best is None or rank > best[1]:
            best = (row, rank, {k: v.detach().clone() for k, v in net.state_dict().items()})
    if best is None:
        raise ValueError("fit_page_model needs at least one epoch")
    net.load_state_dict(best[2])
    net.to("cpu").eval()
    return best[0], history


def save_page_model(
    net: Any,
    out: Path,
    name: str,
    fields: dict[str, Any],
    pages: np.ndarray,
    output: str,
    what: str,
    weights_meta: dict[str, Any],
) -> dict[str, Any]:
    """Write OUT/weights.safetensors (`fields` plus `weights_meta` in its sidecar), OUT/NAME.onnx (checked
    against torch on `pages`, uint8 [N, H, W, 3]) and OUT/NAME.json: `fields` plus that check's figure,
    which is returned."""

    save_weights(out / "weights.safetensors", net.state_dict(), {**fields, **weights_meta})
    fields = {
        **fields,
        "onnx_vs_torch_max_abs": export_page_model(net, out / f"{name}.onnx", pages, output, what),
    }
    atomic_write_json(out / f"{name}.json", fields)
    return fields
