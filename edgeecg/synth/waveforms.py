"""A 12-lead ECG simulator built on a beating heart vector, and signal measurements that check it.

The heart's electrical activity is modelled as a vectorcardiogram (VCG, X/Y/Z in mV; X to the patient's
left, Y to the feet, Z to the back, the axes of the Dower table in ECG-CRITERIA.md). One beat is a sum of
lobes: a few Gaussian lobes each for P, QRS and T (T as an asymmetric Gaussian), an ST "injury" plateau
and optional atrial fibrillatory waves. Every class changes the lobes the way its electrophysiology
does (an MI adds early forces pointing away from the infarct and an injury vector towards it; a bundle
branch block adds slow late forces; LVH enlarges left-posterior forces ...), so all 12 leads stay
consistent. The VCG is projected with the Dower matrix to I, II and V1-V6; noise is added to those eight
independent leads and III, aVR, aVL, aVF are derived from I and II, so Einthoven's and Goldberger's
relations hold to float precision.

A record needs a few ms: one beat template is built per record (small arrays), then placed at each beat
time. A few class criteria (Sokolow-Lyon voltage, ST deviation, T inversion) are calibrated on that
clean template so that every drawn record meets its label's criteria, not just most of them.

The measurement helpers (`rr_intervals`, `measure_qrs_width`, `st_level`, `sokolow_lyon` ...) detect QRS
complexes from the signal itself; they never read `meta`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from edgeecg import LABELS, LEADS
from edgeecg.synth.ecgrecord import ECGRecord

logger = logging.getLogger(__name__)

#: Per-class rates close to the BHF 2024 challenge training set (ECG-CRITERIA.md, "Prevalence").
DEFAULT_PREVALENCE: dict[str, float] = {"MI": 0.25, "AF": 0.07, "HYP": 0.12, "CD": 0.21, "STTC": 0.24}

#: Dower transform rows (X, Y, Z) for the eight independent leads I, II, V1..V6.
_DOWER = np.array(
    [
        [0.632, -0.235, 0.059],  # I
        [0.235, 1.066, -0.132],  # II
        [-0.515, 0.157, -0.917],  # V1
        [0.044, 0.164, -1.387],  # V2
        [0.882, 0.098, -1.277],  # V3
        [1.213, 0.127, -0.601],  # V4
        [1.125, 0.127, -0.086],  # V5
        [0.831, 0.076, 0.230],  # V6
    ]
)
_INDEP = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

# Unit directions (VCG) pointing at each MI territory / the wall an ST vector points to.
_TERRITORY_DIR = {
    "inferior": np.array([0.0, 1.0, 0.15]),
    "anterior": np.array([0.2, 0.0, -1.0]),
    "lateral": np.array([0.85, -0.45, 0.1]),
}
# Contiguous lead groups that show each territory (ECG-CRITERIA.md).
TERRITORY_LEADS: dict[str, tuple[str, ...]] = {
    "inferior": ("II", "III", "aVF"),
    "anterior": ("V1", "V2", "V3", "V4"),
    "lateral": ("I", "aVL", "V5", "V6"),
}
# What each label's pictures are drawn from (in the draw order of `_design`, which the seeds depend on).
_HYP_KINDS = ("LVH", "LVH strain", "RVH", "LAE")
_MI_TERRITORIES = ("inferior", "anterior", "lateral")
_CD_KINDS = ("RBBB", "LBBB", "1AVB", "LAFB")
_STTC_WALLS = ("lateral", "inferior", "anterior")
_STTC_WALL_KINDS = ("ST depression", "T inversion")  # named with their wall ("T inversion lateral")
#: Every finding a record's `meta["subtypes"]` can hold (`edgeecg synth` writes them to labels.csv's
#: `findings` column; training's auxiliary outputs follow this order). Built from the lists the draw code
#: draws from, so the two cannot disagree.
FINDINGS: tuple[str, ...] = (
    "AF",
    *_HYP_KINDS,
    *(f"{t} MI {age}" for t in _MI_TERRITORIES for age in ("acute", "old")),
    *_CD_KINDS,
    *(f"{k} {wall}" for k in _STTC_WALL_KINDS for wall in _STTC_WALLS),
    "flat T",
    "long QT",
)
# Pairs of leads that count as contiguous (neighbours on the Cabrera / precordial order).
_CONTIGUOUS = [
    ("aVL", "I"), ("I", "II"), ("II", "aVF"), ("aVF", "III"), ("I", "V6"), ("II", "III"),
    ("V1", "V2"), ("V2", "V3"), ("V3", "V4"), ("V4", "V5"), ("V5", "V6"), ("aVL", "V5"),
]  # fmt: skip


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _frontal(deg: float, z: float) -> np.ndarray:
    """A VCG direction with frontal-plane angle `deg` (0 = lead I, +90 = aVF) and a Z component."""
    a = math.radians(deg)
    return np.array([math.cos(a), math.sin(a), z])


# --------------------------------------------------------------------------------------------- labels


def sample_labels(rng: np.random.Generator, prevalence: dict[str, float] | None = None) -> dict[str, int]:
    """Draw one multi-label set with realistic co-occurrence.

    MI raises the chance of CD and STTC, HYP raises STTC (as in PTB-XL, where about a quarter of abnormal
    records hold several superclasses); base rates are solved so the marginals equal `prevalence`.

    Args:
        rng: random generator.
        prevalence: per-class positive rate; defaults to `DEFAULT_PREVALENCE`.

    Returns:
        0/1 for every label in `edgeecg.LABELS`, plus "NORM" (1 when no class is present).
    """
    p = {**DEFAULT_PREVALENCE, **(prevalence or {})}
    mi = rng.random() < p["MI"]
    hyp = rng.random() < p["HYP"]
    af = rng.random() < p["AF"]
    # CD: 1.4x more likely after an MI; solve the base so the marginal stays p["CD"].
    cd_mi = min(1.0, 1.4 * p["CD"])
    cd_base = max(0.0, (p["CD"] - p["MI"] * cd_mi) / max(1e-9, 1.0 - p["MI"]))
    cd = rng.random() < (cd_mi if mi else cd_base)
    # STTC: additive boosts from MI and HYP.
    boost_mi, boost_hyp = 0.15, 0.2
    sttc_base = max(0.0, p["STTC"] - boost_mi * p["MI"] - boost_hyp * p["HYP"])
    sttc = rng.random() < min(1.0, sttc_base + boost_mi * mi + boost_hyp * hyp)
    labels = {"MI": int(mi), "AF": int(af), "HYP": int(hyp), "CD": int(cd), "STTC": int(sttc)}
    labels["NORM"] = int(not any(labels.values()))
    return labels


def _normalise_labels(labels: dict[str, int] | Iterable[str]) -> dict[str, int]:
    if isinstance(labels, dict):
        unknown = set(labels) - set(LABELS) - {"NORM"}
        on = {k for k, v in labels.items() if v and k in LABELS}
    else:
        names = list(labels)
        unknown = set(names) - set(LABELS) - {"NORM"}
        on = {k for k in names if k in LABELS}
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}; expected some of {LABELS} or NORM")
    out = {k: int(k in on) for k in LABELS}
    out["NORM"] = int(not on)
    return out


# ----------------------------------------------------------------------------------------- beat model


@dataclass
class _Beat:
    """Design of one beat: lobes in VCG space, times in seconds from QRS onset."""

    p: list[tuple[np.ndarray, float, float]] = field(default_factory=list)  # (vector, centre, sigma)
    qrs: list[tuple[np.ndarray, float, float]] = field(default_factory=list)
    t: list[tuple[np.ndarray, float, float, float]] = field(default_factory=list)  # vec, peak, sl, sr
    st: np.ndarray = field(default_factory=lambda: np.zeros(3))  # ST injury / depression vector
    pr: float = 0.16  # P onset to QRS onset (s)
    qrs_dur: float = 0.09
    qt: float = 0.38
    subtypes: list[str] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)


def _gauss(t: np.ndarray, c: float, s: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - c) / s) ** 2)


def _agauss(t: np.ndarray, c: float, sl: float, sr: float) -> np.ndarray:
    s = np.where(t < c, sl, sr)
    return np.exp(-0.5 * ((t - c) / s) ** 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _st_shape(t: np.ndarray, beat: _Beat) -> np.ndarray:
    """ST plateau: rises in the last part of the QRS, holds, fades through the T wave."""
    t_peak = beat.t[0][1] if beat.t else beat.qt - 0.08
    rise = _sigmoid((t - (beat.qrs_dur - 0.012)) / 0.004)
    fall = 1.0 - _sigmoid((t - t_peak) / 0.03)
    return rise * fall


def _components(beat: _Beat, t: np.ndarray) -> dict[str, np.ndarray]:
    """VCG [3, len(t)] of each wave group, so calibration can rescale them linearly."""
    out = {}
    for name in ("p", "qrs"):
        acc = np.zeros((3, t.size))
        for vec, c, s in getattr(beat, name):
            acc += vec[:, None] * _gauss(t, c, s)[None, :]  # [3, 1] * [1, n] -> [3, n]
        out[name] = acc
    acc = np.zeros((3, t.size))
    for vec, c, sl, sr in beat.t:
        acc += vec[:, None] * _agauss(t, c, sl, sr)[None, :]
    out["t"] = acc
    out["st"] = beat.st[:, None] * _st_shape(t, beat)[None, :]
    return out


def _to_leads(vcg8: np.ndarray) -> np.ndarray:
    """[8, n] independent leads (I, II, V1..V6) -> [12, n] in LEADS order with exact limb identities."""
    i, ii = vcg8[0], vcg8[1]
    limb = np.stack([i, ii, ii - i, -(i + ii) / 2.0, i - ii / 2.0, ii - i / 2.0])  # [6, n]
    return np.concatenate([limb, vcg8[2:]], axis=0)  # [12, n]


def _project(vcg: np.ndarray) -> np.ndarray:
    """VCG [3, n] -> 12 leads [12, n]."""
    return _to_leads(_DOWER @ vcg)  # [8, 3] @ [3, n] -> [8, n]


class _Template:
    """A clean beat in lead space, decomposed per wave group, with design fiducials for calibration."""

    def __init__(self, beat: _Beat, fs: float):
        self.beat = beat
        self.fs = fs
        pre = beat.pr + 0.06 if beat.p else 0.06
        post = beat.qt + 0.12
        self.t = np.arange(-pre, post, 1.0 / fs)
        self.leads = {k: _project(v) for k, v in _components(beat, self.t).items()}  # name -> [12, n]

    def total(self) -> np.ndarray:
        return sum(self.leads.values())

    def at(self, seconds: float) -> int:
        return int(np.clip(round((seconds - self.t[0]) * self.fs), 0, self.t.size - 1))

    def qrs_window(self) -> slice:
        return slice(self.at(-0.005), self.at(self.beat.qrs_dur + 0.005))

    def st_value(self, sig: np.ndarray, offset: float = 0.06) -> np.ndarray:
        """[12] ST level at J + offset relative to the PR segment, for a [12, n] template part."""
        return sig[:, self.at(self.beat.qrs_dur + offset)] - sig[:, self.at(-0.01)]

    def t_extreme(self, sig: np.ndarray) -> np.ndarray:
        """[12] signed T amplitude (the larger of max/min in the ST-T window) vs the PR segment."""
        w = sig[:, self.at(self.beat.qrs_dur + 0.06) : self.at(self.beat.qt)] - sig[:, [self.at(-0.01)]]
        hi, lo = w.max(axis=1), w.min(axis=1)
        return np.where(hi >= -lo, hi, lo)

    def sokolow(self, sig: np.ndarray) -> float:
        w = sig[:, self.qrs_window()]
        v1, v5, v6 = (w[LEADS.index(k)] for k in ("V1", "V5", "V6"))
        return float(max(0.0, -v1.min()) + max(v5.max(), v6.max()))


def _ix(names: Iterable[str]) -> list[int]:
    return [LEADS.index(n) for n in names]


def _second_best(values: np.ndarray, leads: tuple[str, ...], sign: float) -> float:
    """The deviation (times sign) that at least two contiguous leads of `leads` reach."""
    best = -np.inf
    for a, b in _CONTIGUOUS:
        if a in leads and b in leads:
            best = max(best, min(sign * values[LEADS.index(a)], sign * values[LEADS.index(b)]))
    return float(best)


# ------------------------------------------------------------------------------------- class designs


def _normal_beat(rng: np.random.Generator, rr: float, fs: float) -> _Beat:
    b = _Beat()
    b.pr = float(rng.uniform(0.125, 0.195))
    b.qrs_dur = float(rng.uniform(0.082, 0.104))
    qtc = float(np.clip(rng.normal(405, 18), 365, 445)) / 1000.0
    b.qt = qtc * math.sqrt(rr)
    # P: right-atrial then left-atrial lobe.
    p_dur = float(rng.uniform(0.08, 0.11))
    p_axis = float(rng.uniform(35, 70))
    p_amp = float(rng.uniform(0.08, 0.17))
    s = p_dur / 7.0
    c1 = -b.pr + 2.5 * s
    b.p = [
        (p_amp * _unit(_frontal(p_axis + 10, -0.35)), c1, s),
        (p_amp * _unit(_frontal(p_axis - 15, 0.35)), c1 + 2 * s, s),
    ]
    # QRS: septal (right-anterior), main left ventricle, terminal basal (right-superior-posterior).
    d = b.qrs_dur
    axis = float(np.clip(rng.normal(45, 25), -25, 85))
    mag = float(rng.uniform(1.1, 2.1))
    zf = float(rng.uniform(0.2, 0.5))
    b.qrs = [
        (float(rng.uniform(0.1, 0.28)) * _unit(np.array([-0.6, 0.25, -0.75])), 0.18 * d, 0.07 * d),
        (mag * _unit(_frontal(axis, zf)), 0.45 * d, 0.12 * d),
        (float(rng.uniform(0.15, 0.45)) * _unit(np.array([-0.45, -0.5, 0.7])), 0.75 * d, 0.09 * d),
    ]
    # T: concordant with the QRS, pointing a little anterior so V2-V6 are upright.
    t_axis = float(np.clip(axis + rng.normal(0, 15), -10, 80))
    t_amp = float(rng.uniform(0.25, 0.55))
    sr = 0.028 * b.qt / 0.4
    b.t = [(t_amp * _unit(_frontal(t_axis, -float(rng.uniform(0.15, 0.5)))), b.qt - 2.5 * sr, 2.2 * sr, sr)]
    _set_axis(b, fs, axis)
    return b


def _rotate_frontal(v: np.ndarray, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


def _set_axis(b: _Beat, fs: float, target: float, lobe: int = 1) -> None:
    """Rotate one QRS lobe in the frontal plane until the measured (net-area) QRS axis is `target`."""
    for _ in range(4):
        tpl = _Template(b, fs)
        err = (target - _axis(tpl.leads["qrs"]) + 180.0) % 360.0 - 180.0
        if abs(err) < 2.0:
            return
        vec, c, s = b.qrs[lobe]
        b.qrs[lobe] = (_rotate_frontal(vec, 0.8 * err), c, s)


def _apply_mi(b: _Beat, rng: np.random.Generator, territory: str, acute: bool) -> None:
    d = _unit(_TERRITORY_DIR[territory])
    # Dead myocardium: the forces towards the infarct vanish ...
    vec, c, s = b.qrs[1]
    along = float(vec @ d)
    if along > 0:
        vec = vec - float(rng.uniform(0.6, 0.95)) * along * d
    b.qrs[1] = (vec, c, s)
    if territory == "anterior":
        b.qrs[0] = (b.qrs[0][0] * 0.1, b.qrs[0][1], b.qrs[0][2])  # septal r in V1-V3 lost (QS)
    # ... so the early QRS points away from it: a wide Q (>= 40 ms) in the territory's leads.
    q_amp = float(rng.uniform(0.35, 0.8))
    b.qrs.append((-q_amp * d, 0.2 * b.qrs_dur, 0.11 * b.qrs_dur))
    vt, tp, sl, sr = b.t[0]
    if acute:
        # Injury current towards the infarct (ST elevation there, reciprocal depression opposite) and a
        # hyperacute T.
        b.st = b.st + float(rng.uniform(0.2, 0.45)) * d
        b.t[0] = (vt + float(rng.uniform(0.1, 0.35)) * d, tp, sl, sr)
    else:
        b.t[0] = (vt - (float(vt @ d) + float(rng.uniform(0.15, 0.4))) * d, tp, sl, sr)
    b.subtypes.append(f"{territory} MI {'acute' if acute else 'old'}")
    b.diagnoses.append(f"{territory} infarct, {'acute' if acute else 'age undetermined'}")


def _apply_cd(b: _Beat, rng: np.random.Generator, kind: str, fs: float) -> None:
    if kind == "1AVB":
        b.pr = float(rng.uniform(0.23, 0.32))
        if b.p:
            shift = b.p[0][1] + b.pr - 2.5 * b.p[0][2]
            b.p = [(v, c - shift, s) for v, c, s in b.p]
        b.diagnoses.append("1st degree AV block")
    elif kind == "RBBB":
        d = float(rng.uniform(0.128, 0.16))
        b.qrs_dur = d
        septal, main = b.qrs[0], b.qrs[1]
        sr = float(rng.uniform(0.016, 0.021))
        b.qrs = [
            septal,
            (main[0], 0.045, 0.012),
            # Late, slow right-ventricular forces: R' in V1-V2, wide S in I, aVL, V5-V6.
            (
                float(rng.uniform(0.5, 0.75) * np.linalg.norm(main[0]))
                * _unit(np.array([-0.55, 0.1, -0.85])),
                d - 2.5 * sr,
                sr,
            ),
        ]
        b.qrs[0] = (septal[0], 0.016, 0.007)
        vt, tp, sl, s_r = b.t[0]
        b.t[0] = (float(np.linalg.norm(vt)) * _unit(np.array([0.6, 0.5, 0.6])), tp, sl, s_r)
        b.diagnoses.append("Right bundle branch block")
    elif kind == "LBBB":
        d = float(rng.uniform(0.13, 0.17))
        b.qrs_dur = d
        m1, m2 = float(rng.uniform(0.9, 1.6)), float(rng.uniform(0.9, 1.6))
        s = 0.13 * d
        b.qrs = [  # no septal q; two broad leftward-posterior lobes make the notched R
            (m1 * _unit(np.array([0.75, 0.25, 0.6])), 0.32 * d, s),
            (m2 * _unit(np.array([0.8, 0.05, 0.55])), d - 2.5 * s, s),
        ]
        vt, tp, sl, sr = b.t[0]
        amp = float(rng.uniform(0.3, 0.6))
        b.t[0] = (amp * _unit(np.array([-0.75, -0.2, -0.6])), tp, sl, sr)  # discordant T
        b.st = b.st + float(rng.uniform(0.08, 0.18)) * _unit(np.array([-0.75, -0.2, -0.6]))
        b.diagnoses.append("Left bundle branch block")
    elif kind == "LAFB":
        vec, c, s = b.qrs[1]
        b.qrs[1] = (float(np.linalg.norm(vec)) * _unit(_frontal(float(rng.uniform(-82, -58)), 0.3)), c, s)
        b.qrs[0] = (0.25 * _unit(np.array([-0.2, 0.9, -0.3])), b.qrs[0][1], b.qrs[0][2])  # r in II/III/aVF
        b.qrs[2] = (b.qrs[2][0] * 0.3, b.qrs[2][1], b.qrs[2][2])
        _set_axis(b, fs, float(rng.uniform(-80, -50)))
        b.diagnoses.append("Left anterior fascicular block")
    b.subtypes.append(kind)


def _apply_hyp(b: _Beat, rng: np.random.Generator, kind: str, fs: float) -> None:
    if kind in ("LVH", "LVH strain"):
        vec, c, s = b.qrs[1]
        b.qrs[1] = (_unit(_frontal(float(rng.uniform(-10, 50)), float(rng.uniform(0.45, 0.8)))), c, s)
        b.qrs_dur = min(0.11, b.qrs_dur * 1.08)
        _set_axis(b, fs, float(rng.uniform(-20, 60)))
        if kind == "LVH strain":
            d = _unit(_TERRITORY_DIR["lateral"])
            b.st = b.st - float(rng.uniform(0.06, 0.15)) * d
            vt, tp, sl, sr = b.t[0]
            # Asymmetric inversion: slow descent, quick return.
            b.t[0] = (float(rng.uniform(0.2, 0.45)) * _unit(np.array([-0.8, 0.25, 0.3])), tp, sl * 1.2, sr)
        b.diagnoses.append(
            "Left ventricular hypertrophy" + (" with repolarisation abnormality" * (kind != "LVH"))
        )
    elif kind == "RVH":
        vec, c, s = b.qrs[1]
        b.qrs[1] = (float(rng.uniform(1.0, 1.7)) * _unit(_frontal(float(rng.uniform(115, 150)), -0.6)), c, s)
        b.qrs[2] = (b.qrs[2][0] * 0.3, b.qrs[2][1], b.qrs[2][2])
        _set_axis(b, fs, float(rng.uniform(115, 150)))
        vt, tp, sl, sr = b.t[0]
        b.t[0] = (float(np.linalg.norm(vt)) * _unit(np.array([0.5, 0.7, 0.5])), tp, sl, sr)  # strain V1-V3
        b.diagnoses.append("Right ventricular hypertrophy")
    elif kind == "LAE" and b.p:
        (v1, c1, s), (v2, _, _) = b.p
        s2 = float(rng.uniform(0.022, 0.026))
        # Later, larger, posterior left-atrial lobe: wide notched P in II, deep terminal negative P in V1.
        b.p = [
            (v1, c1, s),
            (float(rng.uniform(0.14, 0.22)) * _unit(np.array([0.7, 0.35, 0.65])), c1 + 0.06, s2),
        ]
        b.diagnoses.append("Left atrial enlargement")
    b.subtypes.append(kind)


def _apply_sttc(b: _Beat, rng: np.random.Generator, kinds: list[str], wall: str) -> None:
    d = _unit(_TERRITORY_DIR[wall])
    vt, tp, sl, sr = b.t[0]
    if "ST depression" in kinds:
        b.st = b.st - float(rng.uniform(0.08, 0.2)) * d
        b.diagnoses.append(f"ST depression, {wall} leads")
    if "T inversion" in kinds:
        b.t[0] = (vt - (float(vt @ d) + float(rng.uniform(0.15, 0.35))) * d, tp, sl, sr)
        b.diagnoses.append(f"T-wave inversion, {wall} leads")
    elif "flat T" in kinds:
        b.t[0] = (vt * float(rng.uniform(0.05, 0.2)), tp, sl, sr)
        b.diagnoses.append("Low amplitude T waves")
    if "long QT" in kinds:
        # Recomputed by the caller from this QTc (Bazett).
        b.diagnoses.append("Prolonged QT")
    b.subtypes.extend(f"{k} {wall}" if k in _STTC_WALL_KINDS else k for k in kinds)


def _retime_t(b: _Beat, qt: float) -> None:
    b.qt = qt
    vt, _, _, _ = b.t[0]
    sr = 0.028 * qt / 0.4
    b.t[0] = (vt, qt - 2.5 * sr, 2.2 * sr, sr)


def _design(rng: np.random.Generator, labels: dict[str, int], rr: float, fs: float) -> tuple[_Beat, dict]:
    b = _normal_beat(rng, rr, fs)
    info: dict = {}
    if labels["AF"]:
        b.p = []
        b.subtypes.append("AF")
        b.diagnoses.insert(0, "Atrial fibrillation")
    if labels["HYP"]:
        kind = str(rng.choice(_HYP_KINDS, p=[0.45, 0.3, 0.12, 0.13]))
        if kind == "LAE" and labels["AF"]:
            kind = "LVH"
        _apply_hyp(b, rng, kind, fs)
    if labels["MI"]:
        territory = str(rng.choice(_MI_TERRITORIES, p=[0.45, 0.4, 0.15]))
        _apply_mi(b, rng, territory, acute=bool(rng.random() < 0.45))
    if labels["CD"]:
        probs = np.array([0.35, 0.2, 0.25, 0.2])
        if labels["AF"]:
            probs[2] = 0.0  # no PR interval to prolong in AF
        if labels["HYP"] and "RVH" in b.subtypes:
            probs[3] = 0.0  # LAFB's left axis contradicts RVH's right axis
        kind = str(rng.choice(_CD_KINDS, p=probs / probs.sum()))
        _apply_cd(b, rng, kind, fs)
    if labels["STTC"]:
        primary = "ST depression" if rng.random() < 0.55 else "T inversion"
        kinds = [primary]
        if primary == "ST depression" and rng.random() < 0.3:
            kinds.append("T inversion")
        if "T inversion" not in kinds and rng.random() < 0.25:
            kinds.append("flat T")
        if rng.random() < 0.2:
            kinds.append("long QT")
        wall = str(rng.choice(_STTC_WALLS, p=[0.5, 0.3, 0.2]))
        _apply_sttc(b, rng, kinds, wall)
        info["sttc_wall"] = wall
        if "long QT" in kinds:
            _retime_t(b, float(rng.uniform(0.475, 0.53)) * math.sqrt(rr))
    # Bundle branch blocks and wide QRS lengthen QT; keep the T after the QRS.
    if b.qt < b.qrs_dur + 0.2:
        _retime_t(b, b.qrs_dur + 0.2)
    _calibrate(b, rng, labels, fs, info)
    return b, info


def _calibrate(b: _Beat, rng: np.random.Generator, labels: dict[str, int], fs: float, info: dict) -> None:
    """Scale the lobes so that each label's measurable criterion holds on the clean beat."""
    tpl = _Template(b, fs)
    sl = tpl.sokolow(tpl.leads["qrs"])
    if labels["HYP"] and any(k.startswith("LVH") for k in b.subtypes):
        target = float(rng.uniform(3.9, 5.5))
    elif sl >= 3.2:
        target = float(rng.uniform(1.6, 3.1))  # no LVH voltage without the HYP label
    else:
        target = sl
    if sl > 0 and abs(target - sl) > 1e-6:
        k = target / sl
        b.qrs = [(v * k, c, s) for v, c, s in b.qrs]
    for kind in b.subtypes:
        if kind.endswith("MI acute"):
            territory = kind.split()[0]
            _scale_st(b, fs, TERRITORY_LEADS[territory], +1, float(rng.uniform(0.13, 0.35)))
        if kind.startswith("T inversion"):
            _deepen_t(b, fs, TERRITORY_LEADS[info["sttc_wall"]], _unit(_TERRITORY_DIR[info["sttc_wall"]]))
        if kind.startswith("ST depression") or kind == "LVH strain":
            wall = info.get("sttc_wall", "lateral") if kind.startswith("ST") else "lateral"
            _scale_st(b, fs, TERRITORY_LEADS[wall], -1, float(rng.uniform(0.07, 0.2)))


