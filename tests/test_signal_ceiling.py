"""scripts/signal_ceiling.py: what a 3x4 page keeps of a 12-lead record (--page), and the PTB-XL mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeecg import LABELS
from edgeecg.metrics import roc_auc_per_class
from edgeecg.synth.real_records import load_ptbxl_labels, load_record


def test_as_page_keeps_each_lead_in_its_column_and_the_rhythm_strip(load_script):
    sc = load_script("signal_ceiling")
    t = int(10 * sc.FS)
    x = np.zeros((1, 12, t), np.float32)
    x[0, 0] = 1.0  # lead I: only its first 2.5 s column survives
    x[0, 1] = 2.0  # lead II: its column and the whole strip
    x[0, 11, : t // 4] = 5.0  # V6 outside its column (the last one): gone
    page = sc.as_page(x, px_per_s=sc.FS, px_per_mv=0)  # one sample per pixel column, no rounding
    lo, hi = page[0, :13], page[0, 13:]
    assert page.shape == (1, 26, t)
    q = t // 4
    np.testing.assert_array_equal(lo[0, :q], 1.0)
    np.testing.assert_array_equal(lo[0, q:], 0.0)
    np.testing.assert_array_equal(lo[1, :q], 2.0)
    np.testing.assert_array_equal(lo[1, q:], 0.0)
    np.testing.assert_array_equal(lo[12], 2.0)  # the lead II strip, all 10 s
    assert not hi[11].any()
    np.testing.assert_array_equal(lo, hi)


def test_as_page_takes_each_pixel_columns_extremes_in_whole_pixels(load_script):
    sc = load_script("signal_ceiling")
    t = int(10 * sc.FS)
    x = np.zeros((2, 12, t), np.float32)
    x[:, 1] = np.sin(np.arange(t) / 3.0)[None]  # lead II
    page = sc.as_page(x, px_per_s=25.0, px_per_mv=6.0)  # 5 samples per pixel column
    assert page.shape == (2, 26, 250)
    strip_lo, strip_hi = page[0, 12], page[0, 25]
    want_lo = x[0, 1].reshape(250, 5).min(1)
    want_hi = x[0, 1].reshape(250, 5).max(1)
    np.testing.assert_allclose(strip_lo, np.round(want_lo * 6) / 6, atol=1e-6)
    np.testing.assert_allclose(strip_hi, np.round(want_hi * 6) / 6, atol=1e-6)
    assert np.allclose(page * 6, np.round(page * 6), atol=1e-4)  # whole pixels


def test_as_page_honours_the_records_sampling_rate(load_script):
    sc = load_script("signal_ceiling")
    x = np.zeros((1, 12, 1000), np.float32)  # 10 s at 100 Hz, not the simulator's 125 Hz
    x[0, 1] = np.sin(np.arange(1000) / 3.0)
    page = sc.as_page(x, px_per_s=25.0, px_per_mv=0, fs=100.0)  # 4 samples per pixel column
    assert page.shape == (1, 26, 250)
    np.testing.assert_allclose(page[0, 12], x[0, 1].reshape(250, 4).min(1))
    np.testing.assert_allclose(page[0, 25], x[0, 1].reshape(250, 4).max(1))


def test_record_path_prefers_the_file_at_the_wanted_rate(load_script, tmp_path):
    sc = load_script("signal_ceiling")
    row = {
        "ecg_id": "1",
        "filename_lr": "records100/00000/00001_lr",
        "filename_hr": "records500/00000/00001_hr",
    }
    for name in row.values():
        if "/" in name:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            Path(f"{tmp_path / name}.hea").touch()
    assert sc.record_path(tmp_path, row, 100.0) == tmp_path / row["filename_lr"]
    assert sc.record_path(tmp_path, row, 500.0) == tmp_path / row["filename_hr"]
    Path(f"{tmp_path / row['filename_hr']}.hea").unlink()  # this folder's layout: 100 Hz only
    assert sc.record_path(tmp_path, row, 500.0) == tmp_path / row["filename_lr"]
    Path(f"{tmp_path / row['filename_lr']}.hea").unlink()
    with pytest.raises(FileNotFoundError):
        sc.record_path(tmp_path, row, 100.0)


def test_remove_offset_takes_each_traces_median_and_keeps_millivolts(load_script):
    sc = load_script("signal_ceiling")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12, 1000)).astype(np.float32) + rng.normal(0, 5, size=(3, 12, 1))
    out = sc.remove_offset(x)
    np.testing.assert_allclose(np.median(out, -1), 0, atol=1e-5)
    np.testing.assert_allclose(np.diff(out, axis=-1), np.diff(x, axis=-1), atol=1e-5)


# --- PTB-XL mode (skips where ../shared/realdata/ptbxl is absent) ---

PTBXL = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "ptbxl"
# the README's table: records and superclass positives (NORM, MI, AF, HYP, CD, STTC) per split
README_COUNTS = {"train": (2010, 919, 474, 153, 249, 408, 489), "validate": (267, 125, 53, 13, 30, 66, 62)}


@pytest.fixture(scope="module")
def ptbxl() -> Path:
    if not (PTBXL / "ptbxl_database.csv").is_file():
        pytest.skip("../shared/realdata/ptbxl is not present")
    return PTBXL


@pytest.fixture(scope="module")
def sc(load_script):
    return load_script("signal_ceiling")


def test_ptbxl_folds_are_disjoint_by_record_and_patient_and_match_the_readme(sc, ptbxl):
    labels = load_ptbxl_labels(ptbxl / "ptbxl_database.csv", ptbxl / "scp_statements.csv")
    train, val = sc.ptbxl_rows(ptbxl, sc.TRAIN_FOLDS), sc.ptbxl_rows(ptbxl, sc.VALIDATION_FOLDS)
    assert {int(r["strat_fold"]) for r in train} == set(range(1, 9))
    assert {int(r["strat_fold"]) for r in val} == {9}
    assert not {r["ecg_id"] for r in train} & {r["ecg_id"] for r in val}
    assert not {r["patient_id"] for r in train} & {r["patient_id"] for r in val}  # PTB-XL splits by patient
    for split, rows in (("train", train), ("validate", val)):
        ids = [int(float(r["ecg_id"])) for r in rows]
        got = (
            len(rows),
            *(sum(labels[i][k] for i in ids) for k in ("NORM", "MI", "AF", "HYP", "CD", "STTC")),
        )
        assert got == README_COUNTS[split], split


def test_load_ptbxl_reads_the_records_and_their_labels(sc, ptbxl):
    labels = load_ptbxl_labels(ptbxl / "ptbxl_database.csv", ptbxl / "scp_statements.csv")
    rows = sc.ptbxl_rows(ptbxl, sc.VALIDATION_FOLDS)[:3] + sc.ptbxl_rows(ptbxl, [1])[:2]
    x, y = sc.load_ptbxl(ptbxl, rows, fs=100.0)
    assert x.shape == (5, 12, 1000) and x.dtype == np.float32
    assert y.shape == (5, len(LABELS))
    for i, row in enumerate(rows):
        lab = labels[int(row["ecg_id"])]
        assert y[i].tolist() == [lab[k] for k in LABELS]
        rec = load_record(ptbxl / row["filename_lr"], fs=100.0, labels=lab)
        np.testing.assert_array_equal(x[i], rec.signal)
    assert 0.02 < float(np.std(x)) < 2.0  # millivolts, not microvolts or volts
    x500, _ = sc.load_ptbxl(ptbxl, rows[:1], fs=500.0)  # only the 100 Hz files here: resampled up
    assert x500.shape == (1, 12, 5000)


def _covering_rows(sc, ptbxl: Path, n: int) -> list[dict[str, str]]:
    """n training rows with at least two positives and two negatives of every label."""
    labels = load_ptbxl_labels(ptbxl / "ptbxl_database.csv", ptbxl / "scp_statements.csv")
    rows = sc.ptbxl_rows(ptbxl, sc.TRAIN_FOLDS)
    picked: list[dict[str, str]] = []
    for k in (*LABELS, "NORM"):  # NORM records are negatives of every label
        picked += [r for r in rows if labels[int(r["ecg_id"])][k] and r not in picked][:2]
    return (picked + [r for r in rows if r not in picked])[:n]


def test_fit_overfits_sixteen_real_records(sc, ptbxl):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    x, y = sc.load_ptbxl(ptbxl, _covering_rows(sc, ptbxl, 16), fs=100.0)
    x = sc.remove_offset(x)
    assert ((y.sum(0) >= 2) & (y.sum(0) <= 14)).all()
    net, history = sc.fit(x, y, x, y, epochs=40, batch=16, lr=1e-2, seed=0, log=None)
    assert len(history) == 40
    assert history[0]["macro"] < 0.95  # not already separated before it has learnt
    auroc = roc_auc_per_class(y, sc.predict(net, x))
    np.testing.assert_array_equal(auroc, 1.0)


def test_fit_is_deterministic_for_a_seed(sc, ptbxl):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    x, y = sc.load_ptbxl(ptbxl, _covering_rows(sc, ptbxl, 16), fs=100.0)
    x = sc.as_page(sc.remove_offset(x), *sc.page_rates("128x256"), fs=100.0)
    runs = [sc.fit(x, y, x, y, epochs=2, batch=8, crop=0.25, seed=s, log=None)[0] for s in (3, 3, 4)]
    p = [sc.predict(net, x) for net in runs]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])
