"""Fixtures for the training tests: a tiny labelled dataset dir and a tiny (real timm) ConvNeXt config."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeecg import LABELS

pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("albumentations")

#: A real timm ConvNeXt, shrunk so a training step takes milliseconds.
TINY_MODEL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32]}


def make_dataset(root: Path, n: int = 32, seed: int = 0, size: tuple[int, int] = (96, 160)) -> Path:
    """A dataset dir in docs/design.md section 2 shape: paper on a grey background, label-dependent marks."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    h, w = size
    rows, geo = [], []
    # Every label gets positives (at least ~1/4 of the samples), so folds can hold them all.
    labels = (rng.random((n, len(LABELS))) < 0.3).astype(int)
    for c in range(len(LABELS)):
        labels[c * 4 : c * 4 + 4, c] = 1
    for i in range(n):
        img = np.full((h, w, 3), 90, np.uint8)
        x0, y0, x1, y1 = 8 + int(rng.integers(0, 6)), 6, w - 8, h - 6
        img[y0:y1, x0:x1] = 235
        for c in range(len(LABELS)):
            if labels[i, c]:  # a dark bar per positive label at a fixed place
                xc = x0 + 10 + c * (x1 - x0 - 20) // len(LABELS)
                cv2.rectangle(img, (xc, y0 + 10), (xc + 8, y1 - 10), (30, 30, 30), -1)
        name = f"images/{i:04d}.png"
        cv2.imwrite(str(root / name), img)
        rows.append({"image": name, **{k: int(labels[i, c]) for c, k in enumerate(LABELS)}})
        quad = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        geo.append({"image": name, "paper_quad": quad, "paper_box": [x0, y0, x1, y1]})
    with open(root / "labels.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["image", *LABELS])
        wr.writeheader()
        wr.writerows(rows)
    (root / "geometry.jsonl").write_text("".join(json.dumps(g) + "\n" for g in geo))
    return root


def tiny_config(**over):
    """A TrainConfig for the tiny model at 64 x 128."""
    from edgeecg.train.config import config_from_dict

    base = {
        "model": "convnext_atto",
        "model_kwargs": TINY_MODEL,
        "input_height": 64,
        "input_width": 128,
        "batch_size": 8,
        "eval_batch_size": 16,
        "epochs": 1,
        "warmup_epochs": 0.5,
        "lr": 1e-3,
        "threads": 1,
        "progress": False,
        "folds": 2,
    }
    base.update(over)
    return config_from_dict(base)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """32 images, every label present at least 4 times."""
    return make_dataset(tmp_path_factory.mktemp("tinyset"), n=32)


@pytest.fixture
def tiny_kwargs() -> dict:
    """timm constructor arguments of the tiny ConvNeXt."""
    return dict(TINY_MODEL)


@pytest.fixture
def tiny_cfg():
    """Factory: tiny_cfg(**overrides) -> TrainConfig."""
    return tiny_config


def write_scene_sets(root: Path, specs: list[tuple[str, int, int]], negatives: float) -> list[Path]:
    """Small `edgeecg synth` scene dirs (mixed styles, 256x192, geometry and no-ECG negatives): one per
    (name, n, seed) in `specs`."""
    from edgeecg.synth.dataset import SynthConfig, write_dataset

    out = []
    for name, n, seed in specs:
        cfg = SynthConfig(
            out=str(root / name), n=n, seed=seed, style="mix", size=(256, 192), negatives=negatives
        )
        write_dataset(cfg, progress=False)
        out.append(root / name)
    return out


@pytest.fixture(scope="session")
def scene_sets():
    """`write_scene_sets(root, specs, negatives)` for tests that need synthetic scenes with geometry."""
    return write_scene_sets


def _stage1_killed_and_resumed(cfg, out: Path) -> dict:
    from edgeecg.train.model import read_state_dict
    from edgeecg.train.stages import run_stage1

    class Killed(Exception):
        pass

    def stop(epoch):
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        run_stage1(cfg, out, on_epoch_end=stop)
    run_stage1(cfg, out)
    return read_state_dict(out / "stage1" / "last.safetensors")


@pytest.fixture
def stage1_killed_and_resumed():
    """`f(cfg, out)`: stage I killed after its first epoch, run again to the end; its last weights."""
    return _stage1_killed_and_resumed
