"""The epoch loop: AdamW, cosine schedule with warm-up, AMP on CUDA, gradient accumulation, early
stopping on validation macro AUROC, atomic checkpoints every epoch, exact resume, DDP under torchrun.

Output directory of one `fit`:

    config.yaml               resolved config
    last.state.safetensors    resume state (weights, optimiser, scheduler, RNG, early stopping; no pickle)
    last.safetensors/.json    weights of the latest epoch + sidecar
    best.safetensors/.json    weights of the best epoch (highest validation macro AUROC) + sidecar
    history.json              per-epoch train loss, validation loss and AUROC, learning rate
    done.json                 written when the run has finished (epochs exhausted or early stop)

Resuming: `fit` on a directory holding last.state.safetensors continues after the saved epoch. Data
order and augmentation are functions of (seed, epoch); the global RNGs are restored; so the resumed
run ends in exactly the state of an uninterrupted one (on the same device and thread count).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.errors import BundleError
from edgeecg.metrics import macro_auroc, roc_auc_per_class
from edgeecg.sidecar import read_sidecar
from edgeecg.train.checkpoint import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    atomic_write_json,
    load_state,
    save_state,
    save_weights,
    sha256_file,
)
from edgeecg.train.config import TrainConfig, config_to_dict, dump_config
from edgeecg.train.data import FINDINGS, EpochSampler, TrainDataset
from edgeecg.train.leadmaps import map_channels, with_lead_maps
from edgeecg.train.losses import logit, pos_weight, weighted_bce
from edgeecg.train.model import create_model, head_prefix

# Imported inside functions, so they load only when used: optional or heavy libraries (tqdm).

log = logging.getLogger(__name__)

__all__ = [
    "cosine_with_warmup",
    "Dist",
    "FitResult",
    "fit",
    "predict",
    "input_spec",
    "labels_head",
    "seed_everything",
]

STATE_FILE = "last.state.safetensors"


def cosine_with_warmup(
    warmup_steps: int, total_steps: int, num_cycles: float = 0.5
) -> Callable[[int], float]:
    """LR multiplier: linear 0 -> 1 over `warmup_steps`, then cos over `num_cycles` cycles, floored at 0.

    With num_cycles = 0.5 the multiplier falls from 1 to 0 along one half-cosine by `total_steps`. Ours, not
    timm's CosineLRScheduler: that one counts whole cycles (cycle_mul, cycle_limit), not `num_cycles`, and
    a torch LambdaLR keeps the exact resume in the optimizer's own state.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)  # never exactly 0, so the first step moves
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(2.0 * math.pi * num_cycles * progress)))

    return factor


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""

    torch = require("torch")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0

    @staticmethod
    def setup(device_kind: str) -> Dist:
        """Join the process group when torchrun set WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return Dist()
        dist = require("torch.distributed")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        return Dist(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )


def _device(cfg: TrainConfig, dist: Dist) -> Any:
    torch = require("torch")
    if cfg.device == "auto":
        name = f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu"
    else:
        name = cfg.device
    dev = torch.device(name)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def labels_head(model: Any, state: dict[str, Any]) -> dict[str, Any]:
    """`state` with the classifier head cut to the five labels' rows: auxiliary outputs only train, and
    what is saved for stage II, export and evaluation is the five-label model."""
    head = head_prefix(model)
    n = len(LABELS)
    return {
        k: (v[:n] if k in (f"{head}.weight", f"{head}.bias") and v.shape[0] > n else v)
        for k, v in state.items()
    }


def input_spec(cfg: TrainConfig) -> dict[str, Any]:
    """The classifier input as the bundle manifest and export describe it."""
    return {
        "height": cfg.input_height,
        "width": cfg.input_width,
        "channel_order": "RGB",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "layout": "NCHW",
        "dtype": "float32",
    }


def _lineage_step(config: dict[str, Any], fold: int | None, init: dict | None) -> dict[str, Any]:
    """One training run's data, from its config as a dict: stage I's sources, or stage II's target."""
    if fold is None:
        return {"stage": "stage1", "data": config.get("sources"), "init": init}
    return {"stage": "stage2", "data": [config.get("target")], "init": init}


