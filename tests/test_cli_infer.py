"""`edgeecg infer`: JSONL and table output, one-line errors for bad inputs and bundles, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from fixtures.sheets import scene
from test_io import png_bytes

from edgeecg import LABELS
from edgeecg.cli import main

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "bundle_tiny"
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "edgeecg.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    cv2.imwrite(str(d / "a_good.png"), scene())
    cv2.imwrite(str(d / "b_desk.jpg"), scene(box=None))
    (d / "c_text.png").write_text("this is not an image\n")
    (d / "d_empty.jpg").write_bytes(b"")
    data = cv2.imencode(".jpg", scene(seed=3))[1].tobytes()
    (d / "e_truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "f_bomb.png").write_bytes(png_bytes(30000, 30000, 1, 0, bytes(30000 // 8)))
    cv2.imwrite(str(d / "g_good16.png"), (scene(seed=5).astype("uint16") * 257))
    return d


def test_json_lines_for_a_directory_with_bad_files(inputs):
    proc = cli("infer", str(inputs), "--bundle", str(BUNDLE), "--json", "--threads", "1", "--batch", "3")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    by_name = {Path(x["image"]).name: x for x in lines}
    assert list(by_name) == sorted(p.name for p in inputs.iterdir())
    for good in ("a_good.png", "g_good16.png"):
        assert list(by_name[good]["probabilities"]) == list(LABELS) and not by_name[good]["rejected"]
    assert by_name["b_desk.jpg"]["rejected"] is True and by_name["b_desk.jpg"]["probabilities"] is None
    expect = {
        "c_text.png": "not an image",
        "d_empty.jpg": "0 bytes",
        "e_truncated.jpg": "truncated",
        "f_bomb.png": "MP limit",
    }
    for name, words in expect.items():
        assert set(by_name[name]) == {"image", "error"} and words in by_name[name]["error"], by_name[name]
    assert "5 inputs failed" not in proc.stderr and "4 of 7 inputs failed" in proc.stderr


def test_table_for_one_image_exit_0(inputs, tmp_path):
    proc = cli("infer", str(inputs / "a_good.png"), "--bundle", str(BUNDLE), "--save-debug", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    assert header.split()[:2] == ["image", "result"] and header.split()[2:7] == list(LABELS)
    assert row.startswith(str(inputs / "a_good.png")[-35:]) or row.startswith("…")
    assert (tmp_path / "a_good.debug.png").is_file()
    assert proc.stderr == ""


def test_bundle_sha256_mismatch_is_one_line(tmp_path, inputs):
    b = Path(shutil.copytree(BUNDLE, tmp_path / "b"))
    with open(b / "detector.onnx", "ab") as f:
        f.write(b"tampered")
    proc = cli("infer", str(inputs / "a_good.png"), "--bundle", str(b))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "detector.onnx does not match its manifest sha256" in proc.stderr


def test_unknown_manifest_format_is_one_line(tmp_path, inputs):
    b = Path(shutil.copytree(BUNDLE, tmp_path / "b"))
    m = json.loads((b / "manifest.json").read_text())
    m["format"] = "someone-elses/3"
    (b / "manifest.json").write_text(json.dumps(m))
    proc = cli("infer", str(inputs / "a_good.png"), "--bundle", str(b))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "edgeecg infer: error: unknown bundle format 'someone-elses/3': this edgeecg reads 'edgeecg-bundle/1'"
    )


@pytest.mark.parametrize(
    "args,words",
    [
        (["--batch", "0"], "--batch must be at least 1"),
        (["--backend", "openvino"], "invalid choice"),
        (["--nope"], "unrecognized arguments"),
    ],
)
def test_bad_usage_exit_2(inputs, capsys, args, words):
    code = _main_exit(["infer", str(inputs / "a_good.png"), "--bundle", str(BUNDLE), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def _main_exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_no_inputs_found(tmp_path, capsys):
    assert _main_exit(["infer", str(tmp_path), "--bundle", str(BUNDLE)]) == 2
    assert "no input images found" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys):
    assert _main_exit(["infer", "--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "some inputs failed" in out and "--max-pixels" in out


def test_max_pixels_option(inputs, capsys):
    code = _main_exit(
        ["infer", str(inputs / "a_good.png"), "--bundle", str(BUNDLE), "--json", "--max-pixels", "1000"]
    )
    assert code == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert "MP limit" in json.loads(line)["error"]


def test_results_stream_before_the_run_ends(tmp_path):
    for i in range(40):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), scene(seed=i))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeecg.cli",
            "infer",
            str(tmp_path),
            "--bundle",
            str(BUNDLE),
            "--json",
            "--batch",
            "1",
            "--threads",
            "1",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        first = proc.stdout.readline()
        still_running = proc.poll() is None
        rest = proc.stdout.read()
    finally:
        proc.wait(timeout=120)
    assert json.loads(first)["image"].endswith("00.png")
    assert still_running, "the first result was only written when the run ended"
    assert len(rest.splitlines()) == 39 and proc.returncode == 0


def test_missing_default_bundle_message(inputs, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("edgeecg.pipeline.default_bundle_dir", lambda: tmp_path / "no-bundle")
    assert _main_exit(["infer", str(inputs / "a_good.png")]) == 1
    err = capsys.readouterr().err
    assert "default model bundle is not installed" in err and "--bundle" in err


def test_progress_bar_on_stderr_for_several_inputs(inputs):
    t0 = time.perf_counter()
    proc = cli(
        "infer", str(inputs / "a_good.png"), str(inputs / "b_desk.jpg"), "--bundle", str(BUNDLE), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert "img" in proc.stderr and "Traceback" not in proc.stderr  # tqdm's bar
    assert len(proc.stdout.splitlines()) == 2
    assert time.perf_counter() - t0 < 60
