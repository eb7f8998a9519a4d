"""Model bundles: a directory with `manifest.json` and the model files it names (docs/design.md section 3).

Schema, format "edgeecg-bundle/1" (every path is relative to the bundle directory)::

    {
      "format": "edgeecg-bundle/1",
      "labels": ["MI", "AF", "HYP", "CD", "STTC"],
      "classifier": {
        "input": {"name": "image", "height": 256, "width": 512, "channel_order": "RGB", "layout": "NCHW",
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 255.0},
        "output": "logits",                 # "logits" (sigmoid applied by the runtime) or "probabilities"
        "combine": "mean",                  # members' probabilities are averaged; votes kept
        "thresholds": [0.5, 0.5, 0.5, 0.5, 0.5],
        "threshold_method": "youden-oof",   # how thresholds were chosen
        "variants": {                        # by precision; the runtime picks one
          "fp32": {"members": [{"fold": 0, "file": "fold0.onnx", "sha256": "...",
                                "checkpoint": {"file": ..., "sha256": ..., "sidecar": ...}},   # optional:
                               ...],                                # the torch backend's weights
                   "fused": {"file": "ensemble.onnx", "sha256": "...",
                             "outputs": {"mean": "prob", "members": "member_probs"}}},   # fused optional
          "fp16": {...},
          "int8w": {"members": [...], "fused": {...}, "weights": "int8"}
        },                                   # "weights": "int8": Conv/Gemm/MatMul weights stored as per-channel
                                             # int8 + DequantizeLinear, FP32 compute; ONNX Runtime loads it with
                                             # session config session.disable_quant_qdq=1 (folds the DQ nodes)
        "model": {"arch": "convnext_atto", "params": 3.4e6}
      },
      "detector": {"file": "detector.onnx", "sha256": "...", "kind": "yolov8-pose", "input_size": [640, 640],
                   "strides": [8, 16, 32], "keypoints": 4, "classes": ["ecg"], "conf_threshold": 0.25,
                   "iou_threshold": 0.5, "weights": "int8",    # or null; "weights" as above
                   "letterbox": "square"},   # or "rect": a model with dynamic height/width, images padded only
                                             # to the largest stride (absent: square, to input_size)
      "verifier": {"file": "verifier.onnx", "sha256": "...", "kind": "ecg-verifier", "input_size": [96, 192],
                   "threshold": 0.2, "outputs": ["ecg", "upright"]},
                   # or null/absent: the verifier on the pre-processed page (BGR / 255 in, one logit per
                   # output; "outputs" absent: ["ecg"]); pages below the threshold are "no ECG found"; with
                   # "upright", a warped page it finds upside down is turned by 180 degrees
      "corner_model": {"file": "corners.onnx", "sha256": "...", "kind": "corner-regressor",
                       "input_size": [128, 192], "expand": 0.12},
                   # or null/absent: warp only; places the corners from the sheet's content where edge
                   # refinement did not find all four sides (see edgeecg.preprocess.cornermodel)
      "sam": {"encoder": {"file": ..., "sha256": ...}, "decoder": {...}},   # or null
      "preprocess": {"mode": "crop", "corners": "keypoints", "refine": true, "margin": 0.02,
                     "clahe": {"clip_limit": 2.0, "tile_grid": [8, 8], "space": "lab"}},
      "engines": [{"file": "plans/fold0.fp16.plan", "sha256": "...", "target": "member:0" | "fused" | "detector",
                   "gpu": "Tesla T4", "compute_capability": "7.5", "tensorrt": "10.3.0", "precision": "fp16",
                   "batch_sizes": [1, 4, 8]}],
      "provenance": {"command": "...", "data": "...", "seed": 0, "edgeecg_version": "...",
                     "checkpoints": [{"file": ..., "sha256": ...}], "created": "ISO time"},
      "metrics": {...}
    }

The runtime refuses a manifest of an unknown format and any file whose sha256 differs from the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeecg import LABELS
from edgeecg.errors import BundleError

FORMAT = "edgeecg-bundle/1"
MANIFEST = "manifest.json"

#: Values of the optional "weights" key of a classifier variant or the detector: how weights are stored
#: when not in the model's own precision (absent: they are).
WEIGHT_STORAGE: tuple[str, ...] = ("int8",)

DEFAULT_PREPROCESS: dict[str, Any] = {
    "mode": "crop",
    "corners": "keypoints",
    "refine": True,
    "full_frame_check": True,
    "margin": 0.02,
    "clahe": {"clip_limit": 2.0, "tile_grid": [8, 8], "space": "lab"},
}


def default_bundle_dir() -> Path:
    """The default bundle shipped inside the package."""
    return Path(__file__).resolve().parent / "assets" / "default"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_entry(bundle_dir: str | Path, rel: str, **extra: Any) -> dict[str, Any]:
    """A manifest entry {"file", "sha256", ...} for a file already inside the bundle directory."""
    path = Path(bundle_dir) / rel
    if not path.is_file():
        raise BundleError(f"{path} does not exist")
    return {"file": rel, "sha256": sha256_file(path), **extra}


def iter_file_entries(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every {"file", "sha256"} entry anywhere in the manifest (provenance excluded: those files live elsewhere)."""

    def walk(node: Any, key: str = "") -> Iterator[dict[str, Any]]:
        if key == "provenance":
            return
        if isinstance(node, dict):
            if "file" in node and "sha256" in node:
                yield node
            for k, v in node.items():
                yield from walk(v, k)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v, key)

    yield from walk(manifest)


