"""Benchmark settings: fixed thread counts and passive OpenMP waits on these noisy 2-core machines."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
