"""Scale-out on Ray (the `ray` extra): the same service on Ray Serve, and batch inference with Ray Data.

    edgeecg serve --ray --replicas 4                      # N replicas, each with its own pipeline
    edgeecg infer --ray 'archive/**/*.jpg' --json > out.jsonl

Both join the Ray cluster that `RAY_ADDRESS` (or `--ray-address`) names, else start a local one. Each
Serve replica runs `edgeecg.serve.app` unchanged (its own pipeline, micro-batcher and limits): the
deployment hands every HTTP request to that app, so the API, errors and metrics are the same as
`edgeecg serve`. Each Ray Data worker holds one pipeline and writes the same JSON objects as
`edgeecg infer --json`; a file that fails is a line with its error, never a lost batch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeecg._lazy import require
from edgeecg.pipeline import Pipeline
from edgeecg.serve.app import ServeConfig, create_app

# Imported inside functions, so they load only when used: ray and edgeecg.serve.app (FastAPI).

log = logging.getLogger(__name__)


def connect(address: str | None = None) -> Any:
    """`ray.init` on the cluster at `address` (or RAY_ADDRESS), else a local one; quiet, no dashboard."""
    # no telemetry from us: Ray's usage reporting stays off unless the user turned it on
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = require("ray")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    return ray


class _PipelineWorker:
    """A Ray Data worker: one pipeline, kept for every batch it is given."""

    def __init__(self, bundle: str | None, backend: str, threads: int, batch: int, max_pixels: int) -> None:

        self.pipe = Pipeline.from_bundle(bundle, backend=backend, threads=threads, batch_size=batch)
        self.pipe.activate()
        self.max_pixels = max_pixels

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        paths = [str(p) for p in batch["path"]]
        return {"json": [r.to_json() for r in self.pipe.run_paths(paths, max_pixels=self.max_pixels)]}


def infer_paths(
    paths: list[Path],
    bundle: str | None = None,
    backend: str = "auto",
    threads: int = 1,
    batch: int = 8,
    max_pixels: int = 50_000_000,
    workers: int = 2,
    address: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Classify `paths` on Ray Data with `workers` pipelines; yields `infer --json` objects as they finish."""
    ray = connect(address)
    ds = ray.data.from_items(
        [{"path": str(p)} for p in paths], override_num_blocks=max(1, len(paths) // batch)
    )
    out = ds.map_batches(
        _PipelineWorker,
        fn_constructor_kwargs={
            "bundle": bundle, "backend": backend, "threads": threads, "batch": batch, "max_pixels": max_pixels,
        },
        batch_size=batch,
        concurrency=workers,
        num_cpus=threads,
    )  # fmt: skip
    for row in out.iter_rows():
        yield json.loads(row["json"])


def deployment(cfg: ServeConfig, replicas: int = 1, autoscale: tuple[int, int] | None = None) -> Any:
    """A Ray Serve application of `edgeecg serve`'s app; `autoscale` = (min, max) replicas instead of a fixed
    count."""
    serve = require("ray.serve")
    httpx = require("httpx")
    responses = require("starlette.responses")
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": max(1, cfg.threads)}}
    if autoscale:
        lo, hi = autoscale
        options["autoscaling_config"] = {"min_replicas": lo, "max_replicas": hi, "target_ongoing_requests": 4}
    else:
        options["num_replicas"] = replicas

    @serve.deployment(name="edgeecg", **options)
    class EdgeECG:
        """One replica: the service's own app and pipeline; every request goes through that app."""

        def __init__(self, cfg: ServeConfig) -> None:
            from edgeecg.serve.app import Service

            self.service = Service(cfg)
            self.app = create_app(cfg, self.service)
            self.client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://replica"
            )

        async def __call__(self, request: Any) -> Any:
            body = await request.body()
            headers = {
                k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
            }
            resp = await self.client.request(
                request.method, request.url.path, params=request.query_params, content=body, headers=headers
            )
            keep = {
                k: v
                for k, v in resp.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding")
            }
            return responses.Response(resp.content, status_code=resp.status_code, headers=keep)

        def __del__(self) -> None:
            service = getattr(self, "service", None)
            if service is not None:
                service.close()

    return EdgeECG.bind(cfg)


def serve_on_ray(
    cfg: ServeConfig,
    host: str,
    port: int,
    replicas: int = 1,
    autoscale: tuple[int, int] | None = None,
    address: str | None = None,
    block: bool = True,
) -> str:
    """Deploy on Ray Serve at http://host:port/ and, with `block`, wait until interrupted; returns the URL."""
    connect(address)
    serve = require("ray.serve")
    serve.start(http_options={"host": host, "port": port})
    serve.run(deployment(cfg, replicas, autoscale), name="edgeecg", route_prefix="/", blocking=block)
    return f"http://{host}:{port}/"
