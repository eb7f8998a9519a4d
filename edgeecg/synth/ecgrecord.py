"""The signal-side contract shared by the simulator, the WFDB loader and the paper renderer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeecg import LABELS, LEADS


@dataclass(frozen=True)
class ECGRecord:
    """Ten seconds (or more) of a 12-lead ECG with its labels.

    Attributes:
        signal: float32 array [12, n] in millivolts, rows in `edgeecg.LEADS` order.
        fs: sampling rate in Hz.
        labels: 0/1 for each of `edgeecg.LABELS` (MI, AF, HYP, CD, STTC); "NORM" may be present too.
        record: an identifier (simulator seed or record name).
        source: "sim" for the simulator, else where it came from (e.g. "ptbxl", "cinc").
        meta: what a printed header can show: hr (bpm), pr/qrs/qt/qtc (ms), axes (deg), diagnoses (list of
            str), age, sex. Keys are optional; values are JSON-serialisable.
    """

    signal: np.ndarray
    fs: float
    labels: dict[str, int]
    record: str = ""
    source: str = "sim"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.signal.ndim != 2 or self.signal.shape[0] != len(LEADS):
            raise ValueError(f"signal must be [12, n], got {self.signal.shape}")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.signal.shape[1] / self.fs

    def label_vector(self) -> np.ndarray:
        """The five labels as a float32 vector in `edgeecg.LABELS` order."""
        return np.array([self.labels.get(k, 0) for k in LABELS], dtype=np.float32)

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples by name (e.g. "aVF")."""
        return self.signal[LEADS.index(name)]