def data_lineage(cfg: TrainConfig, fold: int | None, init: str | Path | None) -> list[dict[str, Any]]:
    """The data that made these weights, oldest step first: the init checkpoint's own lineage (from the
    sidecar beside it) and then this run's data, so a stage II member names its stage I pages as well as
    its photos (a stage II config's `sources` are not what its folds trained on)."""
    steps: list[dict[str, Any]] = []
    ref = None
    if init:
        p = Path(init)
        ref = {"file": str(p.resolve()), "sha256": sha256_file(p) if p.is_file() else None}
        try:
            meta = read_sidecar(p, required=False)  # user-supplied weights (ImageNet) come without one
        except BundleError:
            meta = {}
        steps = list(meta.get("lineage") or [])
        if not steps and meta.get("config"):  # a sidecar from before lineages: its own config's data
            steps = [_lineage_step(meta["config"], meta.get("fold"), None)]
    steps.append(_lineage_step(config_to_dict(cfg), fold, ref))
    return steps


def _sidecar(
    cfg: TrainConfig, epoch: int, metrics: dict, fold: int | None, lineage: list | None = None
) -> dict[str, Any]:
    return {
        "model": cfg.model,
        "model_kwargs": dict(cfg.model_kwargs),
        "input": input_spec(cfg),
        "preprocess": {
            "mode": cfg.preprocess,
            "clahe_clip": cfg.clahe_clip,
            "clahe_tile": cfg.clahe_tile,
            **(
                {
                    "runtime_mode": cfg.runtime_mode,
                    "runtime_corners": cfg.runtime_corners,
                    "runtime_refine": cfg.runtime_refine,
                    "runtime_corner_model": cfg.runtime_corner_model,
                }
                if cfg.preprocess == "edgeecg"
                else {}
            ),
        },
        "fold": fold,
        "epoch": epoch,
        "metrics": metrics,
        "config": config_to_dict(cfg),
        "lineage": lineage or [],
        "output": "logits",
    }


def predict(
    model: Any,
    dataset: TrainDataset,
    batch_size: int,
    device: Any,
    dist: Dist | None = None,
    progress: bool = False,
    desc: str = "predict",
    amp_dtype: Any = None,
) -> np.ndarray:
    """Sigmoid probabilities [n, C] (float64) of every dataset item, in order, without augmentation.

    Under DDP each rank predicts every world-th item and the results are gathered. `amp_dtype` (e.g.
    torch.bfloat16) runs the forward pass under autocast, as training under `amp` does.
    """
    torch = require("torch")
    from tqdm import tqdm

    dist = dist or Dist()
    idx = np.arange(len(dataset))[dist.rank :: dist.world]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, idx.tolist()), batch_size=batch_size, shuffle=False, num_workers=0
    )
    was_training = model.training
    model.eval()
    out = []
    with (
        torch.no_grad(),
        torch.autocast(torch.device(device).type, dtype=amp_dtype, enabled=amp_dtype is not None),
    ):
        for x, _ in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
            logits = model(x.to(device))[:, : len(LABELS)]  # auxiliary outputs (aux_findings) are not scored
            out.append(torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64))
    model.train(was_training)
    probs = np.concatenate(out) if out else np.zeros((0, len(LABELS)))
    if dist.world > 1:
        tdist = require("torch.distributed")
        gathered: list[Any] = [None] * dist.world
        tdist.all_gather_object(gathered, (idx, probs))
        full = np.zeros((len(dataset), probs.shape[1]))
        for i, p in gathered:
            full[i] = p
        probs = full
    return probs


@dataclass
class FitResult:
    """What one `fit` produced."""

    out_dir: Path
    best_score: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict] = field(default_factory=list)


def _score(auroc: float) -> float:
    # An undefined AUROC (a tiny validation set without positives) ranks below any real one.
    return -1.0 if math.isnan(auroc) else auroc


@dataclass
class _Run:
    """Everything one `fit` trains with, built by `_setup` and read by the epoch, validation and checkpoint
    steps: the model (what is scored and saved), the network that trains (the model, or it with the
    lead-map head), the optimiser and friends, and the resumable counters in `state`."""

    cfg: TrainConfig
    out: Path
    fold: int | None
    dist: Any
    device: Any
    fmt: Any
    use_amp: bool
    amp_dtype: Any
    lineage: Any
    model: Any
    net: Any
    train_model: Any
    ema: Any
    saved: Any
    scored: Any
    criterion: Any
    loss_of_batch: Callable[..., Any]
    optimizer: Any
    scheduler: Any
    scaler: Any
    sampler: Any
    loader: Any
    micro_batches: int
    maps: bool
    tag: str
    state: dict[str, Any]


