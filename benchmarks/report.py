#!/usr/bin/env python
"""pytest-benchmark JSON → the Markdown results table (benchmarks/RESULTS.md).

    python benchmarks/report.py build/bench/results.json --out benchmarks/RESULTS.md
    python benchmarks/report.py build/bench/gpu.json                # print to stdout
    python benchmarks/report.py a.json b.json --out X.md            # several runs, one section each

p50 / p95 / p99 are computed here from the raw round times in the JSON (every round is one call, see
benchmarks/conftest.py), not taken from pytest-benchmark's summary. Throughput is images per second at the
p50 (batch / p50). Ratios pair two figures of the same run; the targets are those of issue 7. GPU figures
carry a roofline floor: the model's FLOPs over the card's peak rate (benchmarks/roofline.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from roofline import floor_ms, peak  # noqa: E402

#: (what, slower case, faster case, at least this many times faster)
RATIOS: list[tuple[str, str, str, float]] = [
    (
        "ONNX Runtime ensemble (one session per member) vs torch eager, batch 1",
        "ensemble/torch-eager/b1",
        "ensemble/onnxruntime-members/b1",
        1.5,
    ),
    (
        "ONNX Runtime fused ensemble vs torch eager, batch 1",
        "ensemble/torch-eager/b1",
        "ensemble/onnxruntime-fused/b1",
        1.5,
    ),
    (
        "Fused ensemble vs separate sessions (ONNX Runtime), batch 1",
        "ensemble/onnxruntime-members/b1",
        "ensemble/onnxruntime-fused/b1",
        1.2,
    ),
    (
        "Shrink-first vs full-resolution pre-processing, warp (detector included)",
        "preprocess-order/warp/full-resolution",
        "preprocess-order/warp/shrink-first",
        4.0,
    ),
    (
        "Shrink-first vs full-resolution pre-processing, crop (detector included)",
        "preprocess-order/crop/full-resolution",
        "preprocess-order/crop/shrink-first",
        4.0,
    ),
]

#: (what, case, at most this many ms at p50)
LIMITS: list[tuple[str, str, float]] = [
    ("Pre-processing chain on the photo (detect, crop, CLAHE; decode excluded)", "stage/preprocess", 40.0),
    (
        "Pre-processing of the default bundle on the photo (detect, classical corners, refinement, warp, CLAHE, "
        "verifier; decode excluded)",
        "preprocess/default",
        40.0,
    ),
    ("End to end, default bundle, photo file (decode included)", "e2e/default/file", 300.0),
    ("End to end, benchmark bundle, photo file (decode included)", "e2e/bench/file", 300.0),
    ("Process start (import, bundle check, sessions), default bundle", "startup/default", 1500.0),
    ("Process start (import, bundle check, sessions), benchmark bundle", "startup/bench", 1500.0),
]

#: The default bundle's member shapes (edgeecg/assets/default; train/configs/default.yaml): 128x256 since
#: 2026-11-26, 96x192 before.
_DEFAULT_KW = (
    '{"conv_mlp": true, "depths": [2, 2, 4, 2], "dims": [24, 48, 96, 192], "ls_init_value": 1.0, '
    '"norm_layer": "batchnorm2d"}'
)
DEFAULT_SHAPES = [("convnext_atto", 128, 256, _DEFAULT_KW), ("convnext_atto", 96, 192, _DEFAULT_KW)]

#: GPU targets from the T4 runbook: (what, TensorRT case, torch-CUDA case shown where TensorRT was not measured,
#: ms at p50 on a T4, the benchmark settings the target is for: [(arch, height, width, model_kwargs)] or None
#: for any). Judged only for TensorRT on a T4 with those settings; other figures are shown, not judged.
T4_TARGETS: list[tuple[str, str, str, float, list[tuple[str, int, int, str]] | None]] = [
    (
        "Ensemble of 5, batch 1, default small bundle (<= 8 ms)",
        "gpu/tensorrt-fp16/b1",
        "gpu/torch-cuda-fp16/b1",
        8.0,
        [*DEFAULT_SHAPES, ("convnext_atto", 256, 512, "")],
    ),
    (
        "End to end from a frame, 5x convnext_base 384x384 (<= 40 ms)",
        "gpu/e2e-tensorrt/array",
        "gpu/torch-cuda-fp16/b1",
        40.0,
        [("convnext_base", 384, 384, "")],
    ),
    (
        "Detector at its input size (about 1.5 ms)",
        "gpu/tensorrt-detector/b1",
        "gpu/torch-cuda-fp16-detector/b1",
        1.5,
        None,
    ),
]


def load(path: str | Path) -> dict[str, Any]:
    """The pytest-benchmark JSON."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def row_stats(bench: dict[str, Any]) -> dict[str, Any]:
    """p50/p95/p99/mean in ms, rounds, throughput and memory of one benchmark, from its raw data."""
    st = bench["stats"]
    data = np.asarray(st.get("data") or [st["median"]], np.float64) * 1e3  # seconds -> ms
    info = bench.get("extra_info") or {}
    p50, p95, p99 = (float(np.percentile(data, q)) for q in (50, 95, 99))
    batch = int(info.get("batch") or 1)
    out = {
        "name": bench["name"].removeprefix("test_"),
        "group": bench.get("group") or "",
        "case": info.get("case"),
        "batch": batch,
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "mean": float(data.mean()),
        "rounds": int(data.size),
        # a process start is not an image
        "throughput": batch / (p50 / 1e3)
        if p50 > 0 and not str(info.get("case")).startswith("startup/")
        else None,
        "peak_rss_mb": info.get("peak_rss_mb"),
        "peak_rss_delta_mb": info.get("peak_rss_delta_mb"),
        "info": info,
    }
    if info.get("gpu") and info.get("flops"):
        out["floor"] = floor_ms(info["flops"], info["gpu"], info.get("precision", "fp32"))
    return out


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _mem(r: dict[str, Any]) -> str:
    peak_mb, delta = r.get("peak_rss_mb"), r.get("peak_rss_delta_mb")
    if peak_mb is None:
        return "–"
    return f"{peak_mb:.0f}" + (f" (+{delta:.0f})" if delta is not None else "")