def _deepen_t(b: _Beat, fs: float, leads: tuple[str, ...], d: np.ndarray, target: float = 0.15) -> None:
    """Turn the T vector away from `d` until at least two of `leads` show T inversion >= `target`."""
    for _ in range(12):
        tpl = _Template(b, fs)
        tx = tpl.t_extreme(tpl.total())[_ix(leads)]
        if int(np.sum(tx <= -target)) >= 2:
            return
        vt, tp, sl, sr = b.t[0]
        b.t[0] = (vt - 0.08 * d, tp, sl, sr)


def _scale_st(b: _Beat, fs: float, leads: tuple[str, ...], sign: float, target: float) -> None:
    """Grow the ST vector until two contiguous `leads` deviate by `target` (sign +1 up, -1 down)."""
    if not np.any(b.st):
        return
    tpl = _Template(b, fs)
    st_unit = tpl.st_value(tpl.leads["st"])
    base = tpl.st_value(tpl.total()) - st_unit
    for k in (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0):
        if _second_best(base + k * st_unit, leads, sign) >= target:
            break
    b.st = b.st * k


# -------------------------------------------------------------------------------------------- rhythm


def _rr_sequence(rng: np.random.Generator, af: bool, hr: float, total: float) -> np.ndarray:
    mean_rr = 60.0 / hr
    n = int(total / (0.3 if af else mean_rr * 0.9)) + 3
    if af:
        for _ in range(20):
            rr = mean_rr * np.exp(rng.normal(0.0, rng.uniform(0.2, 0.35), n))
            rr = np.clip(rr, 0.32, 2.0)
            # Irregularly irregular: reject the rare draw that happens to look regular.
            k = int(np.searchsorted(np.cumsum(rr), total)) + 1
            if np.std(rr[:k]) / np.mean(rr[:k]) > 0.13:
                break
        return rr
    # Sinus: respiratory modulation plus a little jitter (CV well below 0.06).
    f_resp, a_resp = rng.uniform(0.15, 0.35), rng.uniform(0.005, 0.03)
    t = np.cumsum(np.full(n, mean_rr))
    return (
        mean_rr
        * (1 + a_resp * np.sin(2 * np.pi * f_resp * t + rng.uniform(0, 2 * np.pi)))
        * (1 + rng.normal(0, 0.006, n))
    )


