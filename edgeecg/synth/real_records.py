"""Real 12-lead records through `wfdb`: PTB-XL, PhysioNet/CinC `# Dx:` headers, PTB Diagnostic.

Leads are selected by name (any case, "AVR" or "aVR"), limb leads missing from a file are derived from I
and II, units are converted to mV, the signal is resampled with numpy only (FFT low-pass below the new
Nyquist, then linear interpolation), and the first `duration` seconds are kept.
"""

from __future__ import annotations

import ast
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg import LABELS, LEADS, _lazy
from edgeecg.errors import EdgeECGError, UsageError
from edgeecg.synth.ecgrecord import ECGRecord
from edgeecg.synth.snomed import snomed_to_superclasses
from edgeecg.synth.waveforms import lowpass

logger = logging.getLogger(__name__)

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}

# PTB Diagnostic ECG Database "Reason for admission" -> superclass.
_PTB_REASON = {
    "myocardial infarction": "MI",
    "bundle branch block": "CD",
    "myocardial hypertrophy": "HYP",
}


def find_records(root: str | Path) -> list[Path]:
    """All WFDB headers (`.hea`) under `root`, sorted."""
    return sorted(Path(root).rglob("*.hea"))


def _lead_index(names: list[str]) -> dict[str, int]:
    """Standard lead name -> channel index, matching case-insensitively (first match wins)."""
    lookup = {k.lower(): k for k in LEADS}
    out: dict[str, int] = {}
    for i, n in enumerate(names):
        key = lookup.get(n.strip().lower().replace("lead ", "").replace("-", ""))
        if key and key not in out:
            out[key] = i
    return out


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample [..., n] from fs_in to fs_out (numpy only).

    Downsampling first low-passes at 0.45 * fs_out (anti-alias); both directions then interpolate
    linearly on the new time grid, which is accurate for ECG content well below either Nyquist.
    """
    if abs(fs_in - fs_out) < 1e-9:
        return np.asarray(x, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if fs_out < fs_in:
        x = lowpass(x, fs_in, 0.45 * fs_out, order=8)
    n_in = x.shape[-1]
    n_out = int(round(n_in * fs_out / fs_in))
    t_in = np.arange(n_in) / fs_in
    t_out = np.arange(n_out) / fs_out
    flat = x.reshape(-1, n_in)  # [channels, n_in]
    y = np.stack([np.interp(t_out, t_in, row) for row in flat])  # [channels, n_out]
    return y.reshape(*x.shape[:-1], n_out)


def _labels_from_comments(comments: list[str]) -> dict[str, int] | None:
    for line in comments:
        key, _, value = line.partition(":")
        if key.strip().lower() == "dx":
            return snomed_to_superclasses(value.replace(";", ",").split(","))
    for line in comments:
        key, _, value = line.partition(":")
        if key.strip().lower() == "reason for admission":
            reason = value.strip().lower()
            out = {k: 0 for k in LABELS}
            cls = _PTB_REASON.get(reason)
            if cls:
                out[cls] = 1
            out["NORM"] = int(reason.startswith("healthy control"))
            return out
    return None


def load_record(
    path: str | Path, *, fs: float = 500.0, duration: float = 10.0, labels: dict[str, int] | None = None
) -> ECGRecord:
    """Read one WFDB record as 12 named leads at `fs`, `duration` seconds long.

    Args:
        path: the `.hea` file or the record's base name (without extension).
        fs: output sampling rate in Hz.
        duration: output length in seconds; shorter records are zero-padded (with a warning).
        labels: labels to attach; when None they come from the header (`# Dx:` SNOMED codes, or a PTB
            Diagnostic "Reason for admission"), else are all 0 with a warning.

    Returns:
        An ECGRecord with signal float32 [12, round(fs * duration)] in mV.

    Raises:
        EdgeECGError: the file is missing or unreadable, or the 12 leads cannot be formed.
    """
    base, rec = _read_wfdb(path)
    x = _twelve_leads(rec, base)
    x = _fit_length(resample(x, float(rec.fs), fs), fs, duration, base)
    comments = list(rec.comments or [])
    if labels is None:
        labels = _labels_from_comments(comments)
        if labels is None:
            logger.warning("%s: no labels in the header and none given; all labels 0", base.name)
            labels = {k: 0 for k in LABELS} | {"NORM": 0}
    meta = _header_meta(comments)
    meta["source_fs"] = float(rec.fs)
    source = "cinc" if any(c.lower().startswith("dx") for c in comments) else "wfdb"
    return ECGRecord(signal=x.astype(np.float32), fs=float(fs), labels=dict(labels), record=base.name,
                     source=source, meta=meta)  # fmt: skip


def _read_wfdb(path: str | Path) -> tuple[Path, Any]:
    """(the record's base path, its wfdb.Record in physical units)."""
    wfdb = _lazy.require("wfdb")
    p = Path(path)
    base = p.with_suffix("") if p.suffix == ".hea" else p
    if not base.with_suffix(".hea").is_file():
        raise EdgeECGError(f"no WFDB header at {base.with_suffix('.hea')}")
    try:
        rec = wfdb.rdrecord(str(base), physical=True)
    except Exception as err:  # wfdb raises many kinds (ValueError, OSError, struct errors)
        raise EdgeECGError(f"cannot read WFDB record {base}: {err}") from None
    return base, rec


def _twelve_leads(rec: Any, base: Path) -> np.ndarray:
    """float64 [12, n] in mV, in LEADS order: channels matched by name, missing limb leads derived."""
    sig = np.asarray(rec.p_signal, dtype=np.float64).T  # [n, channels] -> [channels, n]
    sig = np.nan_to_num(sig)
    units = [(u or "").strip().lower() for u in (rec.units or [""] * sig.shape[0])]
    scale = np.array([_UNIT_TO_MV.get(u, 1.0) for u in units])
    sig = sig * scale[:, None]  # [channels, n] in mV
    idx = _lead_index(list(rec.sig_name))
    leads: dict[str, np.ndarray] = {k: sig[i] for k, i in idx.items()}
    if "I" in leads and "II" in leads:
        i, ii = leads["I"], leads["II"]
        derived = {"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}
        for k, v in derived.items():
            leads.setdefault(k, v)
    missing = [k for k in LEADS if k not in leads]
    if missing:
        raise EdgeECGError(f"{base}: leads {missing} are missing (channels: {list(rec.sig_name)})")
    return np.stack([leads[k] for k in LEADS])  # [12, n]


def _fit_length(x: np.ndarray, fs: float, duration: float, base: Path) -> np.ndarray:
    """The first `duration` seconds of [12, n] at `fs`; a shorter signal is zero-padded (with a warning)."""
    n = int(round(fs * duration))
    if x.shape[1] < n:
        logger.warning(
            "%s is %.1f s long, padding to %.1f s with zeros", base.name, x.shape[1] / fs, duration
        )
        x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
    return x[:, :n]


def _header_meta(comments: list[str]) -> dict:
    meta: dict = {}
    for line in comments:
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "age" and value.replace(".", "", 1).isdigit():
            meta["age"] = int(float(value))
        elif key == "sex" and value:
            meta["sex"] = value[0].upper()
        elif key == "dx":
            meta["dx"] = [c.strip() for c in value.split(",") if c.strip()]
    return meta


def iter_records(root: str | Path, **kw) -> Iterator[ECGRecord]:
    """Yield every readable record under `root` (see `load_record` for keyword arguments).

    Records that cannot be read or lack leads are logged and skipped.
    """
    for hea in find_records(root):
        try:
            yield load_record(hea, **kw)
        except EdgeECGError as err:
            logger.warning("skipping %s: %s", hea.name, err)


def load_ptbxl_labels(database_csv: str | Path, scp_statements_csv: str | Path) -> dict[int, dict[str, int]]:
    """PTB-XL ecg_id -> superclass labels.

    Every statement listed in a record's `scp_codes` counts, whatever its likelihood (0 means "not
    given" for many statements), as PTB-XL's own example aggregation does. Diagnostic statements map
    through `scp_statements.csv`'s `diagnostic_class` (MI, HYP, CD, STTC, NORM); the rhythm statement
    AFIB maps to AF (atrial flutter does not).

    Args:
        database_csv: `ptbxl_database.csv` (or a subset with `ecg_id` and `scp_codes` columns).
        scp_statements_csv: `scp_statements.csv`.

    Returns:
        {ecg_id: {MI, AF, HYP, CD, STTC, NORM: 0/1}}.
    """
    classes: dict[str, str] = {}
    with open(scp_statements_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            code = row.get("") or row.get("Unnamed: 0") or next(iter(row.values()))
            cls = (row.get("diagnostic_class") or "").strip()
            if row.get("diagnostic") and cls:
                classes[code] = cls
    classes["AFIB"] = "AF"
    out: dict[int, dict[str, int]] = {}
    with open(database_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            codes = ast.literal_eval(row["scp_codes"]) if row.get("scp_codes") else {}
            lab = {k: 0 for k in (*LABELS, "NORM")}
            for code in codes:
                cls = classes.get(code)
                if cls in lab:
                    lab[cls] = 1
            out[int(float(row["ecg_id"]))] = lab
    return out


@dataclass(frozen=True)
class RecordEntry:
    """One record a dataset can render, with what is known of it before it is read.

    Attributes:
        path: the record's `.hea` file.
        record: its id (PTB-XL's ecg_id, else the file's stem).
        labels: {MI, AF, HYP, CD, STTC, NORM: 0/1}, or None to read them from the header (`# Dx:`).
        patient: the patient's id where the source says it, else "".
        fold: the source's fold (PTB-XL's strat_fold, or a labels CSV's fold column), else None.
        source: where it comes from ("ptbxl"), or "" to keep what the loader says (cinc, wfdb).
    """

    path: str
    record: str
    labels: dict[str, int] | None = None
    patient: str = ""
    fold: int | None = None
    source: str = ""


def parse_folds(text: str) -> frozenset[int]:
    """'1-8' -> {1..8}; '9'; '1,3,5-6'. Raises UsageError on anything else."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        out = set()
    if not out:
        raise UsageError(f"folds must look like 1-8, 9 or 1,3,5-6, not {text!r}")
    return frozenset(out)


def _is_ptbxl_database(csv_path: Path) -> bool:
    with open(csv_path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    return {"ecg_id", "scp_codes"} <= set(header)


def _ptbxl_entries(root: Path, database_csv: Path) -> list[RecordEntry]:
    """PTB-XL's records under `root` as its database CSV lists them, labels through scp_statements.csv beside it.

    Each record is read at 500 Hz where `filename_hr` is present, else at 100 Hz (`filename_lr`); rows whose
    files are absent (a subset of the records) are skipped.
    """
    statements = database_csv.parent / "scp_statements.csv"
    if not statements.is_file():
        raise UsageError(f"{database_csv} is PTB-XL's database: scp_statements.csv must lie beside it")
    labels = load_ptbxl_labels(database_csv, statements)
    entries, missing = [], 0
    with open(database_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            ecg_id = int(float(row["ecg_id"]))
            path = next(
                (
                    root / f"{row[col]}.hea"
                    for col in ("filename_hr", "filename_lr")
                    if row.get(col) and (root / f"{row[col]}.hea").is_file()
                ),
                None,
            )
            if path is None:
                missing += 1
                continue
            patient = row.get("patient_id") or ""
            fold = row.get("strat_fold") or ""
            entries.append(
                RecordEntry(
                    path=str(path),
                    record=str(ecg_id),
                    labels=labels[ecg_id],
                    patient=str(int(float(patient))) if patient else "",
                    fold=int(float(fold)) if fold else None,
                    source="ptbxl",
                )
            )
    if missing:
        logger.info("%s: %d listed records are not under %s (skipped)", database_csv.name, missing, root)
    return entries


def _csv_entries(root: Path, labels_csv: Path) -> list[RecordEntry]:
    """Every record under `root` that a plain CSV labels: columns record (the file's stem or its path
    relative to `root` without extension), MI, AF, HYP, CD, STTC, optional NORM, patient and fold."""
    with open(labels_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("record", *LABELS) if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(
                f"{labels_csv}: missing column(s) {', '.join(missing)}; a labels CSV has record, "
                f"{', '.join(LABELS)} (optional NORM, patient, fold), or is PTB-XL's ptbxl_database.csv"
            )
        rows = {r["record"].strip(): r for r in reader}
    entries = []
    for hea in find_records(root):
        rel = hea.relative_to(root).with_suffix("").as_posix()
        row = rows.get(rel) or rows.get(hea.stem)
        if row is None:
            continue
        try:
            lab = {k: int(float(row[k])) for k in LABELS} | {"NORM": int(float(row.get("NORM") or 0))}
            fold = int(float(row["fold"])) if (row.get("fold") or "").strip() else None
        except ValueError:
            raise UsageError(f"{labels_csv}: row {row['record']}: labels and fold must be numbers") from None
        entries.append(RecordEntry(str(hea), hea.stem, lab, (row.get("patient") or "").strip(), fold))
    if not entries:
        raise UsageError(f"{labels_csv} labels none of the records under {root}")
    return entries


def record_index(root: str | Path, labels: str | Path | None = None) -> list[RecordEntry]:
    """The records under `root` with their labels, patient and fold where known.

    Labels come from, in this order: `labels` (PTB-XL's `ptbxl_database.csv`, with `scp_statements.csv`
    beside it, or a plain CSV of record and the five columns); PTB-XL's two CSVs found in `root`; else each
    record's own header (`# Dx:` SNOMED codes, read when the record is loaded).

    Raises:
        UsageError: a labels file that cannot be used, or no records.
    """
    root = Path(root)
    if labels is not None:
        labels = Path(labels)
        if not labels.is_file():
            raise UsageError(f"--labels {labels} is not a file")
        entries = _ptbxl_entries(root, labels) if _is_ptbxl_database(labels) else _csv_entries(root, labels)
    elif (root / "ptbxl_database.csv").is_file():
        entries = _ptbxl_entries(root, root / "ptbxl_database.csv")
    else:
        entries = [RecordEntry(str(h), h.stem) for h in find_records(root)]
    if not entries:
        raise UsageError(f"no WFDB records (.hea) under {root}")
    return entries


def select_records(
    entries: list[RecordEntry], folds: frozenset[int] | None = None, ids: frozenset[str] | None = None
) -> list[RecordEntry]:
    """The entries in `folds` and/or named in `ids` (record ids or file stems), in their order.

    Raises:
        UsageError: folds asked of records that have none, or nothing left.
    """
    out = entries
    if folds is not None:
        if any(e.fold is None for e in out):
            raise UsageError(
                "--folds needs every record's fold: PTB-XL's strat_fold, or a fold column in --labels"
            )
        out = [e for e in out if e.fold in folds]
    if ids is not None:
        out = [e for e in out if e.record in ids or Path(e.path).stem in ids]
    if not out:
        raise UsageError("no records left after selecting by --folds / --record-list")
    return out
