"""Stratified k-fold splits for multi-label data (iterative stratification, Sechidis et al., ECML 2011).

Plain stratification cannot handle 2^5 label combinations on small data; iterative stratification
assigns the rarest label's samples first, each to the fold that still most wants that label, so every
fold keeps close to the overall positive rate of every label. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["iterative_stratified_folds", "grouped_stratified_folds", "fold_indices"]


def iterative_stratified_folds(labels: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Assign each sample to one of `k` folds, stratified over all label columns.

    Args:
        labels: 0/1 array [n, C].
        k: number of folds (2 <= k <= n).
        seed: random seed for tie-breaking; the same inputs and seed give the same folds.

    Returns:
        int64 array [n] with the fold (0..k-1) of each sample. Every label with at least k positives
        appears in every fold; fold sizes differ by at most a few samples.
    """
    y = np.asarray(labels).astype(bool)
    if y.ndim != 2:
        raise ValueError(f"labels must be [n, C], got shape {y.shape}")
    n, n_labels = y.shape
    if not 2 <= k <= n:
        raise ValueError(f"need 2 <= k <= n samples, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    fold = np.full(n, -1, dtype=np.int64)
    # Desired remaining samples per fold, overall and per label (equal fold proportions 1/k).
    want = np.full(k, n / k)
    want_label = np.tile(y.sum(axis=0) / k, (k, 1))  # [k, C]
    remaining = y.copy()
    while remaining.any():
        counts = remaining.sum(axis=0).astype(np.float64)
        counts[counts == 0] = np.inf
        rarest = np.flatnonzero(counts == counts.min())
        label = int(rng.choice(rarest))
        members = np.flatnonzero(remaining[:, label])
        rng.shuffle(members)
        for i in members:
            # Fold that wants this label most; ties by overall want; then at random.
            wl = want_label[:, label]
            cand = np.flatnonzero(wl == wl.max())
            if cand.size > 1:
                w = want[cand]
                cand = cand[w == w.max()]
            f = int(rng.choice(cand)) if cand.size > 1 else int(cand[0])
            fold[i] = f
            want[f] -= 1
            want_label[f] -= y[i]
            remaining[i] = False
    # Samples without any positive label: fill the folds that still want most samples.
    for i in rng.permutation(np.flatnonzero(fold < 0)):
        cand = np.flatnonzero(want == want.max())
        f = int(rng.choice(cand)) if cand.size > 1 else int(cand[0])
        fold[i] = f
        want[f] -= 1
    return fold


def fold_indices(folds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) for fold `k` of a fold assignment."""
    folds = np.asarray(folds)
    return np.flatnonzero(folds != k), np.flatnonzero(folds == k)


def grouped_stratified_folds(
    labels: np.ndarray, groups: np.ndarray | None, k: int = 5, seed: int = 0
) -> np.ndarray:
    """Stratified folds that keep every group (a record's images, a patient's records) in one fold.

    The groups are stratified by their labels (any member positive), then each item takes its group's fold.

    Args:
        labels: 0/1 array [n, C].
        groups: [n] group keys (any hashable strings or numbers), or None: every item its own group.
        k: number of folds (2 <= k <= number of groups).
        seed: random seed for tie-breaking.

    Returns:
        int64 array [n] with the fold (0..k-1) of each item.
    """
    y = np.asarray(labels).astype(bool)
    if groups is None:
        return iterative_stratified_folds(y, k, seed)
    keys, inverse = np.unique(np.asarray(groups), return_inverse=True)
    if keys.size == y.shape[0]:
        return iterative_stratified_folds(y, k, seed)
    group_labels = np.zeros((keys.size, y.shape[1]), dtype=bool)
    np.logical_or.at(group_labels, inverse, y)  # a group is positive where any of its items is
    return iterative_stratified_folds(group_labels, k, seed)[inverse]