def fit(
    cfg: TrainConfig,
    train_ds: TrainDataset,
    val_ds: TrainDataset,
    out_dir: str | Path,
    init: str | Path | None = None,
    fold: int | None = None,
    source_weights: list[float] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> FitResult:
    """Train one model with early stopping; resumes from `out_dir` when it holds a resume state.

    Args:
        cfg: the resolved config.
        train_ds: training items (with augmentation).
        val_ds: validation items (without).
        out_dir: where checkpoints, history and the config go.
        init: weights to start from (overrides cfg.init_checkpoint); ignored on resume.
        fold: the stage II fold index recorded in sidecars (None in stage I).
        source_weights: per-source mixing weights for weighted sampling (None: uniform permutation).
        on_epoch_end: called with the epoch index after its checkpoint is safely written (tests use it
            to simulate a kill).

    Returns:
        FitResult with the best validation macro AUROC and its epoch.
    """
    run = _setup(cfg, train_ds, Path(out_dir), init, fold, source_weights)
    state = run.state
    for epoch in range(state["epoch"] + 1, cfg.epochs):
        if state["stopped"]:
            break
        t0 = time.perf_counter()
        losses, grad_norms = _train_epoch(run, epoch)
        row, improved = _validate(run, val_ds, epoch)
        row.update(
            train_loss=float(np.mean(losses)) if losses else math.nan,
            lr=float(run.optimizer.param_groups[0]["lr"]),
            seconds=time.perf_counter() - t0,
        )
        if grad_norms:
            row.update(grad_norm_median=float(np.median(grad_norms)), grad_norm_max=float(np.max(grad_norms)))
        state["history"].append(row)
        state["epoch"] = epoch
        _checkpoint(run, row, improved)
        log.info(
            "%s epoch %d: loss %.4f, val loss %.4f, val macro AUROC %.4f%s",
            run.tag,
            epoch,
            row["train_loss"],
            row["val_loss"],
            row["val_macro_auroc"],
            " (best)" if improved else "",
        )
        if run.dist.world > 1:
            require("torch.distributed").barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    if run.dist.main:
        atomic_write_json(
            run.out / "done.json", {k: state[k] for k in ("epoch", "best_score", "best_epoch", "stopped")}
        )
    return FitResult(
        out_dir=run.out,
        best_score=state["best_score"],
        best_epoch=state["best_epoch"],
        epochs_run=state["epoch"] + 1,
        stopped_early=bool(state["stopped"]),
        history=state["history"],
    )


def _setup(
    cfg: TrainConfig,
    train_ds: TrainDataset,
    out: Path,
    init: str | Path | None,
    fold: int | None,
    source_weights: list[float] | None,
) -> _Run:
    """Device, model, loss, optimiser, schedule, sampler and loader for `fit`, resumed from `out` when it
    holds a resume state. Long but linear: each object built once, in the order training needs them."""
    torch = require("torch")
    torch.set_num_threads(cfg.threads)
    dist = Dist.setup(
        "cuda"
        if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    device = _device(cfg, dist)
    use_amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    # float16 with a loss scaler on CUDA; bfloat16 elsewhere (its float32 range needs no scaler)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    if dist.main:
        dump_config(cfg, out / "config.yaml")
    seed_everything(cfg.seed + (fold or 0) * 1000)

    lineage = data_lineage(cfg, fold, init or cfg.init_checkpoint or None)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model, net, criterion, loss_of_batch = _model_and_loss(cfg, train_ds, device, fmt, init)
    maps = net is not model
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # An exponential moving average of the weights is what gets validated and saved when `ema_decay` is on;
    # the resume state holds both (under net. and ema.).
    ema = None
    saved = net
    if cfg.ema_decay > 0:
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        saved = torch.nn.ModuleDict({"net": net, "ema": ema})

    weights = train_ds.item_weights(source_weights) if source_weights else None
    sampler = EpochSampler(
        len(train_ds),
        cfg.samples_per_epoch,
        weights,
        seed=cfg.seed + (fold or 0) * 1000,
        rank=dist.rank,
        world=dist.world,
    )
    micro_batches = math.ceil(len(sampler) / cfg.batch_size)
    steps_per_epoch = math.ceil(micro_batches / cfg.grad_accum)
    total = steps_per_epoch * cfg.epochs
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(warmup, total, cfg.num_cycles)
    )
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None

    state = {
        "epoch": -1,
        "best_score": -math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "stopped": False,
        "history": [],
        "ema_updates": 0,
    }
    if (out / STATE_FILE).is_file():
        state = load_state(out / STATE_FILE, saved, optimizer, scheduler, scaler)
        state.setdefault("ema_updates", 0)
        log.info("resuming %s after epoch %d", out, state["epoch"])
    train_model = net
    if dist.world > 1:
        ddp = require("torch.nn.parallel")
        train_model = ddp.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )

    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=False,
        pin_memory=device.type == "cuda",
        # Workers live across epochs: forking a dozen of them per epoch costs seconds on a GPU machine.
        # Augmentation seeds come with each index (epoch, item), so results do not depend on it.
        persistent_workers=cfg.workers > 0,
    )
    return _Run(
        cfg=cfg,
        out=out,
        fold=fold,
        dist=dist,
        device=device,
        fmt=fmt,
        use_amp=use_amp,
        amp_dtype=amp_dtype,
        lineage=lineage,
        model=model,
        net=net,
        train_model=train_model,
        ema=ema,
        saved=saved,
        scored=ema if ema is not None else model,  # what validation scores and the checkpoints hold
        criterion=criterion,
        loss_of_batch=loss_of_batch,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        sampler=sampler,
        loader=loader,
        micro_batches=micro_batches,
        maps=maps,
        tag=f"fold {fold}" if fold is not None else out.name,
        state=state,
    )


