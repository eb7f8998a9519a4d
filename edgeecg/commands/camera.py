"""`edgeecg camera --source 0|/dev/videoN|FILE|URL`: capture-and-classify loop."""

from __future__ import annotations

import argparse
import sys

from edgeecg.camera import CameraConfig, CameraLoop, display_available
from edgeecg.commands import add_model_arguments, open_pipeline
from edgeecg.errors import UsageError

EPILOG = """\
events (JSONL, to --out or stdout, one per line, flushed):
  {"event": "source", "status": "opened|reopened|unavailable|ended|lost"}
  {"event": "result", "frame": N, "probabilities": {...}, "positive": [...], "votes": {...}, "box": [...], ...}
  {"event": "changed"|"lost", "frame": N}     the held result no longer applies
  {"event": "reconnect", "attempt": K, "delay_s": S}
  {"event": "stopped", "frames": N, "processed": M}
FPS and latency lines go to stderr every --stats seconds.

A sheet is classified once it has been steady for --steady processed frames (box IoU >= --iou with the
previous one) and sharp enough (variance of the Laplacian in the box >= --sharpness); the result is held
until the sheet moves or disappears. Ctrl-C or SIGTERM stops cleanly; q or Esc closes the window.

exit codes: 0 stopped or the video ended, 1 the source could not be opened or was lost, 2 bad usage.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `edgeecg camera`."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--source", default="0", help="camera index, /dev/videoN, video file or stream URL")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--display", dest="display", action="store_const", const=True, help="show a window")
    view.add_argument("--headless", dest="display", action="store_const", const=False, help="no window")
    parser.add_argument("--out", metavar="FILE", help="write JSONL events here (default: stdout)")
    parser.add_argument(
        "--every", type=int, default=1, metavar="K", help="detect on every K-th frame (default 1)"
    )
    parser.add_argument("--steady", type=int, default=5, metavar="N", help="steady frames before classifying")
    parser.add_argument("--iou", type=float, default=0.9, help="box IoU that counts as steady (default 0.9)")
    parser.add_argument("--sharpness", type=float, default=60.0, metavar="T", help="blur gate (default 60)")
    parser.add_argument("--stats", type=float, default=5.0, metavar="SEC", help="seconds between FPS lines")
    parser.add_argument("--max-reconnects", type=int, default=None, metavar="N", help="give up after N tries")
    add_model_arguments(parser, batching=False)


def run(args: argparse.Namespace) -> int:
    """Run the loop until the source ends or a stop signal arrives."""

    cfg = CameraConfig(
        every=args.every,
        steady=args.steady,
        iou=args.iou,
        sharpness=args.sharpness,
        stats_every=args.stats,
        max_reconnects=args.max_reconnects,
    )
    if args.display and not display_available():
        raise UsageError("--display: no display available here (no DISPLAY, or OpenCV built without GUI)")
    out = open(args.out, "a", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        with open_pipeline(args) as pipe:
            loop = CameraLoop(pipe, args.source, cfg, out=out, display=args.display)
            loop.install_signal_handlers()
            return loop.run()
    finally:
        if out is not sys.stdout:
            out.close()
