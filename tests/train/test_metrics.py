"""edgeecg.metrics against scikit-learn on fixed inputs, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeecg import metrics as M

sk = pytest.importorskip("sklearn.metrics")


def _cases():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    yield y, rng.random(200)  # no ties
    yield y, np.round(rng.random(200), 1)  # many ties
    yield np.array([0, 0, 1, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.9, 0.1, 0.5])  # ties across classes
    yield np.array([1, 0, 1, 0]), np.array([0.2, 0.2, 0.2, 0.2])  # all tied: AUROC 0.5


@pytest.mark.parametrize("case", list(range(4)))
def test_roc_auc_and_curve_match_sklearn(case):
    y, s = list(_cases())[case]
    assert M.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    for drop in (True, False):
        fpr, tpr, thr = M.roc_curve(y, s, drop_intermediate=drop)
        efpr, etpr, ethr = sk.roc_curve(y, s, drop_intermediate=drop)
        np.testing.assert_allclose(fpr, efpr)
        np.testing.assert_allclose(tpr, etpr)
        assert np.isinf(thr[0]) and np.isinf(ethr[0])
        np.testing.assert_allclose(thr[1:], ethr[1:])


def test_macro_auroc_and_threshold_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random((150, 5)) < [0.25, 0.07, 0.12, 0.21, 0.24]).astype(int)
    s = np.clip(y * 0.3 + rng.random((150, 5)) * 0.8, 0, 1).round(2)  # informative, with ties
    assert M.macro_auroc(y, s) == pytest.approx(sk.roc_auc_score(y, s, average="macro"), abs=1e-12)
    thr = np.array([0.3, 0.5, 0.45, 0.6, 0.2])
    tm = M.threshold_metrics(y, s, thr)
    pred = (s >= thr).astype(int)
    for c in range(5):
        assert tm["f1"][c] == pytest.approx(sk.f1_score(y[:, c], pred[:, c], zero_division=0))
        assert tm["sensitivity"][c] == pytest.approx(sk.recall_score(y[:, c], pred[:, c]))
        assert tm["specificity"][c] == pytest.approx(sk.recall_score(1 - y[:, c], 1 - pred[:, c]))


def test_undefined_auroc_is_nan_and_left_out_of_macro():
    y = np.array([[0, 1], [0, 0], [0, 1]])
    s = np.array([[0.1, 0.9], [0.2, 0.1], [0.3, 0.8]])
    per = M.roc_auc_per_class(y, s)
    assert math.isnan(per[0]) and per[1] == 1.0
    assert M.macro_auroc(y, s) == 1.0


def test_youden_threshold_separates_a_separable_class():
    y = np.array([[0], [0], [0], [1], [1]])
    s = np.array([[0.1], [0.2], [0.35], [0.4], [0.9]])
    thr = M.youden_thresholds(y, s)
    assert thr[0] == pytest.approx(0.4)  # the highest threshold with J = 1
    tm = M.threshold_metrics(y, s, thr)
    assert tm["sensitivity"][0] == 1.0 and tm["specificity"][0] == 1.0


def test_ensemble_mean_and_votes():
    p = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.2, 0.45]]])  # [M=3, n=1, C=2]
    np.testing.assert_allclose(M.ensemble_mean(p), [[1.7 / 3, 0.95 / 3]])
    frac, dec = M.ensemble_votes(p, [0.5, 0.4])
    np.testing.assert_allclose(frac, [[2 / 3, 2 / 3]])
    np.testing.assert_array_equal(dec, [[1, 1]])
    _, dec_even = M.ensemble_votes(p[:2], [0.5, 0.4])  # 1 of 2 votes is a tie: negative
    np.testing.assert_array_equal(dec_even, [[1, 0]])
