"""SNOMED-CT codes (PhysioNet/CinC `# Dx:` lines) mapped to the PTB-XL diagnostic superclasses.

Strict PTB-XL semantics: only statements that PTB-XL files under a diagnostic class count. Rhythm
statements other than AF (atrial flutter, PACs, PVCs, tachycardias) and form statements (ST depression,
T-wave abnormality or inversion, voltage-only LVH, Q waves, axis deviation, poor R progression) add no
class. NORM is set when no class is present and every code is a sinus rhythm statement.
"""

from __future__ import annotations

from collections.abc import Iterable

from edgeecg import LABELS

#: SNOMED-CT code -> superclass (MI, AF, HYP, CD, STTC).
SNOMED_CLASS: dict[str, str] = {
    # AF (PTB-XL AFIB); atrial flutter (164890007) is deliberately absent.
    "164889003": "AF",  # atrial fibrillation
    "426749004": "AF",  # chronic atrial fibrillation
    "282825002": "AF",  # paroxysmal atrial fibrillation
    "314208002": "AF",  # rapid atrial fibrillation
    # MI (PTB-XL IMI, AMI, LMI, PMI and subendocardial injury)
    "164865005": "MI",  # myocardial infarction
    "57054005": "MI",  # acute myocardial infarction
    "54329005": "MI",  # anterior myocardial infarction
    "164867002": "MI",  # old myocardial infarction
    "73795002": "MI",  # acute myocardial infarction of inferior wall
    "233843008": "MI",  # silent myocardial infarction
    # HYP (PTB-XL LVH, RVH, LAO/LAE, RAO/RAE, SEHYP)
    "164873001": "HYP",  # left ventricular hypertrophy
    "89792004": "HYP",  # right ventricular hypertrophy
    "266249003": "HYP",  # ventricular hypertrophy
    "67741000119109": "HYP",  # left atrial enlargement
    "253352002": "HYP",  # left atrial abnormality
    "446813000": "HYP",  # left atrial hypertrophy
    "253339007": "HYP",  # right atrial abnormality
    "446358003": "HYP",  # right atrial hypertrophy
    "67751000119106": "HYP",  # right atrial high voltage
    "195126007": "HYP",  # atrial hypertrophy
    # CD (PTB-XL bundle branch and fascicular blocks, AV blocks, IVCD, WPW)
    "59118001": "CD",  # right bundle branch block
    "713427006": "CD",  # complete right bundle branch block
    "713426002": "CD",  # incomplete right bundle branch block
    "164909002": "CD",  # left bundle branch block
    "733534002": "CD",  # complete left bundle branch block
    "251120003": "CD",  # incomplete left bundle branch block
    "6374002": "CD",  # bundle branch block
    "270492004": "CD",  # first degree AV block
    "195042002": "CD",  # second degree AV block
    "54016002": "CD",  # Mobitz I
    "426183003": "CD",  # Mobitz II
    "27885002": "CD",  # complete heart block
    "233917008": "CD",  # AV block
    "445118002": "CD",  # left anterior fascicular block
    "445211001": "CD",  # left posterior fascicular block
    "698252002": "CD",  # nonspecific intraventricular conduction disorder
    "82226007": "CD",  # diffuse intraventricular block
    "74390002": "CD",  # Wolff-Parkinson-White pattern
    "195060002": "CD",  # ventricular pre-excitation
    # STTC (PTB-XL NDT, NST_, ISC_*, LNGQT, DIG, EL, ANEUR)
    "428750005": "STTC",  # nonspecific ST-T abnormality
    "55930002": "STTC",  # ST changes
    "111975006": "STTC",  # prolonged QT interval
    "164861001": "STTC",  # myocardial ischemia
    "413444003": "STTC",  # acute myocardial ischemia
    "413844008": "STTC",  # chronic myocardial ischemia
    "426434006": "STTC",  # anterior ischemia (PTB-XL ISCAN)
    "425419005": "STTC",  # inferior ischaemia
    "425623009": "STTC",  # lateral ischaemia
    "370365005": "STTC",  # left ventricular strain
}

#: Sinus rhythm statements compatible with a normal ECG.
SINUS_CODES: frozenset[str] = frozenset(
    {
        "426783006",  # sinus rhythm
        "426177001",  # sinus bradycardia
        "427084000",  # sinus tachycardia
        "427393009",  # sinus arrhythmia
    }
)


def snomed_to_superclasses(codes: Iterable[str]) -> dict[str, int]:
    """Map SNOMED-CT codes to 0/1 superclass labels.

    Args:
        codes: SNOMED-CT concept ids as strings (whitespace ignored).

    Returns:
        0/1 for each of `edgeecg.LABELS` plus "NORM" (1 when no class is present and every code is a
        sinus rhythm statement; an empty code list gives NORM 0, since nothing says the ECG is normal).
    """
    codes = [str(c).strip() for c in codes if str(c).strip()]
    out = {k: 0 for k in LABELS}
    for c in codes:
        cls = SNOMED_CLASS.get(c)
        if cls:
            out[cls] = 1
    out["NORM"] = int(bool(codes) and not any(out.values()) and all(c in SINUS_CODES for c in codes))
    return out
