"""Evaluation of a training run: per-fold and pooled out-of-fold metrics, and the fold ensemble on a test
set (mean probability for AUROC, hard votes as in the method), ROC-curve PNGs and a JSON report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS
from edgeecg.errors import UsageError
from edgeecg.metrics import classification_report, ensemble_mean, ensemble_votes
from edgeecg.plots import plot_roc
from edgeecg.sidecar import read_json_object
from edgeecg.train.checkpoint import atomic_write_json

# Imported inside functions, so they load only when used: edgeecg.train.loop and edgeecg.train.stages
# (PyYAML, torch, albumentations).

log = logging.getLogger(__name__)

__all__ = ["plot_roc", "oof_report", "ensemble_report", "read_thresholds"]


def read_thresholds(path: str | Path) -> np.ndarray:
    """Thresholds [5] from a thresholds.json written by stage II."""
    data = read_json_object(path, UsageError)
    if list(data.get("labels", LABELS)) != list(LABELS):
        raise UsageError(f"{path}: labels {data.get('labels')} differ from {list(LABELS)}")
    return np.asarray(data["thresholds"], dtype=np.float64)


def oof_report(stage2_dir: str | Path) -> dict[str, Any]:
    """Report on stage II's out-of-fold predictions: each fold alone and all pooled, at the OOF thresholds.

    Writes STAGE2/report.json and STAGE2/roc_oof_{label}.png.
    """
    out = Path(stage2_dir)
    with np.load(out / "oof.npz") as z:
        probs, labels, fold = z["probs"], z["labels"], z["fold"]
    thr = read_thresholds(out / "thresholds.json")
    report = {
        "kind": "out-of-fold",
        "thresholds": {"values": thr.tolist(), "method": "youden_j on out-of-fold predictions"},
        "pooled": classification_report(labels, probs, thr, LABELS),
        "folds": {
            str(f): classification_report(labels[fold == f], probs[fold == f], thr, LABELS)
            for f in np.unique(fold)
        },
    }
    aucs = [r["macro_auroc"] for r in report["folds"].values() if r["macro_auroc"] is not None]
    report["fold_macro_auroc_mean"] = float(np.mean(aucs)) if aucs else None
    plot_roc(labels, probs, out, prefix="roc_oof", title="out-of-fold")
    atomic_write_json(out / "report.json", report)
    return report


def ensemble_report(
    members: list[str | Path],
    dataset: Any,
    thresholds: np.ndarray,
    out_dir: str | Path,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate each member and the ensemble on a labelled dataset (a TrainDataset without augmentation).

    The ensemble's AUROC comes from the mean of member probabilities; its sensitivity, specificity and
    F1 are given both for the mean probability at the thresholds and for hard majority votes.
    Writes OUT/report.json, OUT/predictions.npz and OUT/roc_ensemble_{label}.png.
    """
    from edgeecg.train.loop import predict
    from edgeecg.train.stages import load_trained

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not members:
        raise UsageError("no ensemble members to evaluate")
    y = dataset.labels
    probs = []
    report: dict[str, Any] = {"kind": "test", "n": int(len(y)), "members": {}}
    for m in members:
        model = load_trained(m, device)
        p = predict(model, dataset, batch_size, device, progress=progress, desc=Path(m).stem)
        probs.append(p)
        report["members"][str(m)] = classification_report(y, p, thresholds, LABELS)
    stack = np.stack(probs)  # [M, n, 5]
    mean = ensemble_mean(stack)
    _, decision = ensemble_votes(stack, thresholds)
    report["ensemble_mean"] = classification_report(y, mean, thresholds, LABELS)
    report["ensemble_votes"] = classification_report(y, mean, thresholds, LABELS, decisions=decision)
    report["thresholds"] = thresholds.tolist()
    np.savez(out / "predictions.npz", labels=y, member_probs=stack, mean=mean, votes=decision)
    plot_roc(y, mean, out, prefix="roc_ensemble", title="ensemble")
    atomic_write_json(out / "report.json", report)
    return report
