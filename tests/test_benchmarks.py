"""The benchmark suite (benchmarks/) works: it runs end to end at tiny sizes, one round each, and its report
turns the JSON into the results table. No assertion on speed: these are shared CI machines.

The tiny models are built once and cached in build/bench-models/ like the real ones.
"""

from __future__ import annotations

import importlib.util
import json
import mmap
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SUITE = ["test_bench_stages.py", "test_bench_backends.py", "test_bench_e2e.py", "test_bench_gpu.py"]

pytestmark = pytest.mark.bench


def _module(name: str):
    """A module of benchmarks/ (not a package: pytest puts the folder on sys.path when it runs the suite)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """Run the suite at tiny sizes in a fresh pytest process; its pytest-benchmark JSON."""
    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    env = {
        **os.environ,
        "EDGEECG_BENCH_TINY": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "EDGEECG_BENCH_COMMAND": "tests/test_benchmarks.py (tiny)",
    }
    env.pop("EDGEECG_BENCH_BUNDLE", None)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *[f"benchmarks/{f}" for f in SUITE],
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-only",
        f"--benchmark-json={out}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"benchmark suite failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return json.loads(out.read_text())


def test_suite_runs_every_cpu_group(tiny_run):
    cases = {b["extra_info"].get("case") for b in tiny_run["benchmarks"]}
    want = {
        f"stage/{s}"
        for s in ("decode", "detect", "detect-model", "crop", "warp", "resize", "clahe", "normalise")
    }
    want |= {"stage/corners-classical", "stage/corners-refine", "stage/preprocess-warp-refined"}
    want |= {"preprocess/bench"}
    want |= {
        "stage/preprocess",
        "member/onnxruntime/0",
        "member/onnxruntime/1",
        "e2e/bench/file",
        "e2e/bench/array",
    }
    want |= {"startup/bench"}
    want |= {
        f"ensemble/{k}/b{n}"
        for k in ("torch-eager", "onnxruntime-members", "onnxruntime-fused")
        for n in (1, 2)
    }
    want |= {
        f"preprocess-order/{m}/{o}" for m in ("warp", "crop") for o in ("shrink-first", "full-resolution")
    }
    assert want <= cases, f"missing: {sorted(want - cases)}"
    for b in tiny_run["benchmarks"]:
        assert len(b["stats"]["data"]) == 1, f"{b['name']}: tiny runs time one round"
        assert b["extra_info"]["peak_rss_mb"] > 0, f"{b['name']}: no peak memory"
    meta = tiny_run["edgeecg"]
    assert meta["settings"]["tiny"] and meta["versions"]["onnxruntime"] and meta["cpu_count"] >= 1


def test_report_renders_the_run(tiny_run):
    text = _module("report").render(tiny_run)
    assert "| ONNX Runtime ensemble (one session per member) vs torch eager, batch 1 |" in text
    targets = text.split("## All figures")[0]
    for row in ("vs torch eager", "vs separate sessions", "Shrink-first", "benchmark bundle, photo file"):
        line = next(ln for ln in targets.splitlines() if row in ln)
        assert "not measured" not in line, line
    assert "onnxruntime" in text and "Command:" in text and "### stages (photo)" in text


def _doc(data_s: dict[str, list[float]], batch: int = 1, **extra) -> dict:
    return {
        "machine_info": {"node": "n"},
        "benchmarks": [
            {
                "name": f"test_{case}",
                "group": "g",
                "extra_info": {"case": case, "batch": batch, **extra},
                "stats": {"data": data, "median": float(np.median(data))},
            }
            for case, data in data_s.items()
        ],
    }


def test_report_percentiles_come_from_raw_rounds():
    report = _module("report")
    data = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    row = report.row_stats(_doc({"x": data}, batch=4)["benchmarks"][0])
    assert row["p50"] == pytest.approx(50.5)
    assert row["p95"] == pytest.approx(95.05)
    assert row["p99"] == pytest.approx(99.01)
    assert row["rounds"] == 100
    assert row["throughput"] == pytest.approx(4 / 0.0505)


def test_report_judges_ratios_against_targets():
    report = _module("report")
    doc = _doc(
        {
            "ensemble/torch-eager/b1": [0.030] * 3,
            "ensemble/onnxruntime-members/b1": [0.010] * 3,  # 3x faster: meets 1.5x
            "ensemble/onnxruntime-fused/b1": [0.009] * 3,  # 1.11x faster than members: misses 1.2x
        }
    )
    lines = report.render(doc).splitlines()
    members = next(ln for ln in lines if ln.startswith("| ONNX Runtime ensemble (one session"))
    fused = next(ln for ln in lines if ln.startswith("| Fused ensemble vs separate"))
    assert "3.00x" in members and members.endswith("| yes |")
    assert "1.11x" in fused and fused.endswith("| **no** |")


def test_report_of_a_gpu_only_run_shows_the_t4_targets_unjudged_off_a_t4():
    report = _module("report")
    suite = _module("benchsuite")
    settings = suite.BenchSettings(arch="convnext_base", height=384, width=384).describe()
    doc = _doc(
        {"gpu/torch-cuda-fp16/b1": [0.043] * 3, "gpu/torch-cuda-fp16-detector/b1": [0.006] * 3},
        gpu="NVIDIA H200",
        flops=4.5e11,
        precision="fp16",
    )
    doc["edgeecg"] = {"gpu": "NVIDIA H200", "settings": settings}
    targets = report.render(doc).split("## All figures")[0]
    assert "ONNX Runtime" not in targets and "not measured" not in targets  # no CPU rows in a GPU-only run
    e2e = next(ln for ln in targets.splitlines() if "convnext_base 384x384" in ln)
    assert "43.00 ms, torch-CUDA FP16 eager, ensemble only" in e2e and "n/a" in e2e
    # On a T4 a TensorRT figure is judged.
    trt = _doc({"gpu/tensorrt-detector/b1": [0.0012] * 3}, gpu="Tesla T4")
    trt["edgeecg"] = {"gpu": "Tesla T4", "settings": settings}
    det = next(ln for ln in report.render(trt).splitlines() if ln.startswith("| Detector"))
    assert "1.20 ms, TensorRT FP16" in det and det.endswith("| yes |")
    # Several runs: one section each under one title.
    both = report.render_many([doc, trt], "GPU")
    assert both.startswith("# GPU\n") and both.count("\n## GPU: 5 x convnext_base at 384x384\n") == 2


def test_roofline_peaks_and_floor():
    roof = _module("roofline")
    assert roof.peak("Tesla T4")["label"] == "Tesla T4"
    assert roof.peak("NVIDIA A100-SXM4-80GB")["label"] == "A100"  # not the A10
    assert roof.peak("NVIDIA A10")["label"] == "A10"
    assert roof.peak("NVIDIA A10G") is None  # a different card: no guess
    assert roof.peak("NVIDIA H100 PCIe")["label"] == "H100 PCIe"
    assert roof.peak("NVIDIA H100 80GB HBM3")["label"] == "H100 SXM"
    assert roof.peak("NVIDIA H200")["label"] == "H200"
    assert roof.peak("Orin")["fp32"] > 0
    # 65 TFLOP/s FP16 on a T4: 6.5 GFLOP take at least 0.1 ms
    assert roof.floor_ms(6.5e9, "Tesla T4", "fp16") == pytest.approx(0.1)
    assert roof.floor_ms(6.5e9, "Unknown GPU", "fp16") is None


def test_flop_count_of_a_convolution():
    torch = pytest.importorskip("torch")
    roof = _module("roofline")
    conv = torch.nn.Conv2d(3, 8, 3, bias=False)
    flops = roof.count_flops(conv, torch.zeros(2, 3, 10, 10))
    assert flops == 2 * (2 * 8 * 8 * 8) * (3 * 3 * 3)  # 2 per multiply-add: N*Cout*Hout*Wout * Cin*k*k


def test_peak_rss_sees_native_allocations():
    suite = _module("benchsuite")
    size = 64 * 2**20
    with suite.PeakRss() as mem:
        # fresh anonymous pages, every one touched: malloc may hand back a freed heap chunk already resident
        block = mmap.mmap(-1, size)
        np.frombuffer(block, np.uint8)[:] = 1
        block.close()
    assert mem.peak_mb is not None
    if mem.reset:
        assert mem.delta_mb >= 50, mem.info()


def test_settings_from_env():
    suite = _module("benchsuite")
    s = suite.BenchSettings.from_env({})
    assert (s.arch, s.height, s.width, s.folds, s.det_size, s.photo, s.threads, s.batch_sizes) == (
        "convnext_atto",
        256,
        512,
        5,
        320,
        (4000, 3000),
        2,
        (1, 4, 8),
    )
    b = suite.BenchSettings.from_env(
        {
            "EDGEECG_BENCH_ARCH": "convnext_base",
            "EDGEECG_BENCH_INPUT": "384x384",
            "EDGEECG_BENCH_BATCHES": "1,8",
        }
    )
    assert (b.arch, b.height, b.width, b.batch_sizes) == ("convnext_base", 384, 384, (1, 8))
    assert b.bundle_key() != s.bundle_key() and s.bundle_key() != s.bundle_key(fp16=True)
    tiny = suite.BenchSettings.from_env({"EDGEECG_BENCH_TINY": "1"})
    assert tiny.tiny and tiny.max_rounds == 1 and tiny.kwargs["depths"] == [1, 1, 1, 1]


def test_round_plan():
    suite = _module("benchsuite")
    s = suite.BenchSettings.from_env({})  # budget 3 s, 20..200 rounds, cap 20 s
    assert suite.plan_rounds(s, 0.001) == 200  # fast: the maximum
    assert suite.plan_rounds(s, 0.05) == 60  # the budget's worth
    assert suite.plan_rounds(s, 0.5) == 20  # the minimum, though past the budget
    assert suite.plan_rounds(s, 2.0) == 10  # the cap: 20 s
    assert suite.plan_rounds(s, 30.0) == 5  # never under 5
    assert suite.plan_rounds(suite.BenchSettings.from_env({"EDGEECG_BENCH_TINY": "1"}), 5.0) == 1
