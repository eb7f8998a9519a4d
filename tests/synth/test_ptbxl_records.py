"""Real records in with their labels: PTB-XL's CSVs (found beside the records or named), a plain labels CSV,
fold and list selection, every record rendered K times, record/patient/fold kept in labels.csv."""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from edgeecg import LABELS, LEADS
from edgeecg.errors import UsageError
from edgeecg.synth import real_records as R
from edgeecg.synth.dataset import SynthConfig, write_dataset

wfdb = pytest.importorskip("wfdb")

#: ../shared/realdata/ptbxl/README.md's table: positives in folds 1-8 and in fold 9.
TRAIN_POSITIVES = {"NORM": 919, "MI": 474, "AF": 153, "HYP": 249, "CD": 408, "STTC": 489}
VAL_POSITIVES = {"NORM": 125, "MI": 53, "AF": 13, "HYP": 30, "CD": 66, "STTC": 62}


@pytest.fixture(scope="module")
def ptbxl(realdata) -> Path:
    path = realdata / "ptbxl"
    if not (path / "ptbxl_database.csv").is_file():
        pytest.skip("no PTB-XL subset in ../shared/realdata")
    return path


@pytest.fixture(scope="module")
def index(ptbxl) -> list[R.RecordEntry]:
    return R.record_index(ptbxl)


def _positives(entries) -> dict[str, int]:
    return {k: sum(e.labels[k] for e in entries) for k in TRAIN_POSITIVES}


def test_ptbxl_labels_patients_and_folds_found_beside_the_records(index, ptbxl):
    assert len(index) == 2277
    train = R.select_records(index, R.parse_folds("1-8"))
    val = R.select_records(index, R.parse_folds("9"))
    assert (len(train), len(val)) == (2010, 267)
    assert _positives(train) == TRAIN_POSITIVES and _positives(val) == VAL_POSITIVES
    assert all(e.patient and e.source == "ptbxl" and Path(e.path).is_file() for e in index)
    # the same labels as the database's own aggregation, keyed by ecg_id
    db = R.load_ptbxl_labels(ptbxl / "ptbxl_database.csv", ptbxl / "scp_statements.csv")
    assert all(db[int(e.record)] == e.labels for e in index)
    # named explicitly, the database gives the same index
    assert R.record_index(ptbxl, ptbxl / "ptbxl_database.csv") == index


def test_fold_and_list_selection(index, tmp_path):
    assert R.parse_folds("1,3,5-6") == {1, 3, 5, 6}
    for bad in ("", "a-b", "x"):
        with pytest.raises(UsageError, match="folds must look like"):
            R.parse_folds(bad)
    ids = frozenset({index[0].record, Path(index[1].path).stem})  # an ecg_id and a file stem
    assert R.select_records(index, ids=ids) == index[:2]
    with pytest.raises(UsageError, match="no records left"):
        R.select_records(index, folds=frozenset({11}))
    unfolded = [R.RecordEntry("x.hea", "x")]
    with pytest.raises(UsageError, match="needs every record's fold"):
        R.select_records(unfolded, folds=frozenset({1}))


def _write_ptbxl_layout(root: Path) -> np.ndarray:
    """Two records in PTB-XL's layout: 00001 at 500 Hz and 100 Hz, 00002 at 100 Hz only. Returns 00001's
    500 Hz signal [5000, 12] in mV."""
    t = np.arange(5000) / 500.0
    sig500 = np.stack([np.sin(2 * np.pi * (1 + i / 12) * t) * (0.5 + i / 24) for i in range(12)], 1)
    sig100 = R.resample(sig500.T, 500.0, 100.0).T
    names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    for sub, name, fs, sig in (
        ("records500/00000", "00001_hr", 500, sig500),
        ("records100/00000", "00001_lr", 100, sig100),
        ("records100/00000", "00002_lr", 100, sig100),
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=names, p_signal=sig, fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(root / sub))  # fmt: skip
    (root / "scp_statements.csv").write_text(
        ",description,diagnostic,diagnostic_class\nNORM,normal,1.0,NORM\nIMI,inferior MI,1.0,MI\n"
        "AFIB,atrial fibrillation,,\n"
    )
    (root / "ptbxl_database.csv").write_text(
        "ecg_id,patient_id,scp_codes,strat_fold,filename_lr,filename_hr\n"
        "1,10.0,\"{'NORM': 100.0}\",3,records100/00000/00001_lr,records500/00000/00001_hr\n"
        "2,10.0,\"{'IMI': 50.0, 'AFIB': 0.0}\",9,records100/00000/00002_lr,records500/00000/00002_hr\n"
        "3,11.0,\"{'NORM': 100.0}\",1,records100/00000/00003_lr,records500/00000/00003_hr\n"
    )
    return sig500


