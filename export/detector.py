"""The paper detector (ultralytics YOLOv8(-pose)) to plain ONNX, with what the runtime needs to decode it.

Never ultralytics' own `.engine` format: those files carry a JSON header and are not plain TensorRT plans
(docs/design.md section 6); we export ONNX here and build plans ourselves in `tensorrt_build`.

Loading a `.pt` needs ultralytics, which unpickles the file: only do that for checkpoints our own
`edgeecg.train.detector` wrote. An existing detector ONNX is taken as it is, and its metadata read.
"""

from __future__ import annotations

import ast
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeecg._lazy import require
from edgeecg.errors import BundleError, UsageError
from edgeecg.export.onnx_export import ort_run
from edgeecg.sidecar import read_sidecar

log = logging.getLogger(__name__)

DEFAULT_IMGSZ = 640


def _kind(keypoints: int) -> str:
    return "yolov8-pose" if keypoints else "yolov8"


def _output_layout(nc: int, keypoints: int, kpt_dims: int) -> str:
    rows = f"4+{nc}" + (f"+{keypoints}*{kpt_dims}" if keypoints else "")
    return f"[N, {rows}, anchors]: cx,cy,w,h (input pixels), class scores, keypoints x,y,conf"


def export_ultralytics(
    pt: str | Path, out: str | Path, imgsz: int = DEFAULT_IMGSZ, opset: int = 17, dynamic: bool = False
) -> dict[str, Any]:
    """Export an ultralytics checkpoint (our own training output) to ONNX at `out`.

    Args:
        pt: the .pt file from `edgeecg.train.detector`.
        out: where the .onnx goes.
        imgsz: square input size in pixels (a multiple of the largest stride); with `dynamic`, the largest.
        opset: ONNX opset.
        dynamic: dynamic batch, height and width (for the rect letterbox: a 4:3 photo as 256x320 rather than
            320x320); False gives a fixed [1, 3, imgsz, imgsz] input.

    Returns:
        The manifest's detector fields (kind, input_size, strides, keypoints, classes, ...), without file/sha256.
    """
    ultralytics = require("ultralytics")
    pt, out = Path(pt), Path(out)
    if not pt.is_file():
        raise UsageError(f"detector checkpoint {pt} does not exist")
    # ultralytics writes the ONNX next to the .pt: work on a copy in a scratch dir, never beside the user's file.
    with tempfile.TemporaryDirectory(prefix="edgeecg-det-") as scratch:
        local = Path(scratch) / "detector.pt"
        shutil.copyfile(pt, local)
        try:
            yolo = ultralytics.YOLO(str(local))
        except Exception as err:  # ultralytics raises many types for a foreign or broken file
            raise BundleError(f"ultralytics cannot load {pt}: {str(err).splitlines()[0]}") from None
        model = yolo.model
        head = model.model[-1]
        strides = [int(s) for s in head.stride.tolist()]
        if imgsz % max(strides):
            raise UsageError(f"detector input size {imgsz} must be a multiple of {max(strides)}")
        kpt_shape = tuple(getattr(head, "kpt_shape", None) or (0, 0))
        names = model.names if isinstance(model.names, dict) else dict(enumerate(model.names))
        if kpt_shape[0]:
            yolo.task = (
                "pose"  # a checkpoint saved outside training may not say so; metadata follows the task
            )
        quiet = logging.getLogger("ultralytics")
        level = quiet.level
        quiet.setLevel(logging.WARNING)  # its export banner would drown our progress lines
        try:
            produced = yolo.export(format="onnx", imgsz=imgsz, opset=opset, simplify=False, dynamic=dynamic)
        except Exception as err:  # ultralytics raises many types
            raise BundleError(
                f"ultralytics could not export {pt.name} to ONNX: {str(err).splitlines()[0]}"
            ) from None
        finally:
            quiet.setLevel(level)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(produced), out)
    return {
        "kind": _kind(int(kpt_shape[0])),
        "input_size": [imgsz, imgsz],
        "input": "images",
        "strides": strides,
        "keypoints": int(kpt_shape[0]),
        "keypoint_dims": int(kpt_shape[1]),
        "classes": [str(names[i]) for i in sorted(names)],
        "output_layout": _output_layout(len(names), int(kpt_shape[0]), int(kpt_shape[1])),
        "source": "ultralytics",
    }


def dynamic_hw(path: str | Path) -> bool:
    """True when the ONNX model's first input has a dynamic height or width."""
    onnx = require("onnx")
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 4 and not (dims[2].dim_value and dims[3].dim_value)


