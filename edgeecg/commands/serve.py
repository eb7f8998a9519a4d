"""`edgeecg serve`: an HTTP service with a browser page (the `serve` extra: FastAPI, uvicorn)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from edgeecg._lazy import require
from edgeecg.commands import add_model_arguments
from edgeecg.errors import UsageError
from edgeecg.io import DEFAULT_MAX_PIXELS

# Imported inside functions, so they load only when used: edgeecg.serve.app and edgeecg.serve.cluster
# (the serve and ray extras).

log = logging.getLogger(__name__)

EPILOG = """\
endpoints:
  POST /v1/classify   an image (multipart field "file", or a raw image/* body) -> the JSON of
                      `edgeecg infer --json`; ?montage=1 adds the pre-processing montage
  GET  /v1/model      labels, thresholds, backend
  GET  /healthz       the process is up            GET /readyz   the bundle is verified and loaded
  GET  /metrics       Prometheus text              GET /         a page to upload or take a photo
  GET  /openapi.json  the API, generated

Binds to 127.0.0.1 unless told otherwise. With --token (or EDGEECG_TOKEN), /v1/* and /metrics need
`Authorization: Bearer TOKEN`. A full queue answers 503 with Retry-After; SIGTERM finishes the requests in
flight, then stops.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `edgeecg serve`."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--token", help="bearer token required on /v1/* and /metrics (or EDGEECG_TOKEN)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="micro-batch window (default 5 ms)")
    parser.add_argument("--queue", type=int, default=32, help="pages waiting for the ensemble (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="pages pre-processed at once (default 2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser.add_argument("--max-mb", type=float, default=25.0, help="largest request body in MB (default 25)")
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest image, checked in its header"
    )
    ray = parser.add_argument_group("scale-out on Ray (the ray extra)")
    ray.add_argument("--ray", action="store_true", help="deploy on Ray Serve instead of one process")
    ray.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas, each its own pipeline")
    ray.add_argument("--autoscale", metavar="MIN-MAX", help="autoscale between MIN and MAX replicas")
    ray.add_argument("--ray-address", help="the Ray cluster (default: RAY_ADDRESS, else a local one)")
    add_model_arguments(parser, batching=True)


def _autoscale(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise UsageError(f"--autoscale takes MIN-MAX replicas like 1-4, not {text!r}") from None
    if not 1 <= lo <= hi:
        raise UsageError(f"--autoscale needs 1 <= MIN <= MAX, got {text!r}")
    return lo, hi


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    from edgeecg.serve.app import ServeConfig, create_app  # (the serve extra)

    if not 0 < args.port < 65536:
        raise UsageError(f"port must be 1-65535, got {args.port}")
    if args.queue < 1 or args.workers < 1 or args.timeout <= 0 or args.max_mb <= 0:
        raise UsageError("--queue and --workers must be at least 1, --timeout and --max-mb positive")
    uvicorn = require("uvicorn")
    require("fastapi")
    cfg = ServeConfig(
        bundle=args.bundle,
        backend=args.backend,
        threads=args.threads,
        batch_size=args.batch,
        max_wait_ms=args.max_wait_ms,
        queue=args.queue,
        workers=args.workers,
        timeout_s=args.timeout,
        max_bytes=int(args.max_mb * (1 << 20)),
        max_pixels=args.max_pixels,
        token=args.token or os.environ.get("EDGEECG_TOKEN") or None,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1") and not cfg.token:
        log.warning("serving on %s without a token: anyone who can reach it can use it", args.host)
    if args.ray:
        from edgeecg.serve.cluster import serve_on_ray  # (the ray extra)

        if args.replicas < 1:
            raise UsageError(f"--replicas must be at least 1, got {args.replicas}")
        url = serve_on_ray(cfg, args.host, args.port, args.replicas, _autoscale(args.autoscale), args.ray_address,
                           block=False)  # fmt: skip
        log.warning("serving on Ray at %s; Ctrl-C stops", url)
        _wait_for_stop()
        require("ray.serve").shutdown()
        return 0
    app = create_app(cfg)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=cfg.timeout_s
    )
    return 0


def _wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM."""

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
