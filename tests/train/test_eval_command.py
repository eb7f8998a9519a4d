"""`edgeecg eval DATASET --bundle DIR` on the tiny fixture bundle (real ONNX Runtime sessions)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edgeecg import LABELS
from edgeecg.cli import main
from edgeecg.commands.eval import build_report
from edgeecg.metrics import macro_auroc

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_tiny"


@pytest.mark.skipif(not (BUNDLE / "manifest.json").is_file(), reason="tiny fixture bundle not built")
def test_eval_report_matches_its_predictions(tiny_dataset, tmp_path, capsys):
    rc = main(["eval", str(tiny_dataset), "--bundle", str(BUNDLE), "--out", str(tmp_path), "--json"])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert json.loads(capsys.readouterr().out)["n_images"] == 32
    n = report["ensemble_mean"]["n"]
    assert n + report["n_rejected"] + report["n_failed"] == 32
    with open(tmp_path / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([[int(r[k]) for k in LABELS] for r in rows])
    p = np.array([[float(r[f"p_{k}"]) for k in LABELS] for r in rows])
    assert report["ensemble_mean"]["macro_auroc"] == pytest.approx(macro_auroc(y, p), abs=1e-5)
    assert "ensemble_votes" in report and len(report["members"]) == 2


def test_build_report_votes_use_member_probabilities():
    y = np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    members = np.array(
        [
            [[0.9, 0, 0, 0, 0], [0.6, 0, 0, 0, 0]],
            [[0.8, 0, 0, 0, 0], [0.1, 0, 0, 0, 0]],
            [[0.2, 0, 0, 0, 0], [0.1, 0, 0, 0, 0]],
        ]
    )  # [M=3, n=2, C=5]
    rep = build_report(y, members.mean(axis=0), members, np.full(5, 0.5))
    assert rep["ensemble_votes"]["per_class"]["MI"]["sensitivity"] == 1.0  # 2 of 3 members vote MI on row 0
    assert rep["ensemble_votes"]["per_class"]["MI"]["specificity"] == 1.0  # 1 of 3 on row 1: no
    assert len(rep["members"]) == 3
