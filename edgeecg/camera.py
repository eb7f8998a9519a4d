"""Capture-and-classify loop: find the paper in each (k-th) frame, classify once it is steady and sharp.

The loop reads frames with OpenCV (camera index, /dev/videoN, a video file or a stream URL), runs the
pipeline's pre-processing on every k-th frame, and tracks the paper box: a sheet counts as steady after N
processed frames whose box overlaps the previous one with IoU >= `iou`. Once steady and sharp enough
(variance of the Laplacian inside the box), it is classified once and the result is held until the sheet
moves away from where it was classified, or disappears. Events go out as JSONL; a window shows the box,
labels and FPS where a display exists. A live source that drops is reopened with exponential back-off;
the end of a video file is the end of the run. SIGINT/SIGTERM stop the loop cleanly.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from edgeecg.errors import InputError, UsageError
from edgeecg.preprocess.detector import box_iou as pairwise_iou

log = logging.getLogger(__name__)

WINDOW = "edgeecg camera"


@dataclass(frozen=True)
class CameraConfig:
    """Settings of the capture loop.

    Attributes:
        every: run detection on every k-th frame (1: every frame).
        steady: processed frames in a row with a stable box before classifying.
        iou: box IoU with the previous processed frame that counts as "not moving".
        sharpness: minimum variance of the Laplacian inside the box (grey, box resized to 512 px wide).
        stats_every: seconds between FPS/latency lines on stderr (0: none).
        reconnect_delay: first wait before reopening a dropped live source (doubles each try).
        max_reconnect_delay: longest wait between tries.
        max_reconnects: give up after this many failed tries in a row (None: never).
    """

    every: int = 1
    steady: int = 5
    iou: float = 0.9
    sharpness: float = 60.0
    stats_every: float = 5.0
    reconnect_delay: float = 0.5
    max_reconnect_delay: float = 8.0
    max_reconnects: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1 or self.steady < 1:
            raise UsageError("--every and --steady must be at least 1")
        if not 0.0 < self.iou <= 1.0:
            raise UsageError(f"IoU threshold must be in (0, 1], got {self.iou}")


def box_iou(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """IoU of two xyxy boxes (the detector's IoU, one pair)."""
    return float(pairwise_iou(np.asarray(a, np.float64)[None], np.asarray(b, np.float64)[None])[0, 0])


def sharpness(frame: np.ndarray, box: np.ndarray | list[float] | None = None, width: int = 512) -> float:
    """Variance of the Laplacian of the grey crop at `box`, resized to `width` px so the scale is fixed."""
    img = frame
    if box is not None:
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return 0.0
        img = frame[y0:y1, x0:x1]
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    scale = width / grey.shape[1]
    grey = cv2.resize(grey, (width, max(int(round(grey.shape[0] * scale)), 1)), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


class SheetTracker:
    """Decides when to classify: steady for N processed frames and sharp; hold until the sheet changes.

    `update` returns the events of one processed frame: "lost" (the sheet disappeared), "changed" (it
    moved away from where it was classified) and "classify" (classify now).
    """

    def __init__(self, steady: int, iou: float) -> None:
        self.steady, self.iou = steady, iou
        self.prev: np.ndarray | None = None
        self.count = 0
        self.classified_box: np.ndarray | None = None

    def update(self, box: np.ndarray | None, sharp: bool) -> list[str]:
        """Feed one processed frame's paper box (None: no paper) and whether it is sharp enough."""
        events: list[str] = []
        if box is None:
            if self.classified_box is not None or self.prev is not None:
                events.append("lost")
            self.prev, self.count, self.classified_box = None, 0, None
            return events
        box = np.asarray(box, np.float64)
        self.count = self.count + 1 if self.prev is not None and box_iou(box, self.prev) >= self.iou else 1
        self.prev = box
        if self.classified_box is not None and box_iou(box, self.classified_box) < self.iou:
            events.append("changed")
            self.classified_box = None
        if self.classified_box is None and self.count >= self.steady and sharp:
            events.append("classify")
            self.classified_box = box
        return events


def parse_source(source: str) -> int | str:
    """Camera index for "0", "1", ...; anything else (device path, file, URL) as is."""
    return int(source) if source.isdigit() else source


def display_available() -> bool:
    """True when a window can be shown: a display is set (or not needed on this OS) and highgui works."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:  # opencv-python-headless has no GUI backend
        return False
    return True


class CameraLoop:
    """Runs the capture-and-classify loop.

    Args:
        pipeline: an activated `edgeecg.pipeline.Pipeline`.
        source: camera index ("0"), /dev/videoN, video file or stream URL.
        cfg: loop settings.
        out: where JSONL events go (flushed per line).
        display: show a window (None: when a display exists).
        stats: where FPS/latency lines go.
        sleep: the back-off wait (tests pass a fake clock); must return early when `stop` is set.
    """

    def __init__(
        self,
        pipeline: Any,
        source: str,
        cfg: CameraConfig | None = None,
        out: TextIO | None = None,
        display: bool | None = None,
        stats: TextIO | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.cfg = cfg or CameraConfig()
        self.out = out or sys.stdout
        self.stats_out = stats or sys.stderr
        self.display = display_available() if display is None else display
        self.stop = threading.Event()
        self._sleep = sleep or (lambda s: self.stop.wait(s))
        self.is_file = Path(source).is_file()
        self.tracker = SheetTracker(self.cfg.steady, self.cfg.iou)
        self.events: list[dict[str, Any]] = []  # also kept in memory, for callers and tests
        self.held: Any = None
        self.fps = 0.0  # smoothed frames per second, for the overlay

    # -- output --------------------------------------------------------------------------------------
    def emit(self, event: str, frame: int | None = None, **fields: Any) -> None:
        rec = {"event": event, "frame": frame, "time": round(time.time(), 3), **fields}
        self.events.append(rec)
        self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.out.flush()

    # -- source --------------------------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture | None:
        cap = cv2.VideoCapture(parse_source(self.source))
        if not cap.isOpened():
            cap.release()
            return None
        if not self.is_file:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # live sources: keep latency low, drop stale frames
        return cap

    def _reopen(self) -> cv2.VideoCapture | None:
        """Reopen a dropped live source with exponential back-off; None when stopped or out of tries."""
        delay, tries = self.cfg.reconnect_delay, 0
        while not self.stop.is_set():
            if self.cfg.max_reconnects is not None and tries >= self.cfg.max_reconnects:
                return None
            tries += 1
            self.emit("reconnect", attempt=tries, delay_s=round(delay, 3), source=self.source)
            self._sleep(delay)
            if self.stop.is_set():
                return None
            cap = self._open()
            if cap is not None:
                self.emit("source", status="reopened", source=self.source)
                return cap
            delay = min(delay * 2, self.cfg.max_reconnect_delay)
        return None

    # -- main loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until the file ends, the source is given up, or a stop is asked. Returns the exit code."""
        cap = self._open()
        if cap is None:
            if self.is_file:
                raise InputError(f"{self.source}: cannot open as a video")
            self.emit("source", status="unavailable", source=self.source)
            cap = self._reopen()
            if cap is None:
                return 0 if self.stop.is_set() else self._give_up()
        else:
            self.emit("source", status="opened", source=self.source)
        frame_no, processed = -1, 0
        t_stats = t_frame = time.perf_counter()
        n_stats, lat = 0, {"preprocess": 0.0, "classify": 0.0, "n_classify": 0}
        try:
            while not self.stop.is_set():
                ok, frame = cap.read()
                if not ok or frame is None:
                    cap.release()
                    if self.is_file:
                        self.emit("source", status="ended", source=self.source)
                        break
                    cap = self._reopen()
                    if cap is None:
                        return 0 if self.stop.is_set() else self._give_up()
                    continue
                frame_no += 1
                now = time.perf_counter()
                if frame_no:
                    self.fps = (
                        0.9 * self.fps + 0.1 / max(now - t_frame, 1e-6)
                        if self.fps
                        else 1 / max(now - t_frame, 1e-6)
                    )
                t_frame = now
                if frame_no % self.cfg.every == 0:
                    processed += 1
                    n_stats += 1
                    self._process(frame, frame_no, lat)
                if self.display:
                    self._show(frame)
                now = time.perf_counter()
                if self.cfg.stats_every and now - t_stats >= self.cfg.stats_every:
                    self._stats_line(n_stats / (now - t_stats), lat, n_stats)
                    t_stats, n_stats, lat = now, 0, {"preprocess": 0.0, "classify": 0.0, "n_classify": 0}
        finally:
            cap.release()
            if self.display:
                cv2.destroyAllWindows()
        self.emit("stopped", frame=frame_no, frames=frame_no + 1, processed=processed)
        return 0

    def _give_up(self) -> int:
        self.emit("source", status="lost", source=self.source)
        log.error("%s: source lost after %s reconnect attempts", self.source, self.cfg.max_reconnects)
        return 1

    def _process(self, frame: np.ndarray, frame_no: int, lat: dict[str, float]) -> None:
        t0 = time.perf_counter()
        prepared = self.pipeline.preprocess(frame)
        lat["preprocess"] += time.perf_counter() - t0
        box = prepared.page_box(*frame.shape[:2])
        sharp = box is not None and sharpness(frame, box) >= self.cfg.sharpness
        for ev in self.tracker.update(box, sharp):
            if ev == "classify":
                t1 = time.perf_counter()
                (result,) = self.pipeline.classify([prepared], [f"frame {frame_no}"])
                lat["classify"] += time.perf_counter() - t1
                lat["n_classify"] += 1
                self.held = result
                self.emit(
                    "result", frame=frame_no, **{k: v for k, v in result.to_dict().items() if k != "image"}
                )
            else:
                self.held = None
                self.emit(ev, frame=frame_no)

    def _stats_line(self, fps: float, lat: dict[str, float], n: int) -> None:
        pre = 1000 * lat["preprocess"] / max(n, 1)
        cls = 1000 * lat["classify"] / lat["n_classify"] if lat["n_classify"] else 0.0
        print(
            f"camera: {fps:.1f} fps, detect+preprocess {pre:.1f} ms, classify {cls:.1f} ms",
            file=self.stats_out,
            flush=True,
        )

    def _show(self, frame: np.ndarray) -> None:
        vis = frame.copy()
        box = self.tracker.prev
        colour = (0, 200, 0) if self.held is not None else (0, 200, 255)
        if box is not None:
            x0, y0, x1, y1 = (int(v) for v in box)
            cv2.rectangle(vis, (x0, y0), (x1, y1), colour, 2)
        if self.held is not None:
            text = ", ".join(self.held.positive) or "no class above threshold"
        elif box is not None:
            text = f"hold still ({self.tracker.count}/{self.cfg.steady})"
        else:
            text = "show an ECG"
        text += f"  |  {self.fps:.1f} fps"
        cv2.putText(vis, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(vis, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.imshow(WINDOW, vis)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM set the stop flag (main thread only), so the loop ends between frames."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop.set())
