"""Data pipeline: sources, pre-processing hook, tensors in RGB, deterministic sampler and augmentation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgeecg.train.augment import SplineShadow, build_augment, seed_transform
from edgeecg.train.config import AugmentConfig, DataConfig
from edgeecg.train.data import CropClahe, EpochSampler, TrainDataset, make_source, to_tensor

torch = pytest.importorskip("torch")


def test_spline_shadow_darkens_and_is_seeded():
    img = np.full((64, 128, 3), 200, np.uint8)
    t = SplineShadow(strength=(0.5, 0.5), p=1.0)
    t.set_random_seed(1)
    a = t(image=img)["image"]
    t.set_random_seed(1)
    b = t(image=img)["image"]
    assert np.array_equal(a, b) and a.mean() < 200 and a.max() <= 200


def test_augmentation_depends_only_on_the_sample_seed():
    aug = build_augment(AugmentConfig(rotate_p=1, perspective_p=1, shadow_p=1))
    img = np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    seed_transform(aug, 11)
    a = aug(image=img)["image"]
    seed_transform(aug, 99)
    aug(image=img)
    seed_transform(aug, 11)
    assert np.array_equal(a, aug(image=img)["image"])


def test_to_tensor_is_rgb_chw_normalised():
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = 255  # pure blue in BGR
    x = to_tensor(img, mean=(0, 0, 0), std=(1, 1, 1))
    assert x.shape == (3, 4, 6) and x.dtype == torch.float32
    assert float(x[2].min()) == 1.0 and float(x[0].max()) == 0.0  # blue lands in the last (B of RGB) plane


def test_dataset_crops_paper_box_and_yields_tensors(tiny_dataset):
    src = make_source(DataConfig(path=str(tiny_dataset)))
    assert len(src) == 32 and src.labels.shape == (32, 5)
    ds = TrainDataset([src], CropClahe((64, 128)), (64, 128))
    x, y = ds[(3, 0)]
    assert x.shape == (3, 64, 128) and y.shape == (5,)
    img = ds.image(3)
    # The grey (90) background outside the paper box is gone after the crop.
    assert np.median(img[:, :3]) > 150


def test_csv_with_renamed_columns_and_absolute_paths(tiny_dataset, tmp_path):
    import csv

    with open(tiny_dataset / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "mine.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "mi", "af", "hyp", "cd", "sttc"])
        for r in rows:
            w.writerow([str(tiny_dataset / r["image"]), r["MI"], r["AF"], r["HYP"], r["CD"], r["STTC"]])
    cfg = DataConfig(
        path=str(tmp_path / "mine.csv"),
        image_column="file",
        label_columns={"MI": "mi", "AF": "af", "HYP": "hyp", "CD": "cd", "STTC": "sttc"},
    )
    src = make_source(cfg)
    ref = make_source(DataConfig(path=str(tiny_dataset)))
    assert np.array_equal(src.labels, ref.labels)
    assert src.load(0)[0].shape == ref.load(0)[0].shape


def test_sampler_is_deterministic_per_epoch_and_weighted():
    w = np.r_[np.full(10, 0.9 / 10), np.full(90, 0.1 / 90)]  # source A: 10 items, 90% of draws
    s = EpochSampler(100, num_samples=2000, weights=w, seed=5)
    s.set_epoch(3)
    a = list(s)
    s.set_epoch(4)
    b = list(s)
    s.set_epoch(3)
    assert a == list(s) and a != b
    share_a = np.mean([i < 10 for i, _ in a])
    assert 0.85 < share_a < 0.95
    # DDP shards partition the epoch's draws.
    r0, r1 = (EpochSampler(100, 2000, w, seed=5, rank=r, world=2) for r in (0, 1))
    for r in (r0, r1):
        r.set_epoch(3)
    assert sorted(list(r0) + list(r1)) == sorted(a)


def test_on_the_fly_synth_matches_edgeecg_synth_items(tmp_path):
    """Item i of the streamed source is item i of `edgeecg synth` with the same seed and style."""
    import csv
    import json

    synth = pytest.importorskip("edgeecg.synth.dataset")
    synth.write_dataset(
        synth.SynthConfig(out=str(tmp_path / "ds"), n=3, seed=3, style="photo"), progress=False
    )
    src = make_source(DataConfig(kind="synth", synth_n=3, synth_seed=3, synth_style="photo"))
    with open(tmp_path / "ds" / "labels.csv", newline="") as f:
        written = np.array(
            [[int(r[k]) for k in ("MI", "AF", "HYP", "CD", "STTC")] for r in csv.DictReader(f)]
        )
    assert np.array_equal(src.labels, written)
    geo = [json.loads(line) for line in (tmp_path / "ds" / "geometry.jsonl").read_text().splitlines()]
    img, g = src.load(2)
    assert img.shape[:2] == (geo[2]["height"], geo[2]["width"])
    np.testing.assert_allclose(g["paper_box"], geo[2]["paper_box"], atol=1e-3)


def test_cached_source_equals_uncached_and_rebuilds_on_change(tiny_dataset, tmp_path):
    from edgeecg.train.data import CachedSource, Subset

    src = make_source(DataConfig(path=str(tiny_dataset)))
    pre = CropClahe((64, 128))
    cached = CachedSource(src, pre, (64, 128), tmp_path / "c", "k1", progress=False)
    assert cached.path.stat().st_size == 32 * 64 * 128 * 3
    plain = TrainDataset([src], pre, (64, 128))
    fast = TrainDataset([Subset(cached, range(32))], pre, (64, 128))
    for i in (0, 7, 31):
        np.testing.assert_array_equal(fast.image(i), plain.image(i))
    assert cached.images == src.images
    # Same source and key: the file is reused, not rebuilt.
    mtime = cached.path.stat().st_mtime_ns
    again = CachedSource(src, pre, (64, 128), tmp_path / "c", "k1", progress=False)
    assert again.path == cached.path and again.path.stat().st_mtime_ns == mtime
    # Another pre-processing key or a changed labels.csv gives another file.
    assert CachedSource(src, pre, (64, 128), tmp_path / "c", "k2", progress=False).path != cached.path
    csv = tiny_dataset / "labels.csv"
    csv.write_text(csv.read_text() + "\n")
    changed = CachedSource(
        make_source(DataConfig(path=str(tiny_dataset))), pre, (64, 128), tmp_path / "c", "k1"
    )
    assert changed.path != cached.path


def test_cache_builds_alike_in_threads_and_runs_can_share_its_folder(tiny_dataset, tmp_path, tiny_cfg):
    from edgeecg.train.data import CachedSource
    from edgeecg.train.stages import open_source

    src = make_source(DataConfig(path=str(tiny_dataset)))
    pre = CropClahe((64, 128))
    one = CachedSource(src, pre, (64, 128), tmp_path / "t1", "k", progress=False, workers=1)
    two = CachedSource(src, pre, (64, 128), tmp_path / "t2", "k", progress=False, workers=2)
    assert one.path.read_bytes() == two.path.read_bytes()
    # Two runs naming one cache_dir: the second finds the first's file instead of building its own.
    shared = tmp_path / "shared"
    cfg = tiny_cfg(cache=True, cache_dir=str(shared), preprocess="crop_clahe")
    a = open_source(cfg, DataConfig(path=str(tiny_dataset)), tmp_path / "run_a")
    mtime = a.path.stat().st_mtime_ns
    b = open_source(cfg, DataConfig(path=str(tiny_dataset)), tmp_path / "run_b")
    assert a.path.parent == shared and b.path == a.path and b.path.stat().st_mtime_ns == mtime
    assert not (tmp_path / "run_a" / "cache").exists() and not (tmp_path / "run_b" / "cache").exists()
    # Without it, each run caches in its own OUT/cache.
    c = open_source(
        dataclasses.replace(cfg, cache_dir=""), DataConfig(path=str(tiny_dataset)), tmp_path / "run_c"
    )
    assert c.path.parent == tmp_path / "run_c" / "cache"


def test_warp_preprocess_flattens_the_ground_truth_quad(tiny_dataset):
    import cv2

    from edgeecg.train.config import config_from_dict
    from edgeecg.train.data import WarpClahe, make_preprocess

    assert isinstance(make_preprocess(config_from_dict({"preprocess": "warp_clahe"})), WarpClahe)
    # A tilted sheet: a white quad with a black bar near its left edge, on grey.
    img = np.full((300, 400, 3), 90, np.uint8)
    quad = np.array([[60, 40], [340, 70], [330, 260], [50, 230]], np.float32)
    cv2.fillPoly(img, [quad.astype(np.int32)], (235, 235, 235))
    m = cv2.getPerspectiveTransform(np.float32([[0, 0], [1, 0], [1, 1], [0, 1]]), quad)
    bar = cv2.perspectiveTransform(np.float32([[[0.1, 0.2], [0.15, 0.2], [0.15, 0.8], [0.1, 0.8]]]), m)
    cv2.fillPoly(img, [bar[0].astype(np.int32)], (20, 20, 20))
    out = WarpClahe((64, 128), clip=1.0, tile=2)(img, {"paper_quad": quad.tolist()})
    assert out.shape == (64, 128, 3)
    grey = out.mean(-1)
    assert grey[2:-2, 2:-2].min() < 80  # the bar survives
    assert grey[20:44, 13:19].mean() < 90 and grey[20:44, 40:120].mean() > 150  # at its flattened place
    assert np.median(grey[:, -3:]) > 150  # no grey background: the sheet fills the frame
    # Without a quad the whole image is used.
    assert WarpClahe((64, 128))(img, None).shape == (64, 128, 3)


def test_the_corner_models_passes_are_part_of_the_cache_key(tmp_path):
    from edgeecg.train.config import TrainConfig
    from edgeecg.train.data import preprocess_key

    det, cm = tmp_path / "det.onnx", tmp_path / "corners.onnx"
    det.write_bytes(b"detector")
    cm.write_bytes(b"corners")
    cfg = TrainConfig(preprocess="edgeecg", runtime_detector=str(det), runtime_corner_model=str(cm))

    def key(sidecar):
        cm.with_suffix(".json").write_text(json.dumps({"input_size": [128, 192], "expand": 0.12, **sidecar}))
        return preprocess_key(cfg)

    one = key({})
    assert key({"passes": 1}) == one  # caches built before "passes" stay valid
    assert key({"passes": 3}) != one and key({"passes": 3}).endswith("x3")


def test_the_verifier_in_stage_ii_pre_processing_is_part_of_the_cache_key(tmp_path):
    from edgeecg.train.config import TrainConfig
    from edgeecg.train.data import preprocess_key

    det, check = tmp_path / "det.onnx", tmp_path / "verifier.onnx"
    det.write_bytes(b"detector")
    check.write_bytes(b"check")
    without = preprocess_key(TrainConfig(preprocess="edgeecg", runtime_detector=str(det)))
    with_check = preprocess_key(
        TrainConfig(preprocess="edgeecg", runtime_detector=str(det), runtime_verifier=str(check))
    )
    assert with_check.startswith(without) and with_check != without  # pages may be turned: another cache
