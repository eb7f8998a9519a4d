"""The HTTP service behind `edgeecg serve` (FastAPI; the `serve` extra, imported only by the serve command).

    POST /v1/classify   an image (multipart field "file", or the raw body with an image content type) ->
                        the same JSON object as `edgeecg infer --json`; `?montage=1` adds the
                        pre-processing montage as a PNG data URL
    GET  /v1/model      labels, thresholds, input size, backend: what the page shows beside a result
    GET  /healthz       the process is up
    GET  /readyz        the bundle is verified and loaded (503 before and while shutting down)
    GET  /metrics       Prometheus text: requests, rejections, per-stage latency, queue depth, batch sizes
    GET  /              a page to upload a file or take a photo with a phone's camera; no CDN, works offline

Each request is checked before its image is decoded (size of the body, then the pixel count in the image
header: the same bomb guard as `edgeecg infer`), pre-processed on a worker thread, and classified with the
pages of other requests that arrived within a few milliseconds (`MicroBatcher`). A full queue answers 503
with Retry-After; a request that waits longer than its timeout answers 504. Errors are one line of JSON:
{"error": "..."}. Nothing is written to disk.
"""

from __future__ import annotations

import base64
import hmac
import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from edgeecg import LABELS
from edgeecg._lazy import require
from edgeecg.errors import EdgeECGError
from edgeecg.io import DEFAULT_MAX_PIXELS, TooLarge, decode_image
from edgeecg.pipeline import Pipeline
from edgeecg.preprocess import debug_montage
from edgeecg.serve.batcher import MicroBatcher, Overloaded

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/", "application/octet-stream")
STAGES = ("decode", "detect", "corners", "crop", "warp", "resize", "clahe", "verify", "classify", "total")


@dataclass(frozen=True)
class ServeConfig:
    """How the service loads its model and holds under load.

    Attributes:
        bundle: the model bundle (None: the bundled default).
        backend: auto | onnxruntime | tensorrt | torch.
        threads: CPU threads per ONNX Runtime session (0: the library's default).
        batch_size: the most pages one ensemble call takes (clamped to the bundle's TensorRT plans).
        max_wait_ms: how long a page waits for others to share its ensemble call.
        queue: the most pages waiting for the ensemble; beyond it, 503.
        workers: pages pre-processed at once; requests beyond `workers + queue` in flight get 503.
        timeout_s: a request's whole budget; past it, 504.
        max_bytes: the largest request body.
        max_pixels: the largest image (pixels, read from its header before decoding).
        token: when set, /v1/* and /metrics need `Authorization: Bearer <token>`.
    """

    bundle: str | None = None
    backend: str = "auto"
    threads: int = 0
    batch_size: int = 8
    max_wait_ms: float = 5.0
    queue: int = 32
    workers: int = 2
    timeout_s: float = 30.0
    max_bytes: int = 25 << 20
    max_pixels: int = DEFAULT_MAX_PIXELS
    token: str | None = None


