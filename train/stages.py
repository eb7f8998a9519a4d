"""Stage I (domain fine-tuning on mixed sources) and stage II (k-fold fine-tuning on the target set).

Layout under the run directory OUT:

    stage1/                       one `fit` (see edgeecg.train.loop): best.safetensors is stage II's init
    stage2/folds.csv              index,image,fold of every target item (deterministic from the seed)
    stage2/fold{k}/               one `fit` per fold, started from the stage I weights
    stage2/fold{k}/oof.npz        the fold's out-of-fold predictions (index, probs, labels) from best weights
    stage2/oof.npz, oof.csv       all folds merged: every target item exactly once
    stage2/thresholds.json        per-class thresholds, Youden J on the out-of-fold predictions
    stage2/ensemble/fold{k}.safetensors/.json   the members (best weights of each fold) for export
    stage2/report.json, roc_*.png out-of-fold metrics per fold and pooled (edgeecg.train.evaluate)

Folds can run as separate processes (`--fold K`); the merge runs when the last fold's predictions exist.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.errors import UsageError
from edgeecg.metrics import youden_thresholds
from edgeecg.train.augment import build_augment
from edgeecg.train.checkpoint import atomic_write_json, load_weights_file, save_weights
from edgeecg.train.config import TrainConfig, dump_config
from edgeecg.train.data import (
    CachedSource,
    Subset,
    TrainDataset,
    make_preprocess,
    make_source,
    preprocess_key,
)
from edgeecg.train.evaluate import oof_report
from edgeecg.train.folds import fold_indices, grouped_stratified_folds
from edgeecg.train.loop import Dist, FitResult, fit, predict
from edgeecg.train.model import create_model, load_weights

log = logging.getLogger(__name__)

__all__ = ["run_stage1", "run_stage2", "merge_oof", "load_trained", "datasets_for", "open_source"]


def datasets_for(cfg: TrainConfig, sources: list[Any], train_augment: bool = True) -> TrainDataset:
    """A TrainDataset over `sources` with the config's pre-processing (and augmentation if asked).

    A training set (`train_augment`) also carries the simulator's findings when `aux_findings` is on, and
    the lead maps when `lead_maps` is; validation and test sets are scored on the five labels only.

    Raises:
        UsageError: lead maps with a pre-processing other than warp_clahe (the boxes follow its warp).
    """
    size = (cfg.input_height, cfg.input_width)
    aug = build_augment(cfg.augment) if train_augment else None
    maps = train_augment and cfg.lead_maps > 0
    if maps and cfg.preprocess != "warp_clahe":
        raise UsageError(
            f"lead_maps needs preprocess=warp_clahe (the lead boxes follow its ground-truth warp), not "
            f"{cfg.preprocess}: set lead_maps=0 for this stage"
        )
    aux = train_augment and (cfg.aux_findings > 0 or maps)
    return TrainDataset(sources, make_preprocess(cfg), size, aug, findings=aux, lead_maps=maps)


def open_source(cfg: TrainConfig, data_cfg: Any, out_dir: str | Path) -> Any:
    """The source `data_cfg` names, pre-processed once into `cfg.cache_dir` (default OUT/cache) when
    `cfg.cache` is on."""
    src = make_source(data_cfg)
    if not cfg.cache:
        return src
    size = (cfg.input_height, cfg.input_width)
    return CachedSource(
        src,
        make_preprocess(cfg),
        size,
        Path(cfg.cache_dir) if cfg.cache_dir else Path(out_dir) / "cache",
        preprocess_key(cfg),
        cfg.progress,
        # The build runs before training, so it may use the cores training will (OpenCV and ONNX
        # Runtime release the GIL).
        workers=max(cfg.workers, cfg.threads),
    )


def run_stage1(cfg: TrainConfig, out_dir: str | Path, on_epoch_end: Any = None) -> FitResult:
    """Domain fine-tuning on the weighted mix of `cfg.sources`; validation on `cfg.val` or a held-out share.

    Returns:
        The FitResult; OUT/stage1/best.safetensors is the stage II initialisation.
    """
    if not cfg.sources:
        raise UsageError("stage1 needs at least one entry under `sources` in the config")
    out = Path(out_dir) / "stage1"
    sources = [open_source(cfg, s, out_dir) for s in cfg.sources]
    train_parts, val_parts = [], []
    if cfg.val is not None:
        train_parts = sources
        val_parts = [open_source(cfg, cfg.val, out_dir)]
    else:
        if not 0 < cfg.val_fraction < 1:
            raise UsageError("val_fraction must be in (0, 1) when no `val` set is given")
        k = max(2, round(1 / cfg.val_fraction))
        for src in sources:
            # no record's (or patient's) images on both sides
            groups = getattr(src, "groups", None)
            n_groups = len(src) if groups is None else len(np.unique(groups))
            folds = grouped_stratified_folds(src.labels, groups, k=min(k, n_groups), seed=cfg.seed)
            tr, va = fold_indices(folds, 0)
            train_parts.append(Subset(src, tr))
            val_parts.append(Subset(src, va))
    train_ds = datasets_for(cfg, train_parts, train_augment=True)
    val_ds = datasets_for(cfg, val_parts, train_augment=False)
    weights = [s.weight for s in cfg.sources]
    log.info(
        "stage1: %d training and %d validation items from %d source(s)",
        len(train_ds),
        len(val_ds),
        len(sources),
    )
    return fit(cfg, train_ds, val_ds, out, source_weights=weights, on_epoch_end=on_epoch_end)


def load_trained(weights: str | Path, device: Any = "cpu") -> Any:
    """A model rebuilt from a checkpoint written by `fit` (sidecar gives architecture), in eval mode."""
    state, meta = load_weights_file(weights)
    if not meta.get("model"):
        raise UsageError(f"{weights} has no sidecar naming its model")
    model = create_model(meta["model"], **dict(meta.get("model_kwargs") or {}))
    load_weights(model, state, source=str(weights))
    return model.to(device).eval()


def _target_source(cfg: TrainConfig, out_dir: str | Path) -> Any:
    if cfg.target is None:
        raise UsageError("stage2 needs `target` (the dataset for k-fold cross-validation) in the config")
    return open_source(cfg, cfg.target, out_dir)


def run_stage2(
    cfg: TrainConfig,
    out_dir: str | Path,
    init: str | Path | None = None,
    fold: int | None = None,
    on_epoch_end: Any = None,
) -> dict[str, Any]:
    """k-fold fine-tuning on `cfg.target`, each fold from `init` (the stage I best weights).

    Args:
        cfg: resolved config.
        out_dir: the run directory (OUT); results go to OUT/stage2.
        init: initial weights (default: cfg.init_checkpoint, else random init with a warning).
        fold: run only this fold (for parallel processes); None runs every fold not yet done.
        on_epoch_end: passed to `fit`.

    Returns:
        {"folds": {k: FitResult}, "merged": merge summary or None while folds are missing}.
    """
    torch = require("torch")
    out = Path(out_dir) / "stage2"
    target = _target_source(cfg, out_dir)
    k = cfg.folds
    if fold is not None and not 0 <= fold < k:
        raise UsageError(f"--fold must be in 0..{k - 1}, got {fold}")
    if not (init or cfg.init_checkpoint):
        log.warning("stage2 without --init or init_checkpoint: folds start from random weights")
    # grouped by patient or record where the target says them: no ECG's images in two folds
    assign = grouped_stratified_folds(target.labels, getattr(target, "groups", None), k=k, seed=cfg.seed)
    dist = Dist.setup("cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu")
    if dist.main:
        dump_config(cfg, out / "config.yaml")
        _write_folds(out / "folds.csv", target, assign)
    results: dict[int, FitResult] = {}
    for f in [fold] if fold is not None else range(k):
        fdir = out / f"fold{f}"
        tr, va = fold_indices(assign, f)
        train_ds = datasets_for(cfg, [Subset(target, tr)], train_augment=True)
        val_ds = datasets_for(cfg, [Subset(target, va)], train_augment=False)
        log.info("stage2 fold %d: %d training, %d validation items", f, len(tr), len(va))
        results[f] = fit(cfg, train_ds, val_ds, fdir, init=init, fold=f, on_epoch_end=on_epoch_end)
        if dist.main:
            device = "cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu"
            model = load_trained(fdir / "best.safetensors", device)
            probs = predict(
                model, val_ds, cfg.eval_batch_size, device, progress=cfg.progress, desc=f"fold {f} oof"
            )
            np.savez(fdir / "oof.npz", index=va, probs=probs, labels=target.labels[va])
    merged = merge_oof(out, k, target) if dist.main else None
    return {"folds": results, "merged": merged}


def _write_folds(path: Path, target: Any, assign: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = getattr(target, "images", [str(i) for i in range(len(target))])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "image", "fold"])
        w.writerows([i, images[i], int(assign[i])] for i in range(len(assign)))
    tmp.replace(path)


def merge_oof(stage2_dir: str | Path, k: int, target: Any = None) -> dict[str, Any] | None:
    """Merge the folds' out-of-fold predictions, choose thresholds, collect the members, write the report.

    Returns None (and does nothing) while a fold's oof.npz is missing.
    """
    out = Path(stage2_dir)
    parts = [out / f"fold{f}" / "oof.npz" for f in range(k)]
    if not all(p.is_file() for p in parts):
        return None
    idx, probs, labels, folds = [], [], [], []
    for f, p in enumerate(parts):
        with np.load(p) as z:
            idx.append(z["index"])
            probs.append(z["probs"])
            labels.append(z["labels"])
            folds.append(np.full(len(z["index"]), f))
    index, fold = np.concatenate(idx), np.concatenate(folds)
    order = np.argsort(index, kind="stable")
    index, fold = index[order], fold[order]
    p_all, y_all = np.concatenate(probs)[order], np.concatenate(labels)[order]
    if not np.array_equal(index, np.arange(len(index))):
        raise UsageError(f"out-of-fold predictions in {out} do not cover each item exactly once")
    np.savez(out / "oof.npz", index=index, fold=fold, probs=p_all, labels=y_all)
    images = getattr(target, "images", None) if target is not None else None
    with open(out / "oof.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "image", "fold", *LABELS, *(f"p_{c}" for c in LABELS)])
        for i in range(len(index)):
            img = images[index[i]] if images else ""
            w.writerow(
                [int(index[i]), img, int(fold[i]), *y_all[i].astype(int), *(f"{v:.6f}" for v in p_all[i])]
            )
    thr = youden_thresholds(y_all, p_all)
    thresholds = {
        "labels": list(LABELS),
        "thresholds": thr.tolist(),
        "method": "youden_j",
        "source": "out-of-fold predictions of stage II",
        "n": int(len(index)),
    }
    atomic_write_json(out / "thresholds.json", thresholds)
    ens = out / "ensemble"
    for f in range(k):
        state, meta = load_weights_file(out / f"fold{f}" / "best.safetensors")
        meta = {key: v for key, v in meta.items() if key not in ("sha256", "format", "labels", "num_classes")}
        meta["thresholds"] = thresholds
        save_weights(ens / f"fold{f}.safetensors", state, meta)

    report = oof_report(out)
    shutil.copyfile(out / "thresholds.json", ens / "thresholds.json")
    return {"thresholds": thresholds, "report": report}
