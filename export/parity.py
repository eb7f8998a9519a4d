"""Parity figures between a reference (ONNX Runtime FP32) and a faster variant (FP16 ONNX, TensorRT plans).

Per comparison:
- the max abs difference of ensemble probabilities (always gated, by `MAX_ABS_PROB_DIFF`);
- the change of macro AUROC, as measured (reported);
- the pairs the variant reorders: a positive/negative pair counts only when the reference separates it by
  more than the probability tolerance, so near-ties that any kernel change may swap are not counted. Their
  share of each class's pairs (a flip counts 1, a new tie 1/2, as AUROC counts them) averaged over the
  classes is `reordered_auroc_change`: the AUROC the variant loses to real reorderings.

AUROC gates only on a sample large enough that one pair is worth well under the limit (`auroc_gated`);
on fewer samples the figures are reported and not gated, since one near-tie pair would decide the verdict.

AUROC needs labels: with a labelled sample set we use them; without, each class is split at the median of
the reference probabilities ("fp32-median-split"), which measures how many rankings the variant flips.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeecg import LABELS
from edgeecg.errors import EdgeECGError, UsageError
from edgeecg.export.onnx_export import check_inputs, manifest_batch
from edgeecg.metrics import macro_auroc

log = logging.getLogger(__name__)

#: Limits from the export spec.
MAX_ABS_PROB_DIFF = 1e-2
MAX_AUROC_CHANGE = 0.002
#: AUROC gates only where one reordered pair moves macro AUROC by at most MAX_AUROC_CHANGE / this: on 16
#: median-split samples one pair is worth 1/64/5 = 0.0031, over the limit by itself; on 256 it is 1.2e-5.
PAIRS_PER_LIMIT = 10
#: Pages the checks use by default: enough that the AUROC gate applies (and means something) on every class.
PARITY_SAMPLES = 256


def _macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float:

    return float(macro_auroc(labels, scores))


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def reordered_pairs(
    labels: np.ndarray, ref: np.ndarray, test: np.ndarray, tol: float = MAX_ABS_PROB_DIFF
) -> tuple[np.ndarray, np.ndarray]:
    """Per class: the positive/negative pairs `test` reorders among those `ref` separates by more than `tol`.

    Args:
        labels: 0/1 [N, C].
        ref, test: scores [N, C].
        tol: a pair whose reference scores differ by `tol` or less is a near-tie, never counted.

    Returns:
        (reordered [C], pairs [C]): reordered counts a flip as 1 and a new tie as 0.5 (AUROC's weights);
        pairs is the number of positive/negative pairs of each class (0 where a class lacks either).
    """
    labels = np.asarray(labels).astype(bool)
    ref = np.asarray(ref, np.float64)
    test = np.asarray(test, np.float64)
    reordered = np.zeros(labels.shape[1])
    pairs = np.zeros(labels.shape[1], np.int64)
    for c in range(labels.shape[1]):
        pos, neg = labels[:, c], ~labels[:, c]
        pairs[c] = int(pos.sum()) * int(neg.sum())
        if not pairs[c]:
            continue
        # [P, N]: reference and variant margins of every positive over every negative
        ref_m = ref[pos, c][:, None] - ref[neg, c][None, :]
        test_m = test[pos, c][:, None] - test[neg, c][None, :]
        clear = np.abs(ref_m) > tol
        flips = clear & (np.sign(test_m) == -np.sign(ref_m))
        ties = clear & (test_m == 0)
        reordered[c] = flips.sum() + 0.5 * ties.sum()
    return reordered, pairs


def prob_parity(
    ref: np.ndarray,
    test: np.ndarray,
    labels: np.ndarray | None = None,
    tol: float = MAX_ABS_PROB_DIFF,
    max_auroc: float = MAX_AUROC_CHANGE,
) -> dict[str, Any]:
    """Compare probabilities [N, C] of a variant against the reference.

    Args:
        ref: reference probabilities (ONNX Runtime FP32).
        test: the variant's probabilities.
        labels: 0/1 [N, C] ground truth, or None to split each class at the reference median.
        tol: probability tolerance: reference pairs closer than this are near-ties, not counted as reordered.
        max_auroc: the AUROC limit the sample size is judged against (see `PAIRS_PER_LIMIT`).

    Returns:
        {"samples", "max_abs_prob_diff", "macro_auroc_ref", "macro_auroc", "auroc_change",
        "reordered_pairs", "reordered_auroc_change", "pair_weight", "auroc_gated", "labels"}; AUROC figures
        are None where no class has both positives and negatives. `pair_weight` is what one pair of the
        sparsest class moves macro AUROC by; `auroc_gated` says whether the sample is large enough to gate.
    """
    ref = np.asarray(ref, np.float64)
    test = np.asarray(test, np.float64)
    if ref.shape != test.shape:
        raise EdgeECGError(f"parity: shapes differ {ref.shape} vs {test.shape}")
    source = "dataset"
    if labels is None:
        labels = (ref > np.median(ref, axis=0, keepdims=True)).astype(np.int64)
        source = "fp32-median-split"
    auc_ref = _macro_auroc(labels, ref)
    auc = _macro_auroc(labels, test)
    change = abs(auc - auc_ref) if math.isfinite(auc) and math.isfinite(auc_ref) else float("nan")
    reordered, pairs = reordered_pairs(labels, ref, test, tol)
    defined = pairs > 0
    n_defined = int(defined.sum())
    if n_defined:
        reordered_change = float(np.mean(reordered[defined] / pairs[defined]))
        pair_weight = float(1.0 / (pairs[defined].min() * n_defined))
    else:
        reordered_change = pair_weight = float("nan")
    return {
        "samples": int(ref.shape[0]),
        "max_abs_prob_diff": float(np.abs(ref - test).max()),
        "macro_auroc_ref": _finite(auc_ref),
        "macro_auroc": _finite(auc),
        "auroc_change": _finite(change),
        "reordered_pairs": float(reordered.sum()),
        "reordered_auroc_change": _finite(reordered_change),
        "pair_weight": _finite(pair_weight),
        "auroc_gated": bool(n_defined and pair_weight <= max_auroc / PAIRS_PER_LIMIT),
        "labels": source,
    }


def check_parity(
    figures: dict[str, Any],
    what: str,
    max_abs: float = MAX_ABS_PROB_DIFF,
    max_auroc: float = MAX_AUROC_CHANGE,
) -> None:
    """Raise EdgeECGError when `figures` (from `prob_parity`) break the limits.

    The probability limit always applies. The AUROC limit applies to the AUROC change of the reordered pairs,
    and only where `figures["auroc_gated"]` says the sample is large enough to measure it.
    """
    if figures["max_abs_prob_diff"] > max_abs:
        raise EdgeECGError(
            f"{what}: max abs probability difference {figures['max_abs_prob_diff']:.2e} exceeds {max_abs:.0e}"
        )
    if not figures.get("auroc_gated"):
        return
    change = figures.get("reordered_auroc_change")
    if change is not None and change > max_auroc:
        raise EdgeECGError(
            f"{what}: reordered pairs change macro AUROC by {change:.4f} (> {max_auroc}; "
            f"{figures['reordered_pairs']:g} pairs over {figures['samples']} samples)"
        )


def auroc_verdict(figures: dict[str, Any]) -> str:
    """One phrase for people: the AUROC figures and whether they were gated."""
    measured = figures.get("auroc_change")
    text = f"AUROC change {measured:.4f}" if isinstance(measured, float) else "AUROC change n/a"
    if "auroc_gated" not in figures:
        return text
    reordered = figures.get("reordered_auroc_change")
    if figures["auroc_gated"] and isinstance(reordered, float):
        return f"{text}, {figures['reordered_pairs']:g} pairs reordered ({reordered:.4f})"
    return f"{text} (not gated: {figures['samples']} samples are too few for the AUROC limit)"


def sample_set(
    input_cfg: dict[str, Any], n: int = PARITY_SAMPLES, data_dir: str | Path | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs for parity checks: up to `n` images of a labelled dataset dir, else ECG-like pages and noise.

    Dataset images are resized straight to the model input (no paper detection): parity compares two
    runtimes on the same tensors, so any realistic tensors will do.

    Returns:
        (batch float32 [N, 3, H, W], labels [N, C] or None).
    """

    if data_dir is None:
        return check_inputs(input_cfg, n_random=n // 4, n_ecg=n - n // 4, seed=seed), None
    data_dir = Path(data_dir)
    csv_path = data_dir / "labels.csv"
    if not csv_path.is_file():
        raise UsageError(
            f"{data_dir} has no labels.csv (an image column and the columns {', '.join(LABELS)})"
        )
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:n]
    images, labels = [], []
    for row in rows:
        img = cv2.imread(str(data_dir / row["image"]), cv2.IMREAD_COLOR)
        if img is None:
            raise UsageError(f"cannot read {data_dir / row['image']}")
        images.append(img)
        labels.append([int(row[k]) for k in LABELS])
    if not images:
        raise UsageError(f"{csv_path} lists no images")
    return manifest_batch(images, input_cfg), np.asarray(labels, np.int64)


#: Largest detector output change a plan may show against ONNX Runtime, relative to the outputs' range: the
#: detector runs in FP32, so anything beyond kernel-order rounding is a broken plan.
DETECTOR_PARITY_REL = 1e-2


def check_detector_parity(diff: float, reference: dict[str, np.ndarray], what: str) -> None:
    """Raise EdgeECGError when the detector plan's outputs stray beyond DETECTOR_PARITY_REL of their range."""
    scale = max(1.0, max(float(np.abs(v).max()) for v in reference.values()))
    if diff > DETECTOR_PARITY_REL * scale:
        raise EdgeECGError(
            f"{what} differs from ONNX Runtime by {diff:.3g} (allowed {DETECTOR_PARITY_REL * scale:.3g}); "
            "the plan is not written into the manifest"
        )
