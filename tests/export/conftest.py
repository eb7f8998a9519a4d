"""Fixtures for export tests: tiny random ConvNeXt fold checkpoints and a yolov8n-pose built from yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeecg import LABELS

# A ConvNeXt small enough to export in well under a second; the sidecar's model_kwargs rebuild it.
TINY_KWARGS = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]}
INPUT = {
    "height": 64,
    "width": 128,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "channel_order": "RGB",
}


def write_checkpoint(
    directory: Path,
    fold: int,
    seed: int | None = None,
    head_scale: float = 50.0,
    layer_scale: float | None = None,
    model_kwargs: dict | None = None,
) -> Path:
    """A random-init tiny ConvNeXt written by training's own `save_weights`: foldK.safetensors + foldK.json.

    Args:
        head_scale: factor on the classifier weights.
        layer_scale: set every block's layer scale (gamma) to this; None keeps timm's init (1e-6: inert blocks).
        model_kwargs: timm ConvNeXt arguments (default TINY_KWARGS); BatchNorm statistics are randomised.
    """
    import timm
    import torch

    from edgeecg.train.checkpoint import save_weights

    torch.manual_seed(fold if seed is None else seed)
    kwargs = TINY_KWARGS if model_kwargs is None else model_kwargs
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=len(LABELS), **kwargs)
    # Random init leaves the head near zero; scale it so probabilities spread and comparisons mean something.
    with torch.no_grad():
        model.head.fc.weight.mul_(head_scale)
        if layer_scale is not None:
            for name, p in model.named_parameters():
                if name.endswith(".gamma"):
                    p.fill_(layer_scale)
        for m in model.modules():  # trained-looking statistics, so that a mixed-up channel shows
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    weights = directory / f"fold{fold}.safetensors"
    sidecar = {
        "model": "convnext_atto",
        "model_kwargs": kwargs,
        "input": INPUT,
        "preprocess": {"mode": "crop_clahe", "clahe_clip": 2.0, "clahe_tile": 8},
        "fold": fold,
        "metrics": {"val_macro_auroc": 0.5},
        "config": {"seed": 0},
        "output": "logits",
    }
    save_weights(weights, model.state_dict(), sidecar)
    return weights


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory) -> Path:
    """Two fold checkpoints in one directory."""
    d = tmp_path_factory.mktemp("ckpts")
    for fold in (0, 1):
        write_checkpoint(d, fold)
    return d


@pytest.fixture(scope="session")
def detector_pt(tmp_path_factory) -> Path:
    """A yolov8n-pose (1 class, 4 corner keypoints) built from yaml, random init, saved as a .pt."""
    import os

    d = tmp_path_factory.mktemp("det")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(d / "yolo-config"))
    from ultralytics import YOLO
    from ultralytics.nn.tasks import PoseModel

    yolo = YOLO("yolov8n-pose.yaml")
    yolo.model = PoseModel("yolov8n-pose.yaml", nc=1, data_kpt_shape=(4, 3), verbose=False)
    yolo.model.names = {0: "ecg"}
    path = d / "detector.pt"
    yolo.save(str(path))
    return path


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, ckpt_dir, detector_pt) -> tuple[Path, dict]:
    """One full export (fp32 + fp16, fused, detector) shared by the read-only tests."""
    from edgeecg.export.bundle_writer import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "bundle"
    cfg = ExportConfig(
        checkpoints=(str(ckpt_dir),),
        out=str(out),
        detector=str(detector_pt),
        detector_imgsz=64,
        precision="fp16",
        fused=True,
        parity_samples=16,
        command="pytest",
    )
    return out, export_bundle(cfg)


@pytest.fixture(scope="session")
def make_checkpoint():
    """`write_checkpoint(directory, fold, ...)` for tests that need their own checkpoints."""
    return write_checkpoint