def validate(manifest: Any) -> None:
    """Check the manifest's structure; raise BundleError naming the first problem."""
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json must hold a JSON object")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise BundleError(f"unknown bundle format {fmt!r}: this edgeecg reads {FORMAT!r}")
    if list(manifest.get("labels", [])) != list(LABELS):
        raise BundleError(f"bundle labels {manifest.get('labels')} differ from {list(LABELS)}")
    clf = manifest.get("classifier")
    if not isinstance(clf, dict):
        raise BundleError("manifest has no 'classifier' section")
    inp = clf.get("input", {})
    for key in ("height", "width", "channel_order", "mean", "std"):
        if key not in inp:
            raise BundleError(f"manifest classifier.input lacks '{key}'")
    if clf.get("output") not in ("logits", "probabilities"):
        raise BundleError("manifest classifier.output must be 'logits' or 'probabilities'")
    thresholds = clf.get("thresholds")
    if not isinstance(thresholds, list) or len(thresholds) != len(LABELS):
        raise BundleError(f"manifest classifier.thresholds must list {len(LABELS)} numbers")
    variants = clf.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise BundleError("manifest classifier.variants is empty")
    for precision, var in variants.items():
        if not var.get("members") and not var.get("fused"):
            raise BundleError(f"classifier variant {precision!r} has neither members nor a fused model")
    det = manifest.get("detector")
    for where, section in [(f"classifier variant {p!r}", v) for p, v in variants.items()] + [
        ("detector", det)
    ]:
        if isinstance(section, dict) and "weights" in section and section["weights"] not in WEIGHT_STORAGE:
            raise BundleError(
                f"{where} has weights {section['weights']!r}; this edgeecg reads {', '.join(WEIGHT_STORAGE)}"
            )
    if isinstance(det, dict) and det.get("letterbox", "square") not in ("square", "rect"):
        raise BundleError(f"detector letterbox {det['letterbox']!r}: expected 'square' or 'rect'")
    for entry in iter_file_entries(manifest):
        rel = Path(entry["file"])
        if rel.is_absolute() or ".." in rel.parts:
            raise BundleError(f"manifest file path {entry['file']!r} must stay inside the bundle")


def load_manifest(bundle_dir: str | Path) -> dict[str, Any]:
    """Read and validate `bundle_dir/manifest.json` (files are not hashed here; see `verify`)."""
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise BundleError(f"no {MANIFEST} in {bundle_dir}: not a model bundle")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path} is not valid JSON ({err})") from None
    validate(manifest)
    return manifest


def verify(bundle_dir: str | Path, manifest: dict[str, Any], files: list[str] | None = None) -> None:
    """Check the sha256 of the manifest's files (all, or just `files`) against the manifest."""
    bundle_dir = Path(bundle_dir)
    for entry in iter_file_entries(manifest):
        if files is not None and entry["file"] not in files:
            continue
        path = bundle_dir / entry["file"]
        if not path.is_file():
            raise BundleError(f"bundle file {entry['file']} is missing from {bundle_dir}")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise BundleError(
                f"bundle file {entry['file']} does not match its manifest sha256 "
                f"(expected {entry['sha256'][:12]}…, found {digest[:12]}…)"
            )


def write_manifest(bundle_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Validate and write manifest.json atomically."""
    validate(manifest)
    path = Path(bundle_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


class AtomicBundleDir:
    """Build a bundle in a temporary sibling directory and swap it into place only on success.

    A failure inside the `with` block leaves any existing bundle at `target` untouched.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
