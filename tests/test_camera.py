"""Camera loop: driven by a real MJPG video of drawn scenes (sheet appears, moves, holds still, is replaced)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.sheets import scene

from edgeecg.camera import CameraConfig, CameraLoop, SheetTracker, box_iou, parse_source, sharpness
from edgeecg.errors import InputError
from edgeecg.pipeline import Pipeline

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "bundle_tiny"
ROOT = Path(__file__).resolve().parents[1]
HELD_A = (150, 94, 450, 314)
HELD_B = (40, 30, 300, 230)


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def story() -> list[np.ndarray]:
    """0-4 empty desk; 5-12 sheet A moving; 12-27 A held still; 28-42 sheet B elsewhere; 43-47 empty."""
    frames = [scene(box=None) for _ in range(5)]
    frames += [scene(box=(10 + 20 * i, 10 + 12 * i, 310 + 20 * i, 230 + 12 * i), seed=1) for i in range(8)]
    frames += [scene(box=HELD_A, seed=1) for _ in range(15)]
    frames += [scene(box=HELD_B, seed=2) for _ in range(15)]
    frames += [scene(box=None) for _ in range(5)]
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return _write_video(tmp_path_factory.mktemp("video") / "story.avi", story())


@pytest.fixture(scope="module")
def pipe():
    with Pipeline.from_bundle(BUNDLE, backend="onnxruntime", threads=1, batch_size=1) as p:
        yield p


def run_loop(pipe, source, **cfg) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    loop = CameraLoop(
        pipe,
        str(source),
        CameraConfig(**{"stats_every": 0, **cfg}),
        out=out,
        display=False,
        stats=err,
        sleep=lambda s: None,
    )
    code = loop.run()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events == [json.loads(json.dumps(e)) for e in loop.events]
    return code, events, err.getvalue()


def test_classified_once_per_steady_sheet(pipe, video):
    code, events, _ = run_loop(pipe, video, steady=5, sharpness=10)
    assert code == 0
    kinds = [(e["event"], e["frame"]) for e in events if e["event"] != "source"]
    results = [f for k, f in kinds if k == "result"]
    assert len(results) == 2, kinds
    assert 16 <= results[0] <= 18, "sheet A: steady from frame 12, classified after 5 steady frames"
    assert 32 <= results[1] <= 34, "sheet B: placed at frame 28, classified after 5 steady frames"
    assert not any(5 <= f < 16 for f in results), "never classified while moving"
    assert ("changed", 28) in kinds and ("lost", 43) in kinds
    first = next(e for e in events if e["event"] == "result")
    assert np.allclose(first["box"], HELD_A, atol=16) and set(first["probabilities"]) == {
        "MI",
        "AF",
        "HYP",
        "CD",
        "STTC",
    }
    assert (
        events[0]["status"] == "opened"
        and events[-2]["status"] == "ended"
        and events[-1]["event"] == "stopped"
    )
    assert events[-1]["frames"] == 48


def test_every_kth_frame(pipe, video):
    _, events, _ = run_loop(pipe, video, steady=3, every=2, sharpness=10)
    results = [e for e in events if e["event"] == "result"]
    assert len(results) == 2 and all(e["frame"] % 2 == 0 for e in results)
    assert events[-1]["processed"] == 24


def test_blurry_sheet_is_not_classified(pipe, tmp_path):
    frames = [cv2.GaussianBlur(scene(box=HELD_A), (0, 0), 6) for _ in range(10)]
    video = _write_video(tmp_path / "blur.avi", frames)
    s_blur = sharpness(frames[0], HELD_A)
    s_sharp = sharpness(scene(box=HELD_A), HELD_A)
    assert s_blur * 5 < s_sharp
    _, events, _ = run_loop(pipe, video, steady=3, sharpness=(s_blur + s_sharp) / 2)
    assert not [e for e in events if e["event"] == "result"]
    _, events, _ = run_loop(pipe, video, steady=3, sharpness=0.5)  # the gate, not the detector, held it back
    assert len([e for e in events if e["event"] == "result"]) == 1


def test_stats_lines_on_stderr(pipe, video):
    out, err = io.StringIO(), io.StringIO()
    CameraLoop(pipe, str(video), CameraConfig(stats_every=1e-9), out=out, display=False, stats=err).run()
    line = err.getvalue().splitlines()[0]
    assert "fps" in line and "ms" in line


def test_lost_live_source_backs_off_then_gives_up(pipe):
    delays: list[float] = []
    loop = CameraLoop(
        pipe,
        "/dev/video-does-not-exist",
        CameraConfig(max_reconnects=4, reconnect_delay=0.5, max_reconnect_delay=1.5, stats_every=0),
        out=io.StringIO(),
        display=False,
        sleep=delays.append,
    )
    assert loop.run() == 1
    assert delays == [0.5, 1.0, 1.5, 1.5]
    kinds = [e.get("status", e["event"]) for e in loop.events]
    assert kinds == ["unavailable", "reconnect", "reconnect", "reconnect", "reconnect", "lost"]


def test_unreadable_video_file(pipe, tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"definitely not a video" * 10)
    with pytest.raises(InputError, match="cannot open as a video"):
        CameraLoop(pipe, str(bad), CameraConfig(), out=io.StringIO(), display=False).run()


def test_tracker_logic():
    t = SheetTracker(steady=3, iou=0.9)
    a, b = [0, 0, 100, 100], [50, 50, 150, 150]
    assert [t.update(a, True) for _ in range(4)] == [[], [], ["classify"], []]
    assert t.update(b, True) == ["changed"]
    assert t.update(None, True) == ["lost"]
    assert [t.update(a, False) for _ in range(4)] == [[], [], [], []], "not sharp: never classified"
    assert t.update(a, True) == ["classify"]
    assert box_iou(a, a) == 1.0 and box_iou(a, b) == pytest.approx(2500 / 17500)


def test_parse_source():
    assert parse_source("0") == 0 and parse_source("/dev/video2") == "/dev/video2"
    assert parse_source("rtsp://cam/stream") == "rtsp://cam/stream"


def test_cli_sigterm_exits_cleanly(tmp_path):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeecg.cli",
            "camera",
            "--source",
            "/dev/video-does-not-exist",
            "--bundle",
            str(BUNDLE),
            "--out",
            str(tmp_path / "ev.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        for _ in range(300):  # wait for the loop (and its signal handlers) to be running
            if (tmp_path / "ev.jsonl").is_file() and "reconnect" in (tmp_path / "ev.jsonl").read_text():
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert events[0]["status"] == "unavailable" and events[1]["event"] == "reconnect"


def test_cli_video_file_to_jsonl(tmp_path, video):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeecg.cli",
            "camera",
            "--source",
            str(video),
            "--headless",
            "--bundle",
            str(BUNDLE),
            "--sharpness",
            "10",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["frame"] for e in events if e["event"] == "result"] == [16, 32]
