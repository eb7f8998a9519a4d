"""The WFDB loader on the real records in ../shared/realdata (skips without them) and on files we write."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
from fixtures import ecg_measure as M

from edgeecg import LABELS, LEADS
from edgeecg.errors import EdgeECGError
from edgeecg.synth import real_records as R
from edgeecg.synth import waveforms as W
from edgeecg.synth.ecgrecord import ECGRecord
from edgeecg.synth.snomed import snomed_to_superclasses

wfdb = pytest.importorskip("wfdb")
COLS = [*LABELS, "NORM"]


@pytest.fixture(scope="module")
def records_dir(realdata):
    return realdata / "records"


@pytest.fixture(scope="module")
def ptbxl_labels(realdata):
    m = realdata / "mappings"
    return R.load_ptbxl_labels(m / "ptbxl_database_ecg_id_1-547.csv", m / "ptbxl_scp_statements.csv")


@pytest.fixture(scope="module")
def loaded(records_dir, ptbxl_labels):
    out = {}
    for hea in R.find_records(records_dir):
        out[hea.stem] = R.load_record(hea, labels=ptbxl_labels[1] if hea.stem == "00001_lr" else None)
    return out


def test_every_real_record_loads_with_labels_from_labels_csv(records_dir, loaded):
    with open(records_dir / "labels.csv", newline="") as fh:
        truth = {row["record"]: {k: int(row[k]) for k in COLS} for row in csv.DictReader(fh)}
    assert len(loaded) == len(truth) == 56
    wrong = {name: (rec.labels, truth[name]) for name, rec in loaded.items() if rec.labels != truth[name]}
    assert not wrong, wrong
    for name, rec in loaded.items():
        assert rec.signal.shape == (12, 5000) and rec.signal.dtype == np.float32, name
        assert rec.fs == 500.0
        peak = np.abs(rec.signal).max()
        assert 0.2 < peak < 15.0, f"{name}: {peak} mV is not a plausible ECG range"


def test_ptbxl_labels_from_database(ptbxl_labels):
    assert ptbxl_labels[1] == {"MI": 0, "AF": 0, "HYP": 0, "CD": 0, "STTC": 0, "NORM": 1}
    assert len(ptbxl_labels) > 500
    # Some of the first 547 PTB-XL records carry each superclass.
    for k in ("MI", "HYP", "CD", "STTC", "NORM"):
        assert any(v[k] for v in ptbxl_labels.values()), k


def test_snomed_strict_mapping():
    assert snomed_to_superclasses(["164890007"])["AF"] == 0, "atrial flutter alone is not AF"
    assert snomed_to_superclasses(["164889003"])["AF"] == 1
    assert not any(snomed_to_superclasses(["429622005", "164934002", "55827005"]).values()), "form statements"
    assert snomed_to_superclasses(["426783006", "427084000"])["NORM"] == 1
    assert snomed_to_superclasses(["426783006", "284470004"])["NORM"] == 0


@pytest.mark.parametrize("name,step", [("s0010_re", 2), ("00001_lr", None)])
def test_resampled_records_keep_shape_and_rate(records_dir, loaded, name, step):
    raw = wfdb.rdrecord(str(records_dir / name))
    fs_in = float(raw.fs)
    ii_raw = raw.p_signal[: int(10 * fs_in), [n.lower() for n in raw.sig_name].index("ii")]
    ii = loaded[name].lead("II").astype(np.float64)
    if step:  # 1000 Hz -> 500 Hz: every second raw sample, after a 225 Hz anti-alias filter
        assert np.abs(ii - ii_raw[::step]).max() < 0.05
    else:  # 100 Hz -> 500 Hz: the raw samples sit on the new grid
        assert np.allclose(ii[::5], ii_raw, atol=1e-4)
    # The heart rate is the same before and after (QRS detection at each rate).
    sig_raw = np.zeros((12, ii_raw.size), np.float32)
    for k, lead in enumerate(LEADS):
        idx = [n.lower() for n in raw.sig_name].index(lead.lower())
        sig_raw[k] = raw.p_signal[: ii_raw.size, idx]
    before = np.median(M.rr_intervals(ECGRecord(sig_raw, fs_in, {})))
    after = np.median(M.rr_intervals(loaded[name]))
    assert abs(before - after) < 0.02, (before, after)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(EdgeECGError, match="no WFDB header"):
        R.load_record(tmp_path / "nope.hea")


def _write(tmp_path, name, rec: ECGRecord, leads, fs, seconds, names=None):
    idx = [LEADS.index(k) for k in leads]
    sig = rec.signal[idx, : int(seconds * fs)].T.astype(np.float64)  # [12, n] -> [n, channels]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=names or list(leads), p_signal=sig,
                fmt=["16"] * len(leads), adc_gain=[1000.0] * len(leads), baseline=[0] * len(leads),
                comments=["Dx: 59118001,426783006"], write_dir=str(tmp_path))  # fmt: skip
    return tmp_path / f"{name}.hea"


def test_derives_missing_limb_leads_and_reads_dx(tmp_path):
    rec = W.simulate(np.random.default_rng(0), ["CD"], noise=False)
    hea = _write(tmp_path, "eight", rec, ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"), 500, 10)
    out = R.load_record(hea)
    assert np.abs(out.signal - rec.signal).max() < 2e-3  # 1 uV quantisation
    assert out.labels["CD"] == 1 and out.labels["NORM"] == 0


def test_uppercase_names_short_record_padded(tmp_path, caplog):
    rec = W.simulate(np.random.default_rng(1), [], noise=False)
    names = [k.upper() for k in LEADS]
    hea = _write(tmp_path, "short", rec, LEADS, 500, 4, names=names)
    with caplog.at_level(logging.WARNING):
        out = R.load_record(hea.with_suffix(""))
    assert out.signal.shape == (12, 5000)
    assert np.all(out.signal[:, 2000:] == 0)
    assert "padding" in caplog.text


def test_missing_leads_is_a_clear_error(tmp_path):
    rec = W.simulate(np.random.default_rng(2), [], noise=False)
    hea = _write(tmp_path, "limb", rec, ("I", "II", "III"), 500, 10)
    with pytest.raises(EdgeECGError, match="missing"):
        R.load_record(hea)
    assert list(R.iter_records(tmp_path)) == []  # iter_records skips it (and logs)
