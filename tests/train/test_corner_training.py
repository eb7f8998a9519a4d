"""Corner model training: rough quads around synthetic scenes, the runtime's own pages, a real torch CNN,
ONNX export, and the files a bundle and the evaluation take."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.errors import UsageError
from edgeecg.preprocess import CornerModel
from edgeecg.preprocess.cornermodel import UNIT, corner_page, to_unit
from edgeecg.train import corners as K

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_tiny"


@pytest.fixture(scope="module")
def sets(tmp_path_factory, scene_sets):
    return scene_sets(tmp_path_factory.mktemp("corners"), [("train", 12, 5), ("val", 6, 6)], 0.2)


def test_rough_quads_keep_the_true_order_and_stay_near():
    quad = np.array([[100, 80], [700, 60], [720, 540], [90, 560]], np.float32)
    rng = np.random.default_rng(0)
    for rough in K.rough_quads(quad, (600, 800), rng, 200):
        # each rough corner stands for the true corner of the same index (never a turned order)
        d = np.linalg.norm(rough - quad, axis=1)
        assert d.max() < 0.25 * np.linalg.norm(quad[2] - quad[0])


def test_targets_put_the_true_corners_in_the_rough_quads_unit_square(sets):
    train_dir, _ = sets
    cfg = K.CornerConfig(input_size=(64, 96), threads=1)
    x, y = K.build_set(train_dir, cfg, per_scene=2, seed=0)
    assert x.shape[1:] == (64, 96, 3) and x.dtype == np.uint8 and y.shape == (len(x), 8)
    assert np.abs(y).max() < 0.5 and np.abs(y).mean() > 1e-3  # rough quads are rough, but near
    # the target of a rough quad that is the true quad itself is zero
    rows = [json.loads(line) for line in (train_dir / "geometry.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["paper_quad"] is not None)
    import cv2

    img = cv2.imread(str(train_dir / row["image"]))
    quad = np.asarray(row["paper_quad"], np.float32)
    page, hom = corner_page(img, quad, cfg.input_size, cfg.expand)
    np.testing.assert_allclose(to_unit(hom, quad) - UNIT, 0, atol=1e-4)


def test_tiny_training_exports_a_model_the_runtime_and_a_bundle_take(sets, tmp_path):
    train_dir, val_dir = sets
    out = tmp_path / "c"
    cfg = K.CornerConfig(
        data=(str(train_dir),), val=str(val_dir), out=str(out), input_size=(64, 96), per_scene=2,
        width=4, epochs=1, batch=8, threads=1, passes=2,
    )  # fmt: skip
    res = K.train(cfg)
    fields = json.loads((out / "corners.json").read_text())
    assert fields["input_size"] == [64, 96] and fields["expand"] == cfg.expand and fields["passes"] == 2
    assert fields["onnx_vs_torch_max_abs"] < 1e-3 and res["validation"]["epoch"] == 1
    assert (out / "weights.safetensors").is_file() and (out / "corners_config.json").is_file()
    import cv2

    img = cv2.imread(str(next((val_dir / "images").iterdir())))
    quad = np.array([[20, 20], [230, 25], [235, 170], [15, 172]], np.float32)
    with OnnxRuntimeRunner(out / "corners.onnx", threads=1) as r:
        placed = CornerModel.from_manifest(r, fields).corners(img, quad)
    assert placed.shape == (4, 2) and np.isfinite(placed).all()
    # the bundle writer takes it with its manifest entry (sha256, input size, margin)
    from edgeecg.export.bundle_writer import _corner_model_entry

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    entry = _corner_model_entry(out / "corners.onnx", bundle)
    assert entry["file"] == "corners.onnx" and len(entry["sha256"]) == 64 and entry["input_size"] == [64, 96]
    assert entry["passes"] == 2
    # and the evaluation runs the chain with it
    from edgeecg.train.detector import evaluate

    section = json.loads((BUNDLE / "manifest.json").read_text())["detector"]
    det = tmp_path / "detector.onnx"
    shutil.copy(BUNDLE / section["file"], det)
    det.with_suffix(".json").write_text(json.dumps(section))
    res = evaluate(val_dir, det, 0.0, corners="classical", corner_model=out / "corners.onnx")
    assert res["corner_model"] == str(out / "corners.onnx") and 0.0 <= res["corner_err_le_1.5pct"] <= 1.0
    assert 0.0 <= res["all_four_corners_err_le_1.5pct"] <= 1.0


def test_the_cli_refuses_what_it_cannot_use(sets, tmp_path, capsys):
    from edgeecg.train.cli import main

    train_dir, _ = sets
    assert (
        main(["corners", "--data", str(train_dir), "--val", str(tmp_path / "nope"), "--out", str(tmp_path)])
        == 2
    )
    assert "nope has no geometry.jsonl" in capsys.readouterr().err
    args = ["corners", "--data", str(train_dir), "--val", str(train_dir), "--out", str(tmp_path / "o")]
    assert main([*args, "--input-size", "50x96"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main([*args, "--passes", "0"]) == 2
    assert "--passes" in capsys.readouterr().err


@pytest.mark.gpu
def test_training_on_the_gpu_matches_the_cpus_start(sets, tmp_path):
    """The same tiny run on CUDA and on the CPU: same rough quads, same augmentation draws, so the first
    epoch's validation error agrees to float tolerance (kernels differ in rounding only)."""
    train_dir, val_dir = sets
    res = {}
    for device in ("cpu", "cuda"):
        cfg = K.CornerConfig(
            data=(str(train_dir),), val=str(val_dir), out=str(tmp_path / device), input_size=(64, 96),
            per_scene=2, width=4, epochs=1, batch=8, threads=1, device=device,
        )  # fmt: skip
        res[device] = K.train(cfg)["validation"]["median_error"]
    assert res["cuda"] == pytest.approx(res["cpu"], rel=0.05, abs=1e-3)
    assert (tmp_path / "cuda" / "corners.onnx").is_file()


def test_the_device_must_be_one_it_knows(tmp_path, sets):
    with pytest.raises(UsageError, match="device"):
        K.train(K.CornerConfig(data=("x",), val="y", out=str(tmp_path), device="tpu"))
    import torch

    if not torch.cuda.is_available():  # asking for CUDA where there is none is a clear error too
        train_dir, val_dir = sets
        cfg = K.CornerConfig(
            data=(str(train_dir),), val=str(val_dir), out=str(tmp_path / "c"), input_size=(64, 96),
            per_scene=1, width=4, epochs=1, batch=8, threads=1, device="cuda",
        )  # fmt: skip
        with pytest.raises(UsageError, match="no CUDA device"):
            K.train(cfg)
