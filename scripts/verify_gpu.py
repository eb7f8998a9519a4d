#!/usr/bin/env python
"""Verify edgeecg's TensorRT path on this GPU (T4, Jetson, ...): build plans, check parity, time them.

For the default bundle and a bug report, `edgeecg-selfcheck` is the command; this script adds a random demo
bundle at 256x512 and per-plan latency by batch size.

    python scripts/verify_gpu.py                      # a tiny random demo bundle, built here
    python scripts/verify_gpu.py --bundle BUNDLE      # plans for a real bundle (written to a copy)

Needs the train extra (torch, timm; ultralytics for the demo detector) and the gpu extra (tensorrt,
cuda-python). Prints one line per plan: GPU, TensorRT, precision, build time, max abs probability
difference and macro AUROC change against ONNX Runtime FP32, then latency per batch size. Exit 0 when all
parity checks pass, 1 when one fails, 2 when this machine cannot build plans.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

import numpy as np  # noqa: E402

from edgeecg import LABELS  # noqa: E402
from edgeecg.errors import EdgeECGError  # noqa: E402

TINY = {"depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}
INPUT = {
    "height": 256,
    "width": 512,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "channel_order": "RGB",
}


def demo_bundle(work: Path, folds: int) -> Path:
    """Random-init ConvNeXt folds and a yolov8n-pose from yaml → a fused FP16 bundle (no TensorRT yet)."""
    import timm
    import torch

    from edgeecg.export.bundle_writer import ExportConfig, export_bundle
    from edgeecg.train.checkpoint import save_weights

    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "yolo-config"))
    from ultralytics import YOLO
    from ultralytics.nn.tasks import PoseModel

    ck = work / "checkpoints"
    for fold in range(folds):
        torch.manual_seed(fold)
        model = timm.create_model("convnext_atto", pretrained=False, num_classes=len(LABELS), **TINY)
        with torch.no_grad():
            model.head.fc.weight.mul_(50.0)  # spread the random head's probabilities
        save_weights(
            ck / f"fold{fold}.safetensors",
            model.state_dict(),
            {"model": "convnext_atto", "model_kwargs": TINY, "input": INPUT, "fold": fold},
        )
    yolo = YOLO("yolov8n-pose.yaml")
    yolo.model = PoseModel("yolov8n-pose.yaml", nc=1, data_kpt_shape=(4, 3), verbose=False)
    yolo.model.names = {0: "ecg"}
    yolo.save(str(work / "detector.pt"))
    out = work / "bundle"
    export_bundle(
        ExportConfig(
            checkpoints=(str(ck),),
            out=str(out),
            detector=str(work / "detector.pt"),
            fused=True,
            precision="fp16",
            command="verify_gpu demo",
        ),
        print,
    )
    return out


def latency(plan: Path, onnx: Path, shape: tuple[int, ...], sizes: list[int], reps: int = 20) -> list[str]:
    """Median latency of a plan (TensorRT) and its ONNX (ONNX Runtime CPU) per batch size."""
    from edgeecg.backends.tensorrt import TensorRTRunner
    from edgeecg.export.onnx_export import ort_run

    rows = []
    with TensorRTRunner(plan, max_batch=max(sizes)) as runner:
        dtype = runner.inputs[0].dtype
        for b in sizes:
            x = np.random.default_rng(0).standard_normal((b, *shape[1:])).astype(dtype)
            runner.infer(x)  # warm up
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                runner.infer(x)
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            ort_run(onnx, x.astype(np.float32))
            cpu = time.perf_counter() - t
            rows.append(
                f"    batch {b}: TensorRT {1e3 * float(np.median(times)):.2f} ms (incl. copies), "
                f"ONNX Runtime CPU {1e3 * cpu:.1f} ms"
            )
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="existing bundle (default: build a tiny random demo bundle)")
    p.add_argument("--batch-sizes", default="1,4,8")
    p.add_argument("--folds", type=int, default=5, help="demo bundle: members")
    p.add_argument("--parity-data", help="labelled dataset dir for parity (default: synthetic pages)")
    p.add_argument("--keep", metavar="DIR", help="copy the bundle with its plans here")
    args = p.parse_args()

    from edgeecg.bundle import load_manifest
    from edgeecg.export.bundle_writer import ExportConfig, add_engines, engine_support

    reason = engine_support()
    if reason:
        print(f"cannot verify TensorRT here: {reason}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="edgeecg-verify-") as tmp:
        work = Path(tmp)
        if args.bundle:
            src = work / "bundle"
            shutil.copytree(args.bundle, src)  # never touch the user's bundle
        else:
            src = demo_bundle(work, args.folds)
        cfg = ExportConfig(
            checkpoints=(),
            out=str(src),
            batch_sizes=tuple(sizes),
            parity_data=args.parity_data,
            timing_cache=str(work / "timing"),
            command="verify_gpu",
        )
        try:
            manifest = add_engines(src, cfg, print)
        except EdgeECGError as err:
            print(f"FAILED: {err}", file=sys.stderr)
            return 1
        print("\nplans:")
        clf_input = manifest["classifier"]["input"]
        for e in manifest["engines"]:
            par = e.get("parity", {})
            print(
                f"  {e['target']:<10} {e['gpu']} sm {e['compute_capability']} TensorRT {e['tensorrt']} "
                f"{e['precision']} batch {e['batch_sizes']} built in {e.get('build_s')} s: "
                f"max abs diff {par.get('max_abs_prob_diff', par.get('max_abs_output_diff'))}, "
                f"AUROC change {par.get('auroc_change', 'n/a')} ({par.get('labels', '')})"
            )
            if e["target"] != "detector":
                shape = (1, 3, int(clf_input["height"]), int(clf_input["width"]))
                fp32 = manifest["classifier"]["variants"]["fp32"]
                if e["target"] == "fused":
                    ref = src / fp32["fused"]["file"]
                else:
                    ref = src / next(
                        m["file"] for m in fp32["members"] if f"member:{m['fold']}" == e["target"]
                    )
                for row in latency(src / e["file"], ref, shape, sizes):
                    print(row)
        load_manifest(src)
        if args.keep:
            shutil.copytree(src, args.keep, dirs_exist_ok=True)
            print(f"bundle with plans copied to {args.keep}")
    print("all parity checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