def describe_onnx(path: str | Path) -> dict[str, Any]:
    """Detector fields read from an existing ONNX (ultralytics writes imgsz, stride, names, kpt_shape as metadata)."""
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    inp = model.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]

    def literal(key: str, default: Any) -> Any:
        try:
            return ast.literal_eval(meta[key]) if key in meta else default
        except (ValueError, SyntaxError):
            return default

    if len(dims) != 4:
        raise BundleError(f"detector {Path(path).name} must take an NCHW input, got {len(dims)} axes")
    size = [dims[2], dims[3]]
    if not all(size):  # dynamic height/width: ultralytics records the export size, the largest input
        imgsz = literal("imgsz", None)
        if not (
            isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz)
        ):
            raise BundleError(
                f"detector {Path(path).name} has a dynamic input size and no 'imgsz' metadata to bound it"
            )
        size = [int(v) for v in imgsz]

    names = literal("names", {0: "ecg"})
    kpt_shape = literal("kpt_shape", (0, 0)) or (0, 0)
    max_stride = int(literal("stride", 32))
    strides = [s for s in (8, 16, 32, 64) if s <= max_stride]
    out = model.graph.output[0].type.tensor_type.shape.dim
    rows = out[1].dim_value if len(out) == 3 else 0
    if len(out) == 3 and not rows and not kpt_shape[0]:  # a dynamic export leaves the row count symbolic
        x = np.zeros((1, dims[1] or 3, *size), np.float32)
        rows = int(next(iter(ort_run(path, x).values())).shape[1])
    if not kpt_shape[0] and rows > 4 + len(names):  # pose head without metadata: infer K from the rows
        kpt_shape = ((rows - 4 - len(names)) // 3, 3)
    return {
        "kind": _kind(int(kpt_shape[0])),
        "input_size": size,
        "input": inp.name,
        "strides": strides,
        "keypoints": int(kpt_shape[0]),
        "keypoint_dims": int(kpt_shape[1]),
        "classes": [str(names[i]) for i in sorted(names)],
        "output_layout": _output_layout(len(names), int(kpt_shape[0]), int(kpt_shape[1])),
        "source": "onnx",
    }


LETTERBOXES = ("square", "rect")


def export_detector(
    src: str | Path, out: str | Path, imgsz: int = DEFAULT_IMGSZ, letterbox: str | None = None
) -> dict[str, Any]:
    """A .pt (ultralytics training output of ours) or .onnx detector → plain ONNX at `out`; returns its fields.

    Args:
        src: the .pt or .onnx.
        out: where the plain ONNX goes.
        imgsz: input size when exporting a .pt.
        letterbox: "square" (the default: pad to imgsz x imgsz, as the detector was trained) or "rect" (pad
            only to the stride: a .pt is exported with dynamic height and width; an .onnx must have them).
            None takes an .onnx's choice from the .json beside it, else "square".
    """
    if letterbox is not None and letterbox not in LETTERBOXES:
        raise UsageError(f"detector letterbox must be one of {', '.join(LETTERBOXES)}, got {letterbox!r}")
    src = Path(src)
    if not src.is_file():
        raise UsageError(f"detector {src} does not exist")
    known: dict[str, Any] = {}
    if src.suffix == ".onnx":  # an ONNX from our detector training: fields and calibration
        try:
            known = read_sidecar(src, required=False)
        except BundleError:
            known = {}
    letterbox = letterbox or str(known.get("letterbox", "square"))
    if src.suffix == ".onnx":
        fields = describe_onnx(src)
        if letterbox == "rect" and not dynamic_hw(src):
            raise UsageError(
                f"detector {src.name} has a fixed input size: the rect letterbox needs a dynamic one"
            )
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
    elif src.suffix in (".pt", ".pth"):
        fields = export_ultralytics(src, out, imgsz, dynamic=letterbox == "rect")
    elif src.suffix == ".engine":
        raise UsageError("ultralytics .engine files are not plain TensorRT plans: give the .pt or an .onnx")
    else:
        raise UsageError(f"detector {src.name}: expected a .pt checkpoint or an .onnx model")
    fields.update({"letterbox": letterbox, "conf_threshold": 0.25, "iou_threshold": 0.5})
    if isinstance(known.get("conf_threshold"), (int, float)):  # calibrated by `detector calibrate`
        fields["conf_threshold"] = float(known["conf_threshold"])
    return fields