def _model_and_loss(
    cfg: TrainConfig, train_ds: TrainDataset, device: Any, fmt: Any, init: str | Path | None
) -> tuple[Any, Any, Any, Callable[..., Any]]:
    """(model, the network that trains, the label loss, the batch loss): the timm model (with the findings'
    outputs where `aux_findings` is on), the lead-map head around it where the dataset carries lead maps,
    and weighted BCE with pos_weight = negatives / positives."""
    torch = require("torch")
    aux = train_ds.findings is not None and cfg.aux_findings > 0  # lead maps also carry the findings
    maps = bool(getattr(train_ds, "lead_maps", False))
    model = create_model(
        cfg.model,
        num_classes=len(LABELS) + (len(FINDINGS) if aux else 0),
        drop_rate=cfg.drop_rate,
        drop_path_rate=cfg.drop_path_rate,
        checkpoint=(init or cfg.init_checkpoint) or None,
        **cfg.model_kwargs,
    ).to(device)
    model = model.to(memory_format=fmt)
    criterion = weighted_bce(pos_weight(train_ds.labels)).to(device)
    aux_criterion = None
    if aux:
        aux_pw = pos_weight(train_ds.findings) if cfg.aux_balance else np.ones(len(FINDINGS), np.float32)
        aux_criterion = weighted_bce(aux_pw).to(device)

    def loss_of(logits: Any, y: Any) -> Any:
        n = len(LABELS)
        loss = criterion(logits[:, :n], y[:, :n])
        if aux_criterion is not None:
            loss = loss + cfg.aux_findings * aux_criterion(logits[:, n:], y[:, n:])
        return loss

    net = model  # what trains: the model, or the model with the lead-map head (never saved with the weights)
    if maps:
        net = with_lead_maps(model, len(map_channels())).to(device).to(memory_format=fmt)
    map_loss = torch.nn.BCEWithLogitsLoss()

    def loss_of_batch(train_model: Any, x: Any, y: Any, target_map: Any | None, epoch: int) -> Any:
        if target_map is None:
            return loss_of(train_model(x).float(), y)
        logits, side = train_model(x)
        weight = cfg.lead_maps if epoch >= cfg.lead_maps_from else 0.0
        return loss_of(logits.float(), y) + weight * map_loss(side.float(), target_map)

    return model, net, criterion, loss_of_batch


