"""Classification metrics for multi-label ECG outputs, in numpy only (the runtime's `edgeecg eval` uses them).

Conventions:
    * `y_true` is a 0/1 array [n] or [n, C]; `scores` are probabilities (or any monotone score) of the
      same shape. Columns follow `edgeecg.LABELS` unless the caller says otherwise.
    * A prediction is positive when `score >= threshold`.
    * AUROC is undefined when a class has no positives or no negatives: such classes give NaN and macro
      AUROC averages over the defined classes only (NaN when none is defined).

`roc_curve` and `roc_auc` follow scikit-learn's definitions exactly (ties between a positive and a
negative count one half; the curve keeps only the corners, starts at (0, 0) with threshold +inf), so the
numbers we report match what people compute with scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "roc_curve",
    "roc_auc",
    "roc_auc_per_class",
    "macro_auroc",
    "confusion_at",
    "threshold_metrics",
    "youden_thresholds",
    "ensemble_mean",
    "ensemble_votes",
    "classification_report",
]


def _binary(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores differ in length: {y.shape} vs {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y.astype(bool), s


def _clf_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative false/true positives at each distinct score, highest score first."""
    order = np.argsort(-s, kind="mergesort")  # stable, so equal scores keep input order (as sklearn)
    s, y = s[order], y[order]
    # Last index of each run of equal scores: thresholds sit there, so ties move together.
    distinct = np.flatnonzero(np.diff(s))
    ends = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[ends].astype(np.float64)
    fps = (ends + 1) - tps
    return fps, tps, s[ends]


