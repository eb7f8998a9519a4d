"""`edgeecg synth`: the dataset directory, determinism across worker counts, YOLO labels, bad arguments."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from edgeecg import LABELS
from edgeecg.cli import main
from edgeecg.synth.dataset import SynthConfig, write_dataset


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in ("synth.json", "data.yaml"):  # these name the directory
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "set"
    summary = write_dataset(
        SynthConfig(out=str(out), n=12, seed=3, style="mix", size=(320, 240), negatives=0.25), progress=False
    )
    return out, summary


def test_layout_and_labels(small_set):
    out, summary = small_set
    rows = list(csv.DictReader((out / "labels.csv").read_text().splitlines()))
    geos = [json.loads(line) for line in (out / "geometry.jsonl").read_text().splitlines()]
    assert len(geos) == 12 == len(list((out / "images").iterdir())) == len(list((out / "labels").iterdir()))
    assert len(rows) == summary["ecg_images"] == 12 - summary["negatives"]
    assert summary["negatives"] > 0, "a quarter of 12 images should include negatives"
    for row in rows:
        assert (out / row["image"]).is_file()
        assert all(row[k] in ("0", "1") for k in LABELS)
        assert row["NORM"] == ("1" if not any(int(row[k]) for k in LABELS) else "0")
    by_image = {g["image"]: g for g in geos}
    for g in geos:
        label = (out / "labels" / (g["image"].split("/")[-1].rsplit(".", 1)[0] + ".txt")).read_text().split()
        if g["paper_quad"] is None:
            assert label == [] and g["image"] not in {r["image"] for r in rows}
            continue
        quad = np.array(g["paper_quad"])
        assert quad.shape == (4, 2)
        # clockwise from the top-left in image coordinates: positive shoelace area with y pointing down
        x, y = quad[:, 0], quad[:, 1]
        assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0
        vals = [float(v) for v in label]
        assert len(vals) == 1 + 4 + 4 * 3 and vals[0] == 0
        assert all(0 <= v <= 1 for v in vals[1:5])
        for k in range(4):
            kx, ky, vis = vals[5 + 3 * k : 8 + 3 * k]
            if vis == 2:
                assert kx * g["width"] == pytest.approx(quad[k, 0], abs=0.01)
                assert ky * g["height"] == pytest.approx(quad[k, 1], abs=0.01)
    assert set(by_image) >= {r["image"] for r in rows}
    data = (out / "data.yaml").read_text()
    assert "kpt_shape: [4, 3]" in data and "flip_idx: [1, 0, 3, 2]" in data


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, small_set):
    out, _ = small_set
    again = tmp_path / "again"
    write_dataset(
        SynthConfig(out=str(again), n=12, seed=3, style="mix", size=(320, 240), negatives=0.25, workers=2),
        progress=False,
    )
    assert _digest(again) == _digest(out)
    other = tmp_path / "other"
    write_dataset(SynthConfig(out=str(other), n=12, seed=4, style="mix", size=(320, 240)), progress=False)
    assert _digest(other) != _digest(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--n", "3", "--style", "watercolour"], "--style must be one of"),
        (["--n", "3", "--size", "big"], "--size must look like"),
        (["--n", "3", "--workers", "0"], "--workers must be at least 1"),
        (["--n", "3", "--records", "/nonexistent/records"], "is not a directory"),
        (["--n", "x"], "invalid int value"),
    ],
)
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, args, message):
    assert _main(["synth", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_refuses_non_empty_out(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert _main(["synth", "--out", str(tmp_path), "--n", "2"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_cli_subprocess_writes_and_reports(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "edgeecg.cli", "synth", "--out", str(tmp_path / "d"), "--n", "2", "--json",
         "--style", "clean", "--size", "400x300", "--no-progress"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["images"] == 2 and summary["ecg_images"] == 2


def _main(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        return exc.code


def test_renders_real_records_with_their_labels(tmp_path, realdata):
    out = tmp_path / "real"
    write_dataset(
        SynthConfig(
            out=str(out), n=4, seed=1, style="clean", size=(400, 300), records=str(realdata / "records")
        ),
        progress=False,
    )
    truth = {
        r["record"]: r for r in csv.DictReader((realdata / "records" / "labels.csv").read_text().splitlines())
    }
    rows = list(csv.DictReader((out / "labels.csv").read_text().splitlines()))
    assert len(rows) == 4
    for row in rows:
        assert row["source"] != "sim"
        if row["record"] in truth:  # 00001_lr's labels come from the PTB-XL database, not labels.csv
            assert all(row[k] == truth[row["record"]][k] for k in LABELS), row["record"]
