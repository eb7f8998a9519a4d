"""`edgeecg serve`: the pipeline as an HTTP service (FastAPI + uvicorn, the `serve` extra), with
micro-batching, back-pressure and a browser page. See `edgeecg.serve.app`."""
