"""`edgeecg synth`: the dataset directory, determinism across worker counts, YOLO labels, bad arguments."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgeecg import LABELS
from edgeecg.cli import main
from edgeecg.errors import UsageError
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


def test_layout_and_labels(small_set, load_script):
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
    # each ECG page names its layout, and the lead boxes agree with it
    layout_of = load_script("subtype_report").layout_of
    for g in geos:
        if g["paper_quad"] is not None:
            assert g["layout"] == layout_of(g["lead_boxes"]), g["image"]
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
        (["--n", "3", "--aspect", "1-2"], "--aspect needs --size"),
        (["--n", "3", "--size", "400x300", "--aspect", "wide"], "--aspect must look like"),
        (["--n", "3", "--size", "400x300", "--aspect", "2-1"], "--aspect must be LO-HI"),
        (["--n", "3", "--bare-pages", "1.5"], "--bare-pages must be a fraction"),
        (["--n", "3", "--varied-layout", "-0.1"], "--varied-layout must be a fraction"),
        (["--n", "3", "--weathered", "-0.1"], "--weathered must be a fraction"),
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


def test_frame_shapes_keep_the_area_and_leave_the_rest_alone(tmp_path, small_set):
    out, _ = small_set
    # a range of one shape, the shape of --size: the same bytes as without --aspect (its own random stream)
    same = tmp_path / "same"
    cfg = dict(n=12, seed=3, style="mix", size=(320, 240), negatives=0.25)
    write_dataset(SynthConfig(out=str(same), aspect=(4 / 3, 4 / 3), **cfg), progress=False)
    assert _digest(same) == _digest(out)

    wide = tmp_path / "wide"
    write_dataset(SynthConfig(out=str(wide), aspect=(0.75, 2.6), **cfg), progress=False)
    geos = [json.loads(line) for line in (wide / "geometry.jsonl").read_text().splitlines()]
    shapes = [g["width"] / g["height"] for g in geos]
    assert all(0.74 <= a <= 2.62 for a in shapes) and max(shapes) - min(shapes) > 0.5
    assert all(abs(g["width"] * g["height"] / (320 * 240) - 1) < 0.02 for g in geos)
    for g in geos:  # YOLO labels are normalised by each frame's own size
        img = cv2.imread(str(wide / g["image"]))
        assert img.shape[:2] == (g["height"], g["width"])
        line = (wide / "labels" / (g["image"].split("/")[1][:-4] + ".txt")).read_text().split()
        if g["paper_box"] is not None:
            x0, y0, x1, y1 = np.clip(g["paper_box"], 0, [g["width"], g["height"]] * 2)
            assert float(line[3]) == pytest.approx((x1 - x0) / g["width"], abs=1e-4)


def test_bare_pages_drop_header_and_calibration_pulse_only(tmp_path):
    cfg = dict(n=10, seed=8, style="clean")
    plain, bare = tmp_path / "plain", tmp_path / "bare"
    write_dataset(SynthConfig(out=str(plain), **cfg), progress=False)
    write_dataset(SynthConfig(out=str(bare), bare=1.0, **cfg), progress=False)
    rows = [(plain / "labels.csv").read_text(), (bare / "labels.csv").read_text()]
    assert rows[0] == rows[1]  # the same records and labels
    g0 = [json.loads(x) for x in (plain / "geometry.jsonl").read_text().splitlines()]
    g1 = [json.loads(x) for x in (bare / "geometry.jsonl").read_text().splitlines()]
    moved = 0
    for a, b in zip(g0, g1, strict=True):
        # without a header the rows start higher, without the pulse the traces start further left
        (ax, ay), (bx, by) = (np.array(a["lead_boxes"]["I"][:2]) / a["px_per_mm"],
                              np.array(b["lead_boxes"]["I"][:2]) / b["px_per_mm"])  # fmt: skip
        assert bx <= ax + 0.1 and by <= ay + 0.1
        moved += (bx < ax - 1) + (by < ay - 1)
    assert moved >= 10


def test_varied_layout_changes_only_the_pages_it_draws(tmp_path):
    cfg = dict(n=12, seed=9, style="clean", size=(320, 240))
    plain, varied = tmp_path / "plain", tmp_path / "varied"
    write_dataset(SynthConfig(out=str(plain), **cfg), progress=False)
    write_dataset(SynthConfig(out=str(varied), varied=0.5, **cfg), progress=False)
    assert (plain / "labels.csv").read_text() == (varied / "labels.csv").read_text()
    g0 = [json.loads(x) for x in (plain / "geometry.jsonl").read_text().splitlines()]
    g1 = [json.loads(x) for x in (varied / "geometry.jsonl").read_text().splitlines()]
    same = [
        (plain / a["image"]).read_bytes() == (varied / b["image"]).read_bytes()
        for a, b in zip(g0, g1, strict=True)
    ]
    # its own random stream: the pages it leaves alone are byte-identical, the others are laid out anew
    assert 2 <= same.count(False) <= 10
    for a, b, s in zip(g0, g1, same, strict=True):
        assert (a["lead_boxes"] == b["lead_boxes"]) == s
        assert a["paper_quad"] == b["paper_quad"]  # the sheet itself lies where it did


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


def test_weathered_images_change_only_the_pixels(tmp_path):
    cfg = dict(n=8, seed=11, style="photo", size=(480, 360))
    plain, half, worn = tmp_path / "plain", tmp_path / "half", tmp_path / "worn"
    write_dataset(SynthConfig(out=str(plain), **cfg), progress=False)
    write_dataset(SynthConfig(out=str(half), weathered=0.5, **cfg), progress=False)
    write_dataset(SynthConfig(out=str(worn), weathered=1.0, **cfg), progress=False)
    for d in (half, worn):  # labels and geometry (photometric only) are those of the plain set
        assert (d / "labels.csv").read_text() == (plain / "labels.csv").read_text()
        assert (d / "geometry.jsonl").read_text() == (plain / "geometry.jsonl").read_text()
    same = [
        (plain / "images" / f.name).read_bytes() == f.read_bytes()
        for f in sorted((half / "images").iterdir())
    ]
    assert 0 < sum(same) < len(same)  # some images kept byte for byte, some weathered
    assert not any(
        (plain / "images" / f.name).read_bytes() == f.read_bytes()
        for f in sorted((worn / "images").iterdir())
    )


def test_worn_images_change_only_the_pixels_and_leave_the_weathered_ones(tmp_path):
    cfg = dict(n=8, seed=11, style="photo", size=(480, 360), weathered=0.5)
    base, worn = tmp_path / "base", tmp_path / "worn"
    write_dataset(SynthConfig(out=str(base), **cfg), progress=False)
    write_dataset(SynthConfig(out=str(worn), worn=0.5, **cfg), progress=False)
    assert (worn / "labels.csv").read_text() == (base / "labels.csv").read_text()
    assert (worn / "geometry.jsonl").read_text() == (base / "geometry.jsonl").read_text()
    same = [
        (base / "images" / f.name).read_bytes() == f.read_bytes() for f in sorted((worn / "images").iterdir())
    ]
    assert 0 < sum(same) < len(same)  # a stream of its own: the rest stay byte for byte
    with pytest.raises(UsageError, match="--worn"):
        SynthConfig(out=str(tmp_path / "x"), n=1, worn=1.5).check()