class _Metrics:
    """The Prometheus series of one app (its own registry, so two apps in one process never mix)."""

    def __init__(self, depth: Any) -> None:
        prom = require("prometheus_client")
        self.prom = prom
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "edgeecg_requests", "classify requests by HTTP status", ["code"], registry=self.registry
        )
        self.rejections = prom.Counter(
            "edgeecg_rejections", "pictures turned away as not an ECG", ["by"], registry=self.registry
        )
        self.stage = prom.Histogram(
            "edgeecg_stage_seconds",
            "seconds per pipeline stage",
            ["stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.batch = prom.Histogram(
            "edgeecg_batch_size",
            "pages per ensemble call",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        gauge = prom.Gauge("edgeecg_queue_depth", "pages waiting for the ensemble", registry=self.registry)
        gauge.set_function(depth)

    def text(self) -> bytes:
        return self.prom.generate_latest(self.registry)


class Service:
    """The loaded pipeline, the batcher and the limits: what the routes call. Usable without HTTP."""

    def __init__(self, cfg: ServeConfig) -> None:

        self.cfg = cfg
        self.ready = False
        self.pipeline = Pipeline.from_bundle(
            cfg.bundle, backend=cfg.backend, threads=cfg.threads, batch_size=cfg.batch_size
        )
        self.pipeline.activate()
        self.batcher = MicroBatcher(
            self._classify,
            self.pipeline.batch_size,
            cfg.max_wait_ms / 1e3,
            cfg.queue,
            on_batch=lambda n: self.metrics.batch.observe(n),
        )
        self.metrics = _Metrics(lambda: self.batcher.depth)
        self._slots = threading.BoundedSemaphore(cfg.workers + cfg.queue)
        self._preprocessing = threading.BoundedSemaphore(cfg.workers)
        self.ready = True

    def _classify(self, items: list[tuple[Any, str]]) -> list[Any]:
        return self.pipeline.classify([p for p, _ in items], [n for _, n in items])

    def close(self) -> None:
        """Finish the pages in flight, then free the models."""
        self.ready = False
        self.batcher.close()
        self.pipeline.close()

    def classify(self, data: bytes, name: str, montage: bool = False) -> dict[str, Any]:
        """One uploaded image -> the `edgeecg infer --json` object (plus "montage" when asked).

        Raises:
            Overloaded: too many requests in flight or waiting.
            TooLarge / InputError: the image is refused before or while decoding.
            TimeoutError: the request ran past its timeout.
        """
        if not self._slots.acquire(blocking=False):
            raise Overloaded(f"{self.cfg.workers + self.cfg.queue} requests already in flight")
        try:
            start = time.perf_counter()
            with self._preprocessing:  # pre-processing is CPU work: at most `workers` at once
                t0 = time.perf_counter()
                img = decode_image(data, self.cfg.max_pixels, name)
                decode_s = time.perf_counter() - t0
                prepared = self.pipeline.preprocess(img, debug=montage)
            left = self.cfg.timeout_s - (time.perf_counter() - start)
            future = self.batcher.submit((prepared, name))
            try:
                result = future.result(timeout=max(left, 0.001))
            except FutureTimeout:
                future.cancel()
                raise TimeoutError(f"no result within {self.cfg.timeout_s:g} s") from None
            result.timings["decode"] = 1e3 * decode_s
            out = result.to_dict()
            if montage and prepared.stages:
                ok, png = cv2.imencode(".png", debug_montage(prepared, height=240))
                if ok:
                    out["montage"] = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()
            self._observe(out)
            return out
        finally:
            self._slots.release()

    def _observe(self, out: dict[str, Any]) -> None:
        for stage, ms in (out.get("timings_ms") or {}).items():
            if stage in STAGES:
                self.metrics.stage.labels(stage).observe(ms / 1e3)
        if out.get("rejected"):
            by = "verifier" if "verifier" in (out.get("reason") or "") else "detector"
            self.metrics.rejections.labels(by).inc()

    def model(self) -> dict[str, Any]:
        """What a client shows beside a result."""
        clf = self.pipeline.manifest["classifier"]
        return {
            "labels": list(LABELS),
            "thresholds": dict(zip(LABELS, clf["thresholds"], strict=True)),
            "input": {"height": clf["input"]["height"], "width": clf["input"]["width"]},
            "backend": self.pipeline.backend,
            "batch_size": self.pipeline.batch_size,
        }


def page_html() -> str:
    """The upload page (edgeecg/serve/page.html)."""
    return resources.files("edgeecg.serve").joinpath("page.html").read_text(encoding="utf-8")


def create_app(cfg: ServeConfig, service: Service | None = None) -> Any:
    """The FastAPI app. The service (pipeline, batcher) loads at startup and closes at shutdown, unless one
    is given (its owner closes it)."""
    shared = _Shared(cfg, service)
    app = FastAPI(
        title="edgeecg",
        summary="Classify photos and scans of paper 12-lead ECGs: MI, AF, HYP, CD, STTC.",
        lifespan=shared.lifespan,
    )
    # registration order is the order of the OpenAPI paths
    _api_routes(app, shared)
    _health_routes(app, shared)
    _page_route(app)
    return app


class _Shared:
    """What the routes share: the settings, the service (None until startup has loaded it) and the
    request checks."""

    def __init__(self, cfg: ServeConfig, service: Service | None) -> None:
        self.cfg = cfg
        self.service = service

    @asynccontextmanager
    async def lifespan(self, app: Any):
        owned = self.service is None
        if owned:
            self.service = await run_in_threadpool(Service, self.cfg)
        log.info("ready: %s", self.service.model())
        yield
        if owned:  # uvicorn has finished the requests in flight; the batcher drains the rest
            await run_in_threadpool(self.service.close)

    def error(self, status: int, message: str, **headers: str) -> Any:
        svc = self.service
        if svc is not None:
            svc.metrics.requests.labels(str(status)).inc()
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    def authorised(self, request: Any) -> bool:
        if not self.cfg.token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.cfg.token}".encode())

    async def body(self, request: Any) -> bytes | Any:
        """The capped request body, or an error response."""
        cfg = self.cfg
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cfg.max_bytes:
            return self.error(
                413, f"request body is {int(length)} bytes, over the {cfg.max_bytes} byte limit"
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_bytes:
                return self.error(413, f"request body is over the {cfg.max_bytes} byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def upload(self, request: Any) -> tuple[bytes, str] | Any:
        """(image bytes, name) from a multipart form (field "file" or "image") or a raw image body."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await self.body(request)
        if not isinstance(raw, bytes):
            return raw
        if ctype == "multipart/form-data":
            replay = [{"type": "http.request", "body": raw, "more_body": False}]

            async def receive() -> dict:
                return replay.pop() if replay else {"type": "http.disconnect"}

            form = await Request(request.scope, receive).form(max_files=1, max_fields=4)
            part = form.get("file") or form.get("image")
            if part is None or isinstance(part, str):
                return self.error(400, 'multipart upload needs a file field named "file"')
            return await part.read(), Path(part.filename or "upload").name
        if not ctype.startswith(IMAGE_TYPES):
            return self.error(
                415, f"content type {ctype or 'none'} is not an image: send image/* or multipart"
            )
        return raw, request.query_params.get("name", "upload")


def _api_routes(app: Any, shared: _Shared) -> None:
    """POST /v1/classify and GET /v1/model."""
    error = shared.error

    @app.post("/v1/classify", summary="Classify one ECG image")
    async def classify(request: Request, montage: bool = False) -> Any:
        svc = shared.service
        if svc is None or not svc.ready:
            return error(503, "not ready", **{"Retry-After": "1"})
        if not shared.authorised(request):
            return error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        got = await shared.upload(request)
        if not isinstance(got, tuple):
            return got
        data, name = got
        try:
            out = await run_in_threadpool(svc.classify, data, name, montage)
        except Overloaded as err:
            return error(503, f"busy: {err}", **{"Retry-After": "1"})
        except TooLarge as err:
            return error(413, str(err))
        except TimeoutError as err:
            return error(504, str(err))
        except EdgeECGError as err:
            return error(400, str(err))
        svc.metrics.requests.labels("200").inc()
        return out

    @app.get("/v1/model", summary="Labels, thresholds and backend of the loaded model")
    async def model(request: Request) -> Any:
        svc = shared.service
        if svc is None:
            return error(503, "not ready")
        if not shared.authorised(request):
            return error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        return svc.model()


def _health_routes(app: Any, shared: _Shared) -> None:
    """GET /healthz, /readyz and /metrics: what orchestrators and Prometheus poll."""
    error = shared.error

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/readyz", summary="The bundle is verified and loaded")
    async def readyz() -> Any:
        svc = shared.service
        if svc is None or not svc.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return {"status": "ready", "backend": svc.pipeline.backend}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics(request: Request) -> Any:
        svc = shared.service
        if svc is None:
            return error(503, "not ready")
        if not shared.authorised(request):
            return error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        return Response(svc.metrics.text(), media_type=svc.metrics.prom.CONTENT_TYPE_LATEST)


def _page_route(app: Any) -> None:
    """GET /: the upload page."""

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return HTMLResponse(page_html())
