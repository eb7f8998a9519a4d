"""Build the small model fixtures the runtime tests load (run once; outputs are committed).

Writes under tests/fixtures/:
    bundle_tiny/fold0.onnx, fold1.onnx   tiny timm ConvNeXt members: "image" [N,3,64,128] -> "logits" [N,5]
    bundle_tiny/ensemble.onnx            the two members fused: "image" -> "prob" [N,5], "member_probs" [N,2,5]
    bundle_tiny/foldK.safetensors/.json  the members' weights with a JSON sidecar, for the torch backend
    bundle_tiny/detector.onnx            a hand-built, deterministic "bright sheet" detector in the
                                         ultralytics pose layout ("images" [1,3,128,128] -> "output0"
                                         [1, 4+1+4*3, 336]): box and corners of the bright (paper) pixels
    bundle_tiny/manifest.json            an edgeecg-bundle/1 manifest naming all of the above
    detector_yolo_tiny.onnx              a randomly initialised ultralytics yolov8-pose (1 class, 4
                                         keypoints) at 64x64, to check the real export layout

Needs the train extra (torch, timm, onnx, ultralytics). Usage:
    .venv/bin/python scripts/make_test_fixtures.py
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures"
BUNDLE = OUT / "bundle_tiny"

H, W = 64, 128  # classifier input
DET = 128  # detector input (square)
ARCH = "convnext_atto"
ARCH_KWARGS = {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1]}


def tiny_classifier(seed: int):
    import timm
    import torch

    torch.manual_seed(seed)
    return timm.create_model(ARCH, pretrained=False, num_classes=5, **ARCH_KWARGS).eval()


def export_onnx(model, path: Path, outputs: list[str]) -> None:
    import torch

    dummy = torch.zeros(1, 3, H, W)
    axes = {"image": {0: "N"}, **{o: {0: "N"} for o in outputs}}
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=outputs,
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )


def write_members() -> list:
    from safetensors.torch import save_file

    members = [tiny_classifier(seed) for seed in (0, 1)]
    for i, m in enumerate(members):
        export_onnx(m, BUNDLE / f"fold{i}.onnx", ["logits"])
    sidecar = {
        "model": ARCH,
        "model_kwargs": ARCH_KWARGS,
        "num_classes": 5,
        "labels": ["MI", "AF", "HYP", "CD", "STTC"],
        "input": {
            "name": "image",
            "height": H,
            "width": W,
            "channel_order": "RGB",
            "layout": "NCHW",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "scale": 255.0,
        },
        "output": "logits",
    }
    for i, m in enumerate(members):
        save_file(m.state_dict(), str(BUNDLE / f"fold{i}.safetensors"))
        (BUNDLE / f"fold{i}.json").write_text(json.dumps({**sidecar, "fold": i}, indent=2) + "\n")
    return members


def write_fused(members: list) -> None:
    import torch

    class Fused(torch.nn.Module):
        def __init__(self, ms):
            super().__init__()
            self.ms = torch.nn.ModuleList(ms)

        def forward(self, x):
            member_probs = torch.stack([torch.sigmoid(m(x)) for m in self.ms], dim=1)  # [N, M, 5]
            return member_probs.mean(dim=1), member_probs

    export_onnx(Fused(members).eval(), BUNDLE / "ensemble.onnx", ["prob", "member_probs"])


def write_bright_detector(path: Path, size: int = DET, strides=(8, 16, 32), thresh: float = 0.7) -> None:
    """A detector graph that boxes the pixels brighter than `thresh` (a white sheet on a dark scene).

    Output layout as ultralytics pose exports: [1, 4 + 1 + 4*3, A], rows cx, cy, w, h (input pixels),
    class score, then x, y, visibility per corner clockwise from top-left; every anchor holds the same
    detection, so any NMS reduces them to one.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    anchors = sum((size // s) ** 2 for s in strides)
    idx = np.arange(size, dtype=np.float32)
    consts = {
        "thr": np.array(thresh, np.float32),
        "colidx1": (idx + 1).reshape(1, 1, 1, size),  # x index + 1 (right edge)
        "colrev": (size - idx).reshape(1, 1, 1, size),  # size - x (left edge)
        "rowidx1": (idx + 1).reshape(1, 1, size, 1),
        "rowrev": (size - idx).reshape(1, 1, size, 1),
        "size": np.array(size, np.float32),
        "half": np.array(0.5, np.float32),
        "conf_scale": np.array(0.9, np.float32),
        "neg1": np.array(-1.0, np.float32),
        "shape17": np.array([1, 17, 1], np.int64),
        "tile": np.array([1, 1, anchors], np.int64),
    }
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    n = helper.make_node
    nodes = [
        n("ReduceMean", ["images"], ["grey"], axes=[1], keepdims=1),  # [1,1,S,S]
        n("Greater", ["grey", "thr"], ["mb"]),
        n("Cast", ["mb"], ["m0"], to=TensorProto.FLOAT),
        # erode (min-pool 5x5) so thin bright lines and specks do not stretch the box
        n("Mul", ["m0", "neg1"], ["nm"]),
        n("MaxPool", ["nm"], ["nmp"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        n("Mul", ["nmp", "neg1"], ["m"]),
        n("ReduceMax", ["m"], ["cols"], axes=[2], keepdims=1),  # [1,1,1,S]
        n("ReduceMax", ["m"], ["rows"], axes=[3], keepdims=1),  # [1,1,S,1]
        n("Mul", ["cols", "colidx1"], ["c1"]),
        n("ReduceMax", ["c1"], ["x1"], keepdims=0),
        n("Mul", ["cols", "colrev"], ["c0"]),
        n("ReduceMax", ["c0"], ["x0r"], keepdims=0),
        n("Sub", ["size", "x0r"], ["x0"]),
        n("Mul", ["rows", "rowidx1"], ["r1"]),
        n("ReduceMax", ["r1"], ["y1"], keepdims=0),
        n("Mul", ["rows", "rowrev"], ["r0"]),
        n("ReduceMax", ["r0"], ["y0r"], keepdims=0),
        n("Sub", ["size", "y0r"], ["y0"]),
        n("Add", ["x0", "x1"], ["xs"]),
        n("Mul", ["xs", "half"], ["cx"]),
        n("Add", ["y0", "y1"], ["ys"]),
        n("Mul", ["ys", "half"], ["cy"]),
        n("Sub", ["x1", "x0"], ["bw"]),
        n("Sub", ["y1", "y0"], ["bh"]),
        n("ReduceMax", ["m"], ["anyb"], keepdims=0),
        n("Mul", ["anyb", "conf_scale"], ["conf"]),
    ]
    rows = [
        "cx",
        "cy",
        "bw",
        "bh",
        "conf",
        "x0",
        "y0",
        "conf",
        "x1",
        "y0",
        "conf",
        "x1",
        "y1",
        "conf",
        "x0",
        "y1",
        "conf",
    ]
    for i, r in enumerate(rows):
        nodes.append(n("Unsqueeze", [r, "ax0"], [f"u{i}"]))
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "ax0"))
    nodes += [
        n("Concat", [f"u{i}" for i in range(len(rows))], ["vec"], axis=0),  # [17]
        n("Reshape", ["vec", "shape17"], ["col"]),  # [17] -> [1,17,1]
        n("Tile", ["col", "tile"], ["output0"]),  # [1,17,A]
    ]
    graph = helper.make_graph(
        nodes,
        "bright_sheet_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 17, anchors])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeecg")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def write_yolo_detector(path: Path) -> None:
    """A random-init ultralytics yolov8-pose (1 class, 4 keypoints), shrunk to a few hundred KB."""
    import yaml
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg  # noqa: F401  (imported so a broken install fails here)

    src = Path(__import__("ultralytics").__file__).parent / "cfg/models/v8/yolov8-pose.yaml"
    cfg = yaml.safe_load(src.read_text())
    cfg["kpt_shape"] = [4, 3]
    cfg["nc"] = 1
    cfg["scales"] = {"t": [0.33, 0.0625, 256]}
    with tempfile.TemporaryDirectory() as tmp:
        ypath = Path(tmp) / "yolov8t-pose.yaml"
        ypath.write_text(yaml.safe_dump(cfg))
        model = YOLO(str(ypath), task="pose")
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            onnx_path = model.export(format="onnx", imgsz=64, opset=17, simplify=False, dynamic=False)
        finally:
            os.chdir(cwd)
        shutil.copyfile(Path(tmp) / onnx_path, path)


def write_manifest() -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from edgeecg.bundle import DEFAULT_PREPROCESS, FORMAT, file_entry, write_manifest

    b = BUNDLE
    manifest = {
        "format": FORMAT,
        "labels": ["MI", "AF", "HYP", "CD", "STTC"],
        "classifier": {
            "input": {
                "name": "image",
                "height": H,
                "width": W,
                "channel_order": "RGB",
                "layout": "NCHW",
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "scale": 255.0,
            },
            "output": "logits",
            "combine": "mean",
            "thresholds": [0.5, 0.5, 0.5, 0.5, 0.5],
            "threshold_method": "fixed-0.5 (test fixture, untrained)",
            "variants": {
                "fp32": {
                    "members": [
                        file_entry(
                            b,
                            f"fold{i}.onnx",
                            fold=i,
                            checkpoint=file_entry(b, f"fold{i}.safetensors", sidecar=f"fold{i}.json"),
                        )
                        for i in range(2)
                    ],
                    "fused": file_entry(
                        b, "ensemble.onnx", outputs={"mean": "prob", "members": "member_probs"}
                    ),
                }
            },
            "model": {"arch": ARCH, "params": None},
        },
        "detector": file_entry(
            b,
            "detector.onnx",
            kind="yolov8-pose",
            input_size=[DET, DET],
            strides=[8, 16, 32],
            keypoints=4,
            classes=["ecg"],
            conf_threshold=0.25,
            iou_threshold=0.5,
        ),
        "sam": None,
        "preprocess": DEFAULT_PREPROCESS,
        "engines": [],
        "provenance": {
            "command": "scripts/make_test_fixtures.py",
            "data": "none (random init)",
            "seed": 0,
            "edgeecg_version": "0.1.0",
            "checkpoints": [],
            "created": "fixture",
        },
        "metrics": {},
    }
    write_manifest(b, manifest)


def main() -> None:
    BUNDLE.mkdir(parents=True, exist_ok=True)
    members = write_members()
    write_fused(members)
    write_bright_detector(BUNDLE / "detector.onnx")
    write_yolo_detector(OUT / "detector_yolo_tiny.onnx")
    write_manifest()
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(ROOT)}  {p.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