def _f_waves(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Fibrillatory atrial activity [3, n]: 350-600/min, drifting in rate and amplitude."""
    f0 = rng.uniform(5.9, 9.8)
    drift = 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(f0 + drift) * (t[1] - t[0]) if t.size > 1 else np.zeros_like(t)
    env = 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3))
    wave = np.sin(phase) + 0.35 * np.sin(2 * phase + rng.uniform(0, 6.3))
    direction = _unit(np.array([-0.4, 0.15, -0.85]) + rng.normal(0, 0.1, 3))  # strongest in V1
    amp = rng.uniform(0.025, 0.12)
    return amp * direction[:, None] * (env * wave)[None, :]  # [3, 1] * [1, n] -> [3, n]


def _noise(rng: np.random.Generator, t: np.ndarray, fs: float) -> np.ndarray:
    """Noise for the 8 independent leads [8, n]: baseline wander, mains hum, muscle (EMG)."""
    n = t.size
    out = np.zeros((8, n))
    wander_amp = rng.uniform(0.02, 0.35)
    for _ in range(2):
        f = rng.uniform(0.05, 0.5)
        ph = rng.uniform(0, 2 * np.pi, (8, 1))
        out += wander_amp / 2 * rng.uniform(0.3, 1.0, (8, 1)) * np.sin(2 * np.pi * f * t[None, :] + ph)
    mains = 50.0 if rng.random() < 0.5 else 60.0
    if mains < fs / 2:
        hum = rng.uniform(0.0, 0.04) * rng.uniform(0.3, 1.0, (8, 1))
        out += hum * np.sin(2 * np.pi * mains * t[None, :] + rng.uniform(0, 2 * np.pi))
    emg = rng.uniform(0.003, 0.03)
    out += lowpass(rng.normal(0.0, emg, (8, n)), fs, min(150.0, 0.45 * fs))
    return out


def simulate(
    rng: np.random.Generator,
    labels: dict[str, int] | Iterable[str] | None = None,
    *,
    fs: float = 500.0,
    duration: float = 10.0,
    noise: bool = True,
) -> ECGRecord:
    """Simulate one 12-lead ECG record.

    Args:
        rng: random generator; the same generator state gives the same record.
        labels: which classes to show: a 0/1 dict or an iterable of names from `edgeecg.LABELS`
            (NORM or empty means a normal ECG). None draws them with `sample_labels`.
        fs: sampling rate in Hz.
        duration: length in seconds.
        noise: add baseline wander, mains hum and muscle noise.

    Returns:
        An ECGRecord (signal float32 [12, n] mV in `edgeecg.LEADS` order, record="sim", source="sim") whose
        meta holds hr (bpm), pr, qrs, qt, qtc (ms; pr None in AF), p_axis, qrs_axis, t_axis (deg, measured
        on the clean beat), rr (s), subtypes, diagnoses, age and sex.
    """
    labels = sample_labels(rng) if labels is None else _normalise_labels(labels)
    n = int(round(duration * fs))
    if labels["AF"]:
        hr = float(rng.uniform(65, 135))
    elif labels["CD"]:
        hr = float(np.clip(rng.normal(70, 10), 50, 88))  # room for a long PR before the next T ends
    else:
        hr = float(np.clip(rng.normal(74, 14), 50, 110))
    beat, _ = _design(rng, labels, 60.0 / hr, fs)
    tpl = _Template(beat, fs)
    wave = tpl.total()[[0, 1, 6, 7, 8, 9, 10, 11]]  # [8, m] independent leads of one beat
    t0 = tpl.t[0]

    # Beat times (QRS onsets): the first beat may start before the record so the page starts mid-cycle.
    rr = _rr_sequence(rng, bool(labels["AF"]), hr, duration + 2.5)
    onsets = -rng.uniform(0.0, rr[0]) + np.concatenate([[0.0], np.cumsum(rr)])
    onsets = onsets[onsets < duration - t0]
    resp = rng.uniform(0.0, 0.06)  # QRS amplitude modulated by breathing
    phase = rng.uniform(0, 2 * np.pi)
    sig8 = np.zeros((8, n))
    for on in onsets:
        start = int(round((on + t0) * fs))
        lo, hi = max(0, start), min(n, start + wave.shape[1])
        if hi > lo:
            gain = 1.0 + resp * math.sin(2 * math.pi * 0.25 * on + phase)
            sig8[:, lo:hi] += gain * wave[:, lo - start : hi - start]
    t = np.arange(n) / fs
    if labels["AF"]:
        sig8 += _DOWER @ _f_waves(rng, t)  # [8, 3] @ [3, n] -> [8, n]
    if noise:
        sig8 += _noise(rng, t, fs)
    signal = _to_leads(sig8).astype(np.float32)  # [12, n]

    inside = onsets[(onsets >= 0) & (onsets < duration)]
    meta = _meta(beat, tpl, labels, np.diff(inside), rng)
    return ECGRecord(signal=signal, fs=float(fs), labels=labels, record="sim", source="sim", meta=meta)


def _axis(sig: np.ndarray) -> float:
    """Frontal axis (deg) from the net areas of I and aVF of a [12, n] part."""
    i, avf = sig[LEADS.index("I")].sum(), sig[LEADS.index("aVF")].sum()
    return float(round(math.degrees(math.atan2(avf, i))))


def _meta(beat: _Beat, tpl: _Template, labels: dict[str, int], rr: np.ndarray, rng) -> dict:
    hr = 60.0 / float(np.mean(rr)) if rr.size else 60.0 / beat.qt
    mean_rr = 60.0 / hr
    rhythm = []
    if not labels["AF"]:
        rhythm = ["Sinus bradycardia" if hr < 60 else "Sinus tachycardia" if hr > 100 else "Sinus rhythm"]
    diagnoses = rhythm + beat.diagnoses
    if labels.get("NORM"):
        diagnoses.append("Normal ECG")
    return {
        "hr": int(round(hr)),
        "pr": None if not beat.p else int(round(beat.pr * 1000)),
        "qrs": int(round(beat.qrs_dur * 1000)),
        "qt": int(round(beat.qt * 1000)),
        "qtc": int(round(beat.qt / math.sqrt(mean_rr) * 1000)),
        "p_axis": _axis(tpl.leads["p"]) if beat.p else None,
        "qrs_axis": _axis(tpl.leads["qrs"]),
        "t_axis": _axis(tpl.leads["t"] + tpl.leads["st"]),
        "rr": [round(float(x), 4) for x in rr],
        "subtypes": list(beat.subtypes),
        "diagnoses": diagnoses,
        "age": int(rng.integers(20, 90)),
        "sex": "M" if rng.random() < 0.55 else "F",
    }


# ------------------------------------------------------------------------------------------------ DSP


def lowpass(x: np.ndarray, fs: float, cutoff: float, order: int = 6) -> np.ndarray:
    """Zero-phase low-pass along the last axis (FFT with a Butterworth-shaped magnitude).

    The signal is mirrored at both ends first so the circular FFT does not wrap one end into the other.

    Args:
        x: array [..., n].
        fs: sampling rate in Hz.
        cutoff: -3 dB frequency in Hz.
        order: steepness of the Butterworth magnitude response.

    Returns:
        The filtered array, same shape, float64.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    pad = min(n - 1, int(fs))  # one second of mirror padding
    xp = np.concatenate([x[..., pad:0:-1], x, x[..., -2 : -pad - 2 : -1]], axis=-1) if pad > 0 else x
    f = np.fft.rfftfreq(xp.shape[-1], 1.0 / fs)
    h = 1.0 / np.sqrt(1.0 + (f / cutoff) ** (2 * order))
    y = np.fft.irfft(np.fft.rfft(xp, axis=-1) * h, n=xp.shape[-1], axis=-1)
    return y[..., pad : pad + n]
