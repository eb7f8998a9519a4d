#!/usr/bin/env python
"""Run the GPU benchmark groups on this machine's NVIDIA GPU and print the results table. Installs nothing.

    python scripts/bench_gpu.py                                  # 5x convnext_atto 256x512
    python scripts/bench_gpu.py --default-shape                  # the default bundle's members (128x256)
    python scripts/bench_gpu.py --arch convnext_base --input 384x384     # the 40 ms target's ensemble
    python scripts/bench_gpu.py --bundle BUNDLE                  # also a real bundle (plans built for this GPU)
    python scripts/bench_gpu.py --cpu --out benchmarks/RESULTS-gpu.md    # CPU groups too; keep the table

Needs what is already installed: torch with CUDA (torch-CUDA FP16 groups), and for the TensorRT groups
tensorrt and cuda-python (the gpu extra). Missing pieces skip their groups with a reason; nothing is
fetched from the network (no pip, no model downloads: models are random-init and built locally, cached in
build/bench-models/). Every timed call synchronises the GPU before it returns. The table gives p50/p95/p99,
throughput, and next to each GPU figure its roofline floor (the model's FLOPs over the card's peak).
Exit status: 0 when the run passed, 1 when a benchmark failed, 2 when there is no usable GPU.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gpu_name() -> str | None:
    """The CUDA device's name through torch, or None (and why, on stderr)."""
    try:
        import torch
    except ImportError:
        print("torch is not installed: the GPU groups need torch with CUDA", file=sys.stderr)
        return None
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return None
    return torch.cuda.get_device_name(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--default-shape",
        action="store_true",
        help="members shaped as the bundled default model's (model, model_kwargs and input of "
        "train/configs/default.yaml)",
    )
    p.add_argument("--arch", help="timm model of each member (default convnext_atto)")
    p.add_argument("--input", help="classifier input HxW (default 256x512)")
    p.add_argument("--folds", type=int, help="ensemble members (default 5)")
    p.add_argument("--det-size", type=int, help="detector input size (default 320)")
    p.add_argument("--batches", help="batch sizes, e.g. 1,4,8 (default)")
    p.add_argument("--bundle", help="also measure this bundle end to end with TensorRT (needs its plans)")
    p.add_argument("--cpu", action="store_true", help="run the CPU groups too (stages, backends, end to end)")
    p.add_argument("--out", help="also write the Markdown table here")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args(argv)

    name = gpu_name()
    if name is None:
        return 2
    try:
        import tensorrt

        print(f"GPU: {name}; TensorRT {tensorrt.__version__}")
    except ImportError:
        print(f"GPU: {name}; TensorRT is not installed: only the torch-CUDA groups will run")

    env = dict(os.environ)
    env.update(
        OMP_WAIT_POLICY="PASSIVE",
        NO_ALBUMENTATIONS_UPDATE="1",
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="False",
        PIP_NO_INDEX="1",  # belt and braces: nothing below may install anything
        EDGEECG_BENCH_COMMAND=shlex.join(["python", "scripts/bench_gpu.py", *(argv or sys.argv[1:])]),
    )
    env.setdefault("YOLO_CONFIG_DIR", str(ROOT / "build" / "yolo-config"))
    if args.default_shape:
        import json  # noqa: PLC0415

        import yaml  # noqa: PLC0415

        recipe = yaml.safe_load((ROOT / "train" / "configs" / "default.yaml").read_text(encoding="utf-8"))
        args.arch = args.arch or recipe["model"]
        args.input = args.input or f"{recipe['input_height']}x{recipe['input_width']}"
        env["EDGEECG_BENCH_MODEL_KWARGS"] = json.dumps(recipe.get("model_kwargs") or {})
    for key, value in (
        ("ARCH", args.arch),
        ("INPUT", args.input),
        ("FOLDS", args.folds),
        ("DET_SIZE", args.det_size),
        ("BATCHES", args.batches),
        ("BUNDLE", args.bundle),
    ):
        if value is not None:
            env[f"EDGEECG_BENCH_{key}"] = str(value)
    out_dir = ROOT / "build" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"gpu-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    files = ["benchmarks/test_bench_gpu.py"]
    if args.cpu:
        files += [
            "benchmarks/test_bench_stages.py",
            "benchmarks/test_bench_backends.py",
            "benchmarks/test_bench_e2e.py",
        ]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *files,
        "-p",
        "no:cacheprovider",
        "-rs",
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        "--benchmark-columns=median,iqr,rounds",
        *args.pytest_args,
    ]
    print("+", shlex.join(cmd), flush=True)
    status = subprocess.call(cmd, cwd=ROOT, env=env)
    if not json_path.is_file():
        print("no benchmark figures were written", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import load, render

    text = render(load(json_path), f"edgeecg GPU benchmark results ({name})")
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    print(f"raw figures: {json_path}")
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
