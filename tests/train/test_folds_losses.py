"""pos_weight and the multi-label stratified folds."""

from __future__ import annotations

import numpy as np
import pytest

from edgeecg.train.folds import fold_indices, grouped_stratified_folds, iterative_stratified_folds
from edgeecg.train.losses import pos_weight, weighted_bce


def test_pos_weight_is_negatives_over_positives():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    w = pos_weight(y, max_weight=50)
    np.testing.assert_allclose(w, [1 / 3, 3 / 1, 50])  # 1 neg/3 pos; 3 neg/1 pos; no positive: the cap
    assert w.dtype == np.float32


def test_weighted_bce_balances_positive_and_negative_mass():
    torch = pytest.importorskip("torch")
    y = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    loss = weighted_bce(pos_weight(y.numpy()))  # weight 3 for the single positive
    logits = torch.zeros(4, 1)
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    expected = (3 * per[0] + per[1:].sum()) / 4
    assert torch.isclose(loss(logits, y), expected.squeeze())


def test_every_label_in_every_fold_and_balanced():
    rng = np.random.default_rng(1)
    prev = np.array([0.25, 0.07, 0.12, 0.21, 0.24])
    y = (rng.random((120, 5)) < prev).astype(int)
    y[:5, 1] = 1  # AF has at least 5 positives, so 5 folds can each hold one
    folds = iterative_stratified_folds(y, k=5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    for f in range(5):
        tr, va = fold_indices(folds, f)
        assert len(tr) + len(va) == 120 and abs(len(va) - 24) <= 3
        assert (y[va].sum(axis=0) >= 1).all(), f"fold {f} lacks a label: {y[va].sum(axis=0)}"
        # Positive counts per fold stay within 2 of the ideal share.
        assert (np.abs(y[va].sum(axis=0) - y.sum(axis=0) / 5) <= 2).all()


def test_folds_are_deterministic_by_seed():
    y = (np.random.default_rng(2).random((60, 5)) < 0.3).astype(int)
    a = iterative_stratified_folds(y, 3, seed=7)
    assert np.array_equal(a, iterative_stratified_folds(y, 3, seed=7))
    assert not np.array_equal(a, iterative_stratified_folds(y, 3, seed=8))


def test_numeric_overrides_are_coerced():
    from edgeecg.errors import UsageError
    from edgeecg.train.config import load_config

    cfg = load_config(overrides={"lr": "4e-4", "epochs": "3"})
    assert cfg.lr == 4e-4 and isinstance(cfg.lr, float) and cfg.epochs == 3
    with pytest.raises(UsageError, match="config.lr: expected a number"):
        load_config(overrides={"lr": "fast"})


def test_grouped_folds_keep_each_group_whole_and_stay_stratified():
    rng = np.random.default_rng(3)
    n_groups, k_each = 60, 3  # e.g. 60 records, each rendered 3 times
    group_y = (rng.random((n_groups, 5)) < [0.25, 0.1, 0.15, 0.2, 0.25]).astype(int)
    group_y[:5, 1] = 1
    groups = np.repeat([f"record:{i}" for i in range(n_groups)], k_each)
    y = np.repeat(group_y, k_each, axis=0)
    folds = grouped_stratified_folds(y, groups, k=5, seed=0)
    for g in np.unique(groups):
        assert len(set(folds[groups == g].tolist())) == 1, f"{g} is split across folds"
    for f in range(5):
        _, va = fold_indices(folds, f)
        assert (y[va].sum(axis=0) >= k_each).all(), f"fold {f} lacks a label"
    # Ungrouped folds of the same items do split the records: the grouping is what keeps them whole.
    plain = iterative_stratified_folds(y, k=5, seed=0)
    assert any(len(set(plain[groups == g].tolist())) > 1 for g in np.unique(groups))
    # No groups, or one item per group: the plain assignment.
    assert np.array_equal(grouped_stratified_folds(y, None, 5, 0), plain)
    assert np.array_equal(grouped_stratified_folds(y, np.arange(len(y)), 5, 0), plain)


def test_item_groups_by_patient_then_real_record():
    from edgeecg.train.data import item_groups

    rows = [
        {"patient": "7", "record": "34", "source": "ptbxl"},
        {"patient": "", "record": "E07500", "source": "cinc"},
        {"patient": "", "record": "sim", "source": "sim"},
        {},
    ]
    assert item_groups(rows).tolist() == ["patient:7", "record:E07500", "item:2", "item:3"]
    assert item_groups([{"record": "sim", "source": "sim"}, {}]) is None
