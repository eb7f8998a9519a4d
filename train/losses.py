"""Weighted binary cross-entropy for multi-label training."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeecg._lazy import require

__all__ = ["logit", "pos_weight", "weighted_bce"]


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [1e-7, 1 - 1e-7] so that 0 and 1 stay finite."""
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def pos_weight(labels: np.ndarray, max_weight: float = 100.0) -> np.ndarray:
    """Per-label positive weight = n_neg / n_pos ("inverse positive rate" in its odds form).

    With this weight the positives and negatives of each label contribute equally to the loss
    (n_pos * w = n_neg), which is PyTorch's documented use of `BCEWithLogitsLoss(pos_weight=...)`. We pick
    n_neg / n_pos rather than N / n_pos because the latter also up-weights common labels (a label present
    in half the data would get weight 2 instead of the neutral 1).

    Args:
        labels: 0/1 array [n, C] of the training set.
        max_weight: cap for very rare labels; a label with no positives gets this cap too.

    Returns:
        float32 [C].
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"labels must be [n, C], got {y.shape}")
    n_pos = y.sum(axis=0)
    n_neg = y.shape[0] - n_pos
    with np.errstate(divide="ignore"):
        w = np.where(n_pos > 0, n_neg / np.maximum(n_pos, 1), max_weight)
    return np.clip(w, 0.0, max_weight).astype(np.float32)


def weighted_bce(pos_w: np.ndarray | Any) -> Any:
    """A `torch.nn.BCEWithLogitsLoss` with the given per-label positive weights (mean over all entries)."""
    torch = require("torch")
    return torch.nn.BCEWithLogitsLoss(pos_weight=torch.as_tensor(np.asarray(pos_w), dtype=torch.float32))