def roc_curve(
    y_true: np.ndarray, scores: np.ndarray, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic of one binary problem.

    Args:
        y_true: 0/1 labels [n].
        scores: scores [n]; higher means more likely positive.
        drop_intermediate: drop points on straight segments (scikit-learn's default).

    Returns:
        (fpr, tpr, thresholds), each [m]; thresholds decrease and start at +inf (the (0, 0) corner).
        fpr (or tpr) is NaN throughout when there are no negatives (or positives).
    """
    y, s = _binary(y_true, scores)
    if y.size == 0:
        raise ValueError("roc_curve needs at least one sample")
    fps, tps, thr = _clf_curve(y, s)
    if drop_intermediate and fps.size > 2:
        # Keep a point only where the curve bends (second difference non-zero), plus both ends.
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps, tps, thr = np.r_[0.0, fps], np.r_[0.0, tps], np.r_[np.inf, thr]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, thr


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of one binary problem (NaN when one class is absent).

    Equals the probability that a random positive outscores a random negative, ties counting one half
    (the Mann-Whitney U statistic), which is what scikit-learn's trapezoidal `roc_auc_score` computes.
    """
    y, s = _binary(y_true, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    fps, tps, _ = _clf_curve(y, s)
    fpr = np.r_[0.0, fps] / n_neg
    tpr = np.r_[0.0, tps] / n_pos
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(-1, 1) if a.ndim == 1 else a  # [n] -> [n, 1]


def roc_auc_per_class(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each column of [n, C] inputs; NaN where a column lacks positives or negatives."""
    y, s = _as_2d(y_true), _as_2d(scores)
    if y.shape != s.shape:
        raise ValueError(f"y_true {y.shape} and scores {s.shape} differ in shape")
    return np.array([roc_auc(y[:, c], s[:, c]) for c in range(y.shape[1])], dtype=np.float64)


def macro_auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Unweighted mean of the per-class AUROCs over the classes where AUROC is defined (NaN if none)."""
    aucs = roc_auc_per_class(y_true, scores)
    ok = ~np.isnan(aucs)
    return float(aucs[ok].mean()) if ok.any() else math.nan


def confusion_at(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tp, fp, tn, fn) of one binary problem with `score >= threshold` as positive."""
    y, s = _binary(y_true, scores)
    p = s >= threshold
    tp = int(np.sum(p & y))
    fp = int(np.sum(p & ~y))
    fn = int(np.sum(~p & y))
    return tp, fp, y.size - tp - fp - fn, fn


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def threshold_metrics(
    y_true: np.ndarray, scores: np.ndarray, thresholds: Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, precision and F1 per class at the given per-class thresholds.

    Args:
        y_true: 0/1 labels [n, C].
        scores: scores [n, C].
        thresholds: one threshold per class [C].

    Returns:
        Dict of float arrays [C]: "sensitivity", "specificity", "precision", "f1" (NaN where undefined;
        F1 is 0 when there are positives but none is found, as scikit-learn's `zero_division=0`), and
        "tp", "fp", "tn", "fn" counts.
    """
    y, s = _as_2d(y_true), _as_2d(scores)
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    if thr.size != y.shape[1]:
        raise ValueError(f"need {y.shape[1]} thresholds, got {thr.size}")
    out: dict[str, list[float]] = {k: [] for k in ("sensitivity", "specificity", "precision", "f1")}
    counts: dict[str, list[int]] = {k: [] for k in ("tp", "fp", "tn", "fn")}
    for c in range(y.shape[1]):
        tp, fp, tn, fn = confusion_at(y[:, c], s[:, c], float(thr[c]))
        out["sensitivity"].append(_ratio(tp, tp + fn))
        out["specificity"].append(_ratio(tn, tn + fp))
        out["precision"].append(_ratio(tp, tp + fp))
        out["f1"].append(_ratio(2 * tp, 2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0)
        for k, v in zip(("tp", "fp", "tn", "fn"), (tp, fp, tn, fn), strict=True):
            counts[k].append(v)
    res = {k: np.array(v, dtype=np.float64) for k, v in out.items()}
    res.update({k: np.array(v, dtype=np.int64) for k, v in counts.items()})
    return res


def youden_thresholds(y_true: np.ndarray, scores: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per-class threshold maximising Youden's J = sensitivity + specificity - 1.

    Meant for out-of-fold predictions: every sample's score comes from a model that never saw it, so the
    threshold is not fitted to training-set overconfidence. Candidates are the observed scores (ROC
    corners); among equal J the highest threshold wins (fewer false alarms). A class whose J cannot be
    computed (one class absent) or whose best J is 0 gets `default`.

    Args:
        y_true: 0/1 labels [n, C].
        scores: scores [n, C].
        default: fallback threshold.

    Returns:
        float64 thresholds [C].
    """
    y, s = _as_2d(y_true), _as_2d(scores)
    out = np.full(y.shape[1], default, dtype=np.float64)
    for c in range(y.shape[1]):
        fpr, tpr, thr = roc_curve(y[:, c], s[:, c])
        j = tpr - fpr
        if np.isnan(j).all():
            continue
        best = int(np.nanargmax(j))  # first maximum = highest threshold, as thresholds decrease
        if j[best] > 0 and np.isfinite(thr[best]):
            out[c] = float(thr[best])
    return out


def ensemble_mean(member_scores: np.ndarray) -> np.ndarray:
    """Mean probability over ensemble members: [M, n, C] -> [n, C]."""
    p = np.asarray(member_scores, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"expected member scores [M, n, C], got shape {p.shape}")
    return p.mean(axis=0)


def ensemble_votes(
    member_scores: np.ndarray, thresholds: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hard voting: each member votes per class with its own threshold test.

    Args:
        member_scores: [M, n, C] probabilities.
        thresholds: [C] (shared by members) or [M, C] (one row per member).

    Returns:
        (vote_fraction [n, C] in [0, 1], decision [n, C] uint8 = strict majority, i.e. more than half of
        the members voted positive; with an even M a tie counts as negative).
    """
    p = np.asarray(member_scores, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"expected member scores [M, n, C], got shape {p.shape}")
    thr = np.asarray(thresholds, dtype=np.float64)
    thr = thr.reshape(1, 1, -1) if thr.ndim == 1 else thr.reshape(thr.shape[0], 1, -1)  # -> [M|1, 1, C]
    votes = (p >= thr).mean(axis=0)
    return votes, (votes > 0.5).astype(np.uint8)


def classification_report(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    decisions: np.ndarray | None = None,
) -> dict:
    """A JSON-ready report: per-class AUROC, macro AUROC and threshold metrics.

    Args:
        y_true: 0/1 labels [n, C].
        scores: probabilities [n, C] (AUROC is computed from these).
        thresholds: per-class thresholds [C] (sensitivity, specificity and F1 are computed at these).
        labels: class names [C].
        decisions: optional 0/1 decisions [n, C] (e.g. hard votes); when given, the threshold metrics
            come from them instead of `scores >= thresholds`.

    Returns:
        {"n": ..., "macro_auroc": ..., "per_class": {label: {auroc, sensitivity, specificity, precision,
        f1, threshold, positives}}} with NaN written as None.
    """
    y, s = _as_2d(y_true), _as_2d(scores)
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    aucs = roc_auc_per_class(y, s)
    if decisions is None:
        tm = threshold_metrics(y, s, thr)
    else:
        tm = threshold_metrics(y, _as_2d(decisions).astype(np.float64), np.full(y.shape[1], 0.5))

    def num(v: float) -> float | None:
        return None if v is None or not math.isfinite(float(v)) else float(v)

    per_class = {}
    for c, name in enumerate(labels):
        per_class[name] = {
            "auroc": num(aucs[c]),
            "sensitivity": num(tm["sensitivity"][c]),
            "specificity": num(tm["specificity"][c]),
            "precision": num(tm["precision"][c]),
            "f1": num(tm["f1"][c]),
            "threshold": num(thr[c]),
            "positives": int(y[:, c].sum()),
        }
    return {"n": int(y.shape[0]), "macro_auroc": num(macro_auroc(y, s)), "per_class": per_class}