def _machine(doc: dict[str, Any]) -> list[str]:
    e = doc.get("edgeecg") or {}
    mi = doc.get("machine_info") or {}
    v = e.get("versions") or {}
    cpu = e.get("cpu_model") or (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor") or "?"
    lines = [
        f"- **Date:** {e.get('date') or doc.get('datetime', '?')}",
        f"- **Machine:** {mi.get('node', '?')} ({mi.get('system', '?')} {mi.get('release', '')}, {mi.get('machine', '')})",
        f"- **CPU:** {cpu}, {e.get('cpu_count', '?')} cores ({e.get('cpu_affinity', '?')} usable by this process)",
        f"- **GPU:** {e.get('gpu') or 'none'}",
        "- **Versions:** " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- **Command:** `{e.get('command', '?')}`",
    ]
    s = e.get("settings")
    if s:
        kw = f" {s['model_kwargs']}" if s.get("model_kwargs") else ""
        lines.append(
            f"- **Settings:** {s['folds']} x {s['arch']}{kw} members at {s['height']}x{s['width']} (random init), "
            f"yolov8n-pose detector at {s['det_size']}, synthetic photo {s['photo'][0]}x{s['photo'][1]}, "
            f"{s['threads']} CPU threads, batch sizes {s['batch_sizes']}, warm-up {s['warmup']} calls, "
            f"{s['min_rounds']}-{s['max_rounds']} rounds within {s['budget_s']} s per benchmark"
        )
    env = e.get("env")
    if env:
        lines.append("- **Environment:** " + ", ".join(f"`{k}={val}`" for k, val in sorted(env.items())))
    return lines


def _targets(rows: dict[str, dict[str, Any]], gpu: str | None, settings: dict[str, Any] | None) -> list[str]:
    out = ["| check | measured (p50) | target | met |", "|---|---|---|---|"]
    cpu_cases = {c for _, a, b, _ in RATIOS for c in (a, b)} | {c for _, c, _ in LIMITS}
    cpu_run = any(c in rows for c in cpu_cases)  # a GPU-only run lists no CPU target rows
    for what, slow, fast, need in RATIOS if cpu_run else []:
        a, b = rows.get(slow), rows.get(fast)
        if a is None or b is None:
            out.append(f"| {what} | not measured | >= {need:g}x | – |")
            continue
        ratio = a["p50"] / b["p50"]
        out.append(
            f"| {what} | {ratio:.2f}x ({_ms(a['p50'])} vs {_ms(b['p50'])} ms) | >= {need:g}x | "
            f"{'yes' if ratio >= need else '**no**'} |"
        )
    for what, case, limit in LIMITS if cpu_run else []:
        r = rows.get(case)
        if r is None:
            out.append(f"| {what} | not measured | <= {limit:g} ms | – |")
            continue
        out.append(
            f"| {what} | {_ms(r['p50'])} ms | <= {limit:g} ms | {'yes' if r['p50'] <= limit else '**no**'} |"
        )
    is_t4 = bool(gpu) and (peak(gpu) or {}).get("label") == "Tesla T4"
    s = settings or {}
    here = (s.get("arch"), s.get("height"), s.get("width"), s.get("model_kwargs") or "")
    for what, trt_case, torch_case, limit, models in T4_TARGETS:
        trt = rows.get(trt_case)
        r = trt or rows.get(torch_case)
        if r is None or (models is not None and here not in models):
            continue  # not measured, or another model than the target's (its figure is in the tables below)
        how = "TensorRT FP16" if trt else "torch-CUDA FP16 eager"
        if trt_case.startswith("gpu/e2e") and not trt:
            how += ", ensemble only"
        if not trt or not is_t4:
            met = f"n/a: the target is for TensorRT on a T4, this is {how} on {gpu}"
        else:
            met = "yes" if r["p50"] <= limit else "**no**"
        out.append(f"| {what} | {_ms(r['p50'])} ms, {how} | <= {limit:g} ms on a T4 | {met} |")
    if len(out) == 2:
        out.append("| (no target applies to the groups of this run) | – | – | – |")
    return out


def _group_table(group: str, items: list[dict[str, Any]]) -> list[str]:
    gpu_cols = any(r.get("info", {}).get("gpu") for r in items)
    head = "| benchmark | batch | p50 ms | p95 ms | p99 ms | mean ms | rounds | images/s | peak RSS MB (+ during) |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    if gpu_cols:
        head += " GFLOP | floor ms | floor / p50 |"
        sep += "---|---|---|"
    out = [f"### {group}", "", head, sep]
    for r in sorted(items, key=lambda r: (r["batch"], r["p50"])):
        tp = f"{r['throughput']:.1f}" if r["throughput"] else "–"
        line = (
            f"| {r['name']} | {r['batch']} | {_ms(r['p50'])} | {_ms(r['p95'])} | {_ms(r['p99'])} | {_ms(r['mean'])} | "
            f"{r['rounds']} | {tp} | {_mem(r)} |"
        )
        if gpu_cols:
            flops = r["info"].get("flops")
            floor = r.get("floor")
            line += (f" {flops / 1e9:.2f} |" if flops else " – |") + (
                f" {_ms(floor)} | {100 * floor / r['p50']:.1f}% |" if floor else " – | – |"
            )
        out.append(line)
    return [*out, ""]


def render(doc: dict[str, Any], title: str = "edgeecg benchmark results") -> str:
    """The Markdown report for one pytest-benchmark JSON document."""
    rows = [row_stats(b) for b in doc.get("benchmarks", [])]
    by_case = {r["case"]: r for r in rows if r["case"]}
    gpu = (doc.get("edgeecg") or {}).get("gpu")
    lines = [f"# {title}", "", *_machine(doc), ""]
    lines += [
        "## Targets (issue 7), from figures of this one run",
        "",
        "Shared machines drift by tens of percent between runs, so the CPU targets are ratios of two figures "
        "measured side by side; the absolute limits are judged on the same run's p50.",
        "",
        *_targets(by_case, gpu, (doc.get("edgeecg") or {}).get("settings")),
        "",
        "## All figures",
        "",
        "p50/p95/p99 from the raw round times (one call per round, after warm-up); images/s = batch / p50. "
        "Peak RSS is the process's VmHWM while the benchmark's timed rounds ran (reset before them through "
        "/proc/self/clear_refs, so native allocations count, unlike tracemalloc); the figure in brackets is "
        "what the rounds added above the RSS they started with. The pytest process also holds the other "
        "benchmarks' models, so the absolute peak is an upper bound; process start and end to end from the file "
        "report a fresh process's own VmHWM instead (end to end: after three runs on the photo, in brackets what "
        "the runs added to the loaded pipeline). GPU rows: floor = FLOPs / the card's peak (dense FP16 tensor or FP32 rate).",
        "",
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    for group, items in groups.items():
        lines += _group_table(group, items)
    return "\n".join(lines).rstrip() + "\n"


def _run_name(doc: dict[str, Any]) -> str:
    s = (doc.get("edgeecg") or {}).get("settings") or {}
    if not s:
        return "run"
    model = "default bundle's members" if s.get("model_kwargs") else s["arch"]
    return f"{s['folds']} x {model} at {s['height']}x{s['width']}"


def render_many(docs: list[dict[str, Any]], title: str = "edgeecg benchmark results") -> str:
    """One report per document (each with its machine, command and targets), under one title."""
    if len(docs) == 1:
        return render(docs[0], title)
    parts = [f"# {title}", "", "Runs: " + "; ".join(_run_name(d) for d in docs) + ".", ""]
    for d in docs:
        body = render(d, f"{title}: {_run_name(d)}").splitlines()
        parts += ["#" + line if line.startswith("#") else line for line in body] + [""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "json", nargs="+", help="pytest-benchmark --benchmark-json output (several: one section each)"
    )
    p.add_argument("--out", help="write the Markdown here (default: print it)")
    p.add_argument("--title", default="edgeecg benchmark results")
    args = p.parse_args(argv)
    text = render_many([load(j) for j in args.json], args.title)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