def test_ptbxl_read_at_500_hz_where_present_else_100(tmp_path):
    sig500 = _write_ptbxl_layout(tmp_path)
    index = R.record_index(tmp_path)  # record 3 has no files: skipped
    assert [(e.record, Path(e.path).name, e.patient, e.fold) for e in index] == [
        ("1", "00001_hr.hea", "10", 3),
        ("2", "00002_lr.hea", "10", 9),
    ]
    assert index[1].labels == {"MI": 1, "AF": 1, "HYP": 0, "CD": 0, "STTC": 0, "NORM": 0}
    hi = R.load_record(index[0].path, labels=index[0].labels)
    lo = R.load_record(index[1].path, labels=index[1].labels)  # the same signal, stored at 100 Hz
    assert hi.signal.shape == lo.signal.shape == (len(LEADS), 5000)
    np.testing.assert_allclose(hi.signal[0], sig500[:, 0], atol=2e-3)
    middle = slice(500, 4500)  # away from the ends, where resampling has no neighbours
    np.testing.assert_allclose(lo.signal[:, middle], hi.signal[:, middle], atol=0.03)


def test_plain_labels_csv(tmp_path):
    _write_ptbxl_layout(tmp_path)
    labels = tmp_path / "mine.csv"
    labels.write_text(
        "record,MI,AF,HYP,CD,STTC,patient,fold\n00001_hr,0,0,1,0,0,p7,2\n00002_lr,1,0,0,0,1,,\n"
    )
    index = R.record_index(tmp_path, labels)
    by_id = {e.record: e for e in index}  # the records the CSV names, in file order; 00001_lr is not named
    assert sorted((e.record, e.patient, e.fold) for e in index) == [
        ("00001_hr", "p7", 2),
        ("00002_lr", "", None),
    ]
    assert by_id["00002_lr"].labels == {"MI": 1, "AF": 0, "HYP": 0, "CD": 0, "STTC": 1, "NORM": 0}
    labels.write_text("record,MI,AF\n00001_hr,0,0\n")
    with pytest.raises(UsageError, match="missing column"):
        R.record_index(tmp_path, labels)
    with pytest.raises(UsageError, match="not a file"):
        R.record_index(tmp_path, tmp_path / "none.csv")


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name not in ("data.yaml", "synth.json"):  # these name the out dir and workers
            h.update(p.relative_to(d).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_synth_renders_each_selected_record_k_times_with_record_patient_fold(tmp_path, index):
    chosen = [e for e in index if e.fold == 9][:3]
    listing = tmp_path / "list.txt"
    listing.write_text("# three fold-9 records\n" + "\n".join(e.record for e in chosen) + "\n")
    sets = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        cfg = SynthConfig(
            out=str(out), n=1, seed=3, style="clean", size=(400, 300), records=str(Path(chosen[0].path).parents[2]),
            folds=(9,), record_list=str(listing), per_record=2, workers=workers,
        )  # fmt: skip
        summary = write_dataset(cfg, progress=False)
        assert summary["images"] == 6 and summary["records"] == 3
        sets[workers] = out
    assert _digest(sets[1]) == _digest(sets[2])  # byte-identical for any --workers
    rows = list(csv.DictReader((sets[1] / "labels.csv").read_text().splitlines()))
    assert [r["record"] for r in rows] == [e.record for e in chosen for _ in range(2)]
    by_id = {e.record: e for e in chosen}
    for row in rows:
        e = by_id[row["record"]]
        assert row["patient"] == e.patient and row["fold"] == "9" and row["source"] == "ptbxl"
        assert {k: int(row[k]) for k in (*LABELS, "NORM")} == e.labels
    a, b = (sets[1] / rows[0]["image"]).read_bytes(), (sets[1] / rows[1]["image"]).read_bytes()
    assert a != b  # the same record in two different scenes


def test_synth_options_need_records_and_refuse_negatives(tmp_path):
    with pytest.raises(UsageError, match="give --records"):
        SynthConfig(out=str(tmp_path / "a"), n=2, folds=(1,)).check()
    with pytest.raises(UsageError, match="set of their own"):
        SynthConfig(out=str(tmp_path / "a"), n=2, records=str(tmp_path), per_record=2, negatives=0.1).check()


def test_decoding_does_not_dominate_rendering(index):
    """A 100 Hz PTB-XL record decodes (and resamples to 500 Hz) in a fraction of what drawing a page costs."""
    from edgeecg.synth.scenes import make_scene

    entries = index[:4]
    t0 = time.perf_counter()
    recs = [R.load_record(e.path, labels=e.labels) for e in entries]
    decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, rec in enumerate(recs):
        make_scene(rec, "photo", np.random.default_rng(i), size=(1024, 768))
    render = time.perf_counter() - t0
    assert decode < render, f"decoding {decode:.2f} s vs rendering {render:.2f} s"