def _train_epoch(run: _Run, epoch: int) -> tuple[list[float], list[float]]:
    """One pass over the sampler's items: (losses, gradient norms). Steps the optimiser every `grad_accum`
    micro-batches, the schedule and the moving average with it."""
    torch = require("torch")
    from tqdm import tqdm

    cfg, device, scaler, optimizer = run.cfg, run.device, run.scaler, run.optimizer
    run.sampler.set_epoch(epoch)
    run.train_model.train()
    losses: list[float] = []
    grad_norms: list[float] = []
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(
        run.loader,
        desc=f"{run.tag} epoch {epoch}",
        disable=not (cfg.progress and run.dist.main),
        leave=False,
        dynamic_ncols=True,
    )
    for i, batch in enumerate(bar):
        x = batch[0].to(device, non_blocking=True).contiguous(memory_format=run.fmt)
        y = batch[1].to(device, non_blocking=True)
        target_map = batch[2].to(device, non_blocking=True) if run.maps else None
        last_micro = (i + 1) % cfg.grad_accum == 0 or i + 1 == run.micro_batches
        no_sync = run.dist.world > 1 and not last_micro
        sync = run.train_model.no_sync() if no_sync else contextlib.nullcontext()
        with sync, torch.autocast(device_type=device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            loss = run.loss_of_batch(run.train_model, x, y, target_map, epoch)
            scaled = loss / cfg.grad_accum
            (scaler.scale(scaled) if scaler else scaled).backward()
        if last_micro:
            if cfg.grad_clip > 0:
                if scaler:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
                norm = torch.nn.utils.clip_grad_norm_(run.train_model.parameters(), cfg.grad_clip)
                grad_norms.append(float(norm))
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            run.scheduler.step()
            if run.ema is not None:
                _ema_update(run.ema, run.model, cfg.ema_decay, run.state["ema_updates"])
                run.state["ema_updates"] += 1
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    return losses, grad_norms


def _validate(run: _Run, val_ds: TrainDataset, epoch: int) -> tuple[dict[str, Any], bool]:
    """Score the validation set; update the early-stopping counters. Returns (history row, improved)."""
    torch = require("torch")
    cfg, state = run.cfg, run.state
    # Validation under the training's autocast too: where bfloat16 pays for training it pays here, and
    # validation only ranks the pages.
    probs = predict(
        run.scored,
        val_ds,
        cfg.eval_batch_size,
        run.device,
        run.dist,
        cfg.progress and run.dist.main,
        f"{run.tag} val",
        amp_dtype=run.amp_dtype if run.use_amp else None,
    )
    y_val = val_ds.labels
    val_loss = float(
        run.criterion(
            torch.from_numpy(logit(probs)).float().to(run.device), torch.from_numpy(y_val).to(run.device)
        )
    )
    aurocs = roc_auc_per_class(y_val, probs)
    auroc = macro_auroc(y_val, probs)
    score = _score(auroc)
    improved = score > state["best_score"]
    if improved:
        state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["stopped"] = state["bad_epochs"] >= cfg.patience
    row = {
        "epoch": epoch,
        "train_loss": math.nan,
        "val_loss": val_loss,
        "val_macro_auroc": auroc,
        "val_auroc": dict(zip(LABELS, aurocs.tolist(), strict=True)),
    }
    return row, improved


def _checkpoint(run: _Run, row: dict[str, Any], improved: bool) -> None:
    """Write best (when improved), the resume state (the commit point) and last, and the history."""
    if not run.dist.main:
        return
    out, epoch = run.out, row["epoch"]
    metrics = {k: row[k] for k in ("val_macro_auroc", "val_auroc", "val_loss", "train_loss")}
    sd = labels_head(run.scored, run.scored.state_dict())
    if improved:
        save_weights(out / "best.safetensors", sd, _sidecar(run.cfg, epoch, metrics, run.fold, run.lineage))
    # The resume state is the commit point: everything above is redone if we die before it.
    save_state(out / STATE_FILE, run.saved, run.optimizer, run.state, run.scheduler, run.scaler)
    save_weights(out / "last.safetensors", sd, _sidecar(run.cfg, epoch, metrics, run.fold, run.lineage))
    atomic_write_json(out / "history.json", run.state["history"])


def _ema_update(ema: Any, model: Any, decay: float, updates: int) -> None:
    """One step of the weights' moving average; the decay ramps up over the first updates (as in
    TensorFlow's ExponentialMovingAverage) so the average does not start out as mostly random init.
    Ours, not timm's ModelEmaV3: that one ramps the decay by another law and by default averages the BatchNorm
    statistics, which are averages already; either would change the recipe the model card reports."""
    torch = require("torch")
    d = min(decay, (1 + updates) / (10 + updates))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(ema.buffers(), model.buffers(), strict=True):
            e.copy_(b)  # BatchNorm's running statistics are averages already
