#!/usr/bin/env python
"""Load benchmark of `edgeecg serve` on loopback: throughput and latency at 1, 4 and 16 concurrent clients,
micro-batching against batch 1 in the same run, memory before and after many requests, errors.

    python scripts/bench_serve.py                       # the bundled model, the example photo
    python scripts/bench_serve.py --requests 10000 --image photo.jpg --json out.json

Bounded in count and time; binds 127.0.0.1 only. Prints a Markdown table with the machine and the command,
ready for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`edgeecg serve` in a subprocess on a free loopback port."""

    def __init__(self, batch: int, workers: int, queue: int, bundle: str | None) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "edgeecg.cli", "serve", "--port", str(self.port), "--batch", str(batch)]
        cmd += ["--workers", str(workers), "--queue", str(queue), *(["--bundle", bundle] if bundle else [])]
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if urllib.request.urlopen(self.url + "/readyz", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise SystemExit("the service never became ready")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def load(url: str, body: bytes, clients: int, per_client: int) -> dict:
    """`clients` threads, each posting `per_client` requests back to back."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(per_client):
            req = urllib.request.Request(url + "/v1/classify", body, {"content-type": "image/jpeg"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    r.read()
                    ok = r.status == 200
            except urllib.error.HTTPError as err:
                ok, code = False, err.code
            dt = time.perf_counter() - t0
            with lock:
                times.append(dt)
                if not ok:
                    errors.append(str(code))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    times.sort()
    return {
        "clients": clients,
        "requests": len(times),
        "errors": len(errors),
        "throughput_rps": round(len(times) / wall, 2),
        "p50_ms": round(1e3 * statistics.median(times), 1),
        "p99_ms": round(1e3 * times[min(len(times) - 1, int(0.99 * len(times)))], 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="model bundle (default: the bundled one)")
    p.add_argument("--image", default=str(ROOT / "examples" / "photo_mi.jpg"))
    p.add_argument("--per-client", type=int, default=24, help="requests per client per level (default 24)")
    p.add_argument("--requests", type=int, default=2000, help="requests for the memory check (default 2000)")
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = p.parse_args()
    body = Path(args.image).read_bytes()
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "command": " ".join(["python", *sys.argv]),
        "image": Path(args.image).name,
        "levels": {},
    }
    for batch in (8, 1):  # micro-batching, then batch 1, side by side in one run
        srv = Server(batch, workers=2, queue=64, bundle=args.bundle)
        try:
            load(srv.url, body, 2, 3)  # warm-up
            report["levels"][f"batch {batch}"] = [load(srv.url, body, c, args.per_client) for c in (1, 4, 16)]
            if batch == 8:
                before = rss_mb(srv.proc.pid)
                per = max(1, args.requests // 8)
                mem = load(srv.url, body, 8, per)
                report["memory"] = {"requests": mem["requests"], "errors": mem["errors"],
                                    "rss_before_mb": round(before, 1),
                                    "rss_after_mb": round(rss_mb(srv.proc.pid), 1)}  # fmt: skip
        finally:
            srv.close()
    b8, b1 = report["levels"]["batch 8"], report["levels"]["batch 1"]
    report["batching_gain_at_16_clients"] = round(b8[2]["throughput_rps"] / b1[2]["throughput_rps"], 2)
    print(
        f"`{report['command']}` on {report['machine']}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    print("| server | clients | requests | errors | throughput (req/s) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in report["levels"].items():
        for r in rows:
            print(f"| {name} | {r['clients']} | {r['requests']} | {r['errors']} | {r['throughput_rps']} | "
                  f"{r['p50_ms']} | {r['p99_ms']} |")  # fmt: skip
    m = report["memory"]
    print(f"\nmicro-batching / batch 1 throughput at 16 clients: {report['batching_gain_at_16_clients']}x; "
          f"RSS {m['rss_before_mb']} -> {m['rss_after_mb']} MB over {m['requests']} requests "
          f"({m['errors']} errors)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    errors = sum(r["errors"] for rows in report["levels"].values() for r in rows) + m["errors"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
