"""scripts/subtype_report.py: subtypes recovered from a simulator dataset, scored per subtype."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest

from edgeecg import LABELS
from edgeecg.synth.dataset import SynthConfig, write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sub") / "set"
    write_dataset(
        SynthConfig(out=str(out), n=24, seed=5, style="clean", size=(320, 240), workers=1), progress=False
    )
    return out


def _predictions(dataset: Path, path: Path, flip: str | None = None) -> Path:
    rows = list(csv.DictReader((dataset / "labels.csv").open()))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", *LABELS, *(f"p_{k}" for k in LABELS)])
        for r in rows:
            y = [int(r[k]) for k in LABELS]
            if flip and r["image"] == rows[0]["image"]:
                y[LABELS.index(flip)] ^= 1
            # a perfect model for MI, a useless one for the rest
            p = [float(y[0]), 0.5, 0.5, 0.5, 0.5]
            w.writerow([str(dataset / r["image"]), *y, *p])
    return path


def test_perfect_class_scores_one_per_subtype(dataset, tmp_path, load_script):
    rep = load_script("subtype_report").report(_predictions(dataset, tmp_path / "p.csv"), dataset)
    assert rep["MI"]["auroc"] == 1.0
    assert rep["MI"]["subtypes"] and all(v["auroc"] == 1.0 for v in rep["MI"]["subtypes"].values())
    assert any(" MI " in s for s in rep["MI"]["subtypes"])  # territory and age come back
    af = rep["AF"]["auroc"]
    assert af == 0.5 or math.isnan(af)  # all tied, or no AF in so small a set


def _without_findings(dataset: Path, out: Path) -> Path:
    """The same set as written before labels.csv had a findings column."""
    out.mkdir()
    shutil.copy(dataset / "synth.json", out / "synth.json")
    rows = list(csv.DictReader((dataset / "labels.csv").open()))
    keep = [k for k in rows[0] if k != "findings"]
    with (out / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keep, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "images").symlink_to(dataset / "images")
    return out


def test_the_findings_column_matches_the_records_simulated_again(dataset, tmp_path, load_script):
    mod = load_script("subtype_report")
    rows = list(csv.DictReader((dataset / "labels.csv").open()))
    names = [r["image"] for r in rows]
    y = [[int(r[k]) for k in LABELS] for r in rows]
    written = mod.subtypes_of(dataset, names, y)
    assert any(written) and all(isinstance(f, list) for f in written)
    assert mod.subtypes_of(_without_findings(dataset, tmp_path / "old"), names, y) == written


def test_labels_that_do_not_match_the_simulator_are_refused(
    dataset, tmp_path, capsys, monkeypatch, load_script
):
    mod = load_script("subtype_report")
    old = _without_findings(dataset, tmp_path / "old")
    pred = _predictions(old, tmp_path / "p.csv", flip="MI")
    monkeypatch.setattr("sys.argv", ["subtype_report", str(pred), str(old)])
    assert mod.main() == 2
    assert "differ from labels.csv" in capsys.readouterr().err


def test_layout_of_reads_the_renderers_layout_from_lead_boxes_even_tilted(load_script):
    mod = load_script("subtype_report")

    def box(cx, cy, w, h, turn=0.0):  # axis-aligned box around a centre turned by `turn` radians
        x, y = cx * math.cos(turn) - cy * math.sin(turn), cx * math.sin(turn) + cy * math.cos(turn)
        return [x - w / 2, y - h / 2, x + w / 2, y + h / 2]

    for turn in (0.0, 0.35, -0.35):  # +-20 degrees
        assert mod.layout_of({"I": box(0, 0, 200, 40), "II_rhythm": box(300, 120, 800, 40)}) == "3x4"
        six = {"I": box(0, 0, 400, 40, turn), "V1": box(400, 0, 400, 40, turn)}
        twelve = {"I": box(0, 0, 800, 20, turn), "V1": box(0, 150, 800, 20, turn)}
        short = {"I": box(0, 0, 200, 20, turn), "V1": box(0, 150, 200, 20, turn)}  # 2.5 s traces
        assert mod.layout_of(six) == "6x2"
        assert mod.layout_of(twelve) == mod.layout_of(short) == "12x1"


def test_layout_report_scores_every_image_once(dataset, tmp_path, load_script):
    mod = load_script("subtype_report")
    lay = mod.layout_report(_predictions(dataset, tmp_path / "p.csv"), dataset)
    n = len(list(csv.DictReader((dataset / "labels.csv").open())))
    assert lay and set(lay) <= {"3x4", "6x2", "12x1"} and sum(v["n"] for v in lay.values()) == n
    for v in lay.values():  # the perfect MI column stays perfect within every layout that has both kinds
        assert math.isnan(v["auroc"]["MI"]) or v["auroc"]["MI"] == 1.0
