"""edgeecg: classify photos and scans of paper 12-lead ECGs on edge GPUs and CPUs.

Importing this package only defines names: no I/O, no network, no heavy imports.
"""

__version__ = "0.1.0"

#: Output order of every model, dataset and report in this project.
LABELS: tuple[str, ...] = ("MI", "AF", "HYP", "CD", "STTC")

#: The 12 standard leads, in the order used for signals everywhere in edgeecg.
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

__all__ = ["LABELS", "LEADS", "__version__"]
