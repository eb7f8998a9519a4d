"""Verifier training: pages through the runtime chain, a real torch CNN, ONNX export, threshold rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.preprocess import Verifier
from edgeecg.train import verifier as V

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_tiny"


def _logit(p):
    return np.log(p / (1 - p))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_threshold_rule_keeps_the_ecgs():
    pos = np.array([0.05, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995])
    neg = np.array([0.01, 0.02, 0.3, 0.65])
    strict = V.choose_threshold(pos, neg, 0.0)  # no ECG may be lost: between 0.02 (neg) and 0.05 (pos)
    assert strict["threshold"] == pytest.approx(0.031734, abs=1e-6)  # the logit midpoint of 0.02 and 0.05
    assert strict["ecg_rejected"] == 0.0 and strict["negatives_rejected"] == 0.5
    loose = V.choose_threshold(pos, neg, 0.1)  # one of ten may go: between 0.3 (neg) and 0.6 (pos)
    assert loose["threshold"] == pytest.approx(0.444994, abs=1e-6)  # the logit midpoint of 0.3 and 0.6
    assert loose["ecg_rejected"] == 0.1 and loose["negatives_rejected"] == 0.75
    clean = V.choose_threshold(np.array([0.9, 0.95]), np.array([0.1, 0.2]), 0.01)  # separable: a margin
    assert (
        0.2 < clean["threshold"] < 0.9 and clean["ecg_rejected"] == 0.0 and clean["negatives_rejected"] == 1.0
    )
    mixed = V.choose_threshold(np.array([0.1, 0.5, 0.9, 0.95]), np.array([0.2]), 0.25)  # 0.1 must go
    assert (
        0.2 < mixed["threshold"] < 0.5 and mixed["ecg_rejected"] == 0.25 and mixed["negatives_rejected"] == 1
    )
    none_below = V.choose_threshold(np.array([0.3, 0.9]), np.array([0.5]), 0.0)  # nothing to reject
    assert none_below["threshold"] == pytest.approx(0.3, abs=1e-5) and none_below["ecg_rejected"] == 0.0


def test_threshold_rule_cuts_across_the_widest_gap_that_rejects_enough():
    pos = np.array([0.8, 0.9, 0.95, 0.99])
    neg = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.78])  # one negative near the ECGs
    as_many = V.choose_threshold(pos, neg, 0.0)  # the old rule: squeezed between 0.78 and 0.8
    assert as_many["negatives_rejected"] == 1.0 and 0.78 < as_many["threshold"] < 0.8
    # at least 90%: the cut between 0.5 and 0.78 (the widest gap allowed), not the 0.78 | 0.8 sliver
    ninety = V.choose_threshold(pos, neg, 0.0, min_neg_rejected=0.9)
    assert ninety["threshold"] == pytest.approx(0.653132, abs=1e-6)  # the logit midpoint of 0.5 and 0.78
    assert ninety["negatives_rejected"] == 0.9 and ninety["ecg_rejected"] == 0.0
    # cleanly separable: every negative goes, across the wide gap to the ECGs
    sep = V.choose_threshold(pos, np.array([0.001, 0.002, 0.004, 0.01]), 0.0, min_neg_rejected=0.5)
    assert sep["threshold"] == pytest.approx(0.167366, abs=1e-6)  # the logit midpoint of 0.01 and 0.8
    assert sep["negatives_rejected"] == 1.0
    # a wider gap among the ECGs themselves is not taken while a cut below every ECG will do
    spread = V.choose_threshold(np.array([0.3, 0.31, 0.99]), np.array([0.01, 0.2]), 0.5, min_neg_rejected=0.5)
    assert spread["ecg_rejected"] == 0.0 and spread["threshold"] < 0.3
    # unreachable without losing ECGs: the ECGs win, as many negatives as possible go
    hard = V.choose_threshold(np.array([0.5, 0.9]), np.array([0.1, 0.7]), 0.0, min_neg_rejected=1.0)
    assert hard["ecg_rejected"] == 0.0 and hard["negatives_rejected"] == 0.5 and 0.1 < hard["threshold"] < 0.5


@pytest.fixture(scope="module")
def sets(tmp_path_factory, scene_sets):
    root = tmp_path_factory.mktemp("verifier")
    out = scene_sets(root, [("train", 16, 3), ("tune", 12, 4)], 0.4)
    det = root / "det"
    det.mkdir()
    section = json.loads((BUNDLE / "manifest.json").read_text())["detector"]
    shutil.copy(BUNDLE / section["file"], det / "detector.onnx")
    (det / "detector.json").write_text(json.dumps(section))
    return out[0], out[1], det / "detector.onnx"


def test_tiny_training_exports_a_working_check(sets, tmp_path):
    train_dir, tune_dir, detector = sets
    cfg = V.VerifierConfig(
        data=(str(train_dir),), tune=str(tune_dir), detector=str(detector), out=str(tmp_path / "v"),
        input_size=(32, 64), epochs=1, batch=8, threads=1,
    )  # fmt: skip
    res = V.train(cfg)
    out = tmp_path / "v"
    fields = json.loads((out / "verifier.json").read_text())
    assert fields["input_size"] == [32, 64] and 0.0 <= fields["threshold"] < 1.0
    assert fields["onnx_vs_torch_max_abs"] < 1e-3 and res["calibration"]["epoch"] == 1
    # chain pages and ground-truth (upright) pages, for the training and the tuning set
    assert (out / "weights.safetensors").is_file() and len(list((out / "cache").glob("*.npz"))) == 4
    assert fields["outputs"] == ["ecg", "upright"] and 0.0 <= fields["calibration"]["upright_accuracy"] <= 1
    with OnnxRuntimeRunner(out / "verifier.onnx", threads=1) as r:
        v = Verifier.from_manifest(r, fields)
        ecg, up = v.assess(np.full((32, 64, 3), 200, np.uint8))
        assert 0.0 <= ecg <= 1.0 and 0.0 <= up <= 1.0 and v.score(np.full((32, 64, 3), 200, np.uint8)) == ecg


def test_upright_output_learns_which_way_up(sets, tmp_path):
    """A few epochs on ground-truth pages: the upright output tells a page from itself turned by 180 degrees
    on the tuning set (the ECG layout has its header and calibration pulses top-left)."""
    train_dir, tune_dir, detector = sets
    cfg = V.VerifierConfig(
        data=(str(train_dir),), tune=str(tune_dir), detector=str(detector), out=str(tmp_path / "v"),
        input_size=(48, 96), epochs=6, batch=8, threads=1, lr=5e-3,
    )  # fmt: skip
    res = V.train(cfg)
    assert max(h["upright_accuracy"] for h in res["history"]) >= 0.75, res["history"]


def test_missing_inputs_are_refused(sets, tmp_path):
    from edgeecg.errors import UsageError

    train_dir, _, detector = sets
    with pytest.raises(UsageError, match="--tune"):
        V.train(V.VerifierConfig(data=(str(train_dir),), detector=str(detector), out=str(tmp_path)))


def test_copies_are_weathered_rescaled_and_deterministic(sets, tmp_path):
    train_dir, _, detector = sets
    kw = dict(detector=str(detector), input_size=(32, 64), threads=1)
    cfg = V.VerifierConfig(weathered=2, scales=(0.5, 1.5), **kw)
    pages, labels = V.page_set(cfg, train_dir, tmp_path / "a")
    n = 16
    assert pages.shape == (3 * n, 32, 64, 3) and labels.shape == (3 * n,)
    assert np.array_equal(labels[0::3], labels[1::3])  # a copy keeps its scene's label
    assert not np.array_equal(pages[0::3], pages[1::3])  # ...but not its pixels
    again, _ = V.page_set(cfg, train_dir, tmp_path / "b")  # a fresh cache: the same pages
    assert np.array_equal(pages, again)
    plain, _ = V.page_set(V.VerifierConfig(weathered=0, limit=5, **kw), train_dir, tmp_path / "c")
    assert len(plain) == 5


def test_worn_copies_are_cached_on_their_own(sets, tmp_path):
    train_dir, _, detector = sets
    kw = dict(detector=str(detector), input_size=(32, 64), threads=1, weathered=0)
    plain, plain_labels = V.page_set(V.VerifierConfig(**kw), train_dir, tmp_path)
    cached = sorted(p.name for p in tmp_path.iterdir())
    worn, labels = V.worn_set(V.VerifierConfig(worn=2, **kw), train_dir, tmp_path)
    assert worn.shape == (2 * len(plain), 32, 64, 3)
    assert np.array_equal(labels[0::2], plain_labels) and np.array_equal(labels[1::2], plain_labels)
    assert not np.array_equal(worn[0::2], plain)
    # the plain pages' cache is still the one they were first stored under
    assert set(cached) < {p.name for p in tmp_path.iterdir()}
    again, _ = V.page_set(V.VerifierConfig(worn=2, **kw), train_dir, tmp_path)
    assert np.array_equal(again, plain)


def test_photos_become_negative_crops(tmp_path, sets):
    import cv2

    _, _, detector = sets
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(folder / f"p{i}.png"), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    cfg = V.VerifierConfig(detector=str(detector), input_size=(32, 64), threads=1, crops_per_photo=3)
    pages, labels = V.photo_set(cfg, folder, tmp_path / "cache")
    assert pages.shape == (6, 32, 64, 3) and not labels.any()
    from edgeecg.errors import UsageError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no photos"):
        V.photo_set(cfg, tmp_path / "empty", tmp_path / "cache")


def test_scales_option_is_checked():
    from edgeecg.errors import UsageError

    assert V._parse_scales("0.35-1.6") == (0.35, 1.6)
    for bad in ("1.6-0.3", "x", "0-1"):
        with pytest.raises(UsageError, match="--scales"):
            V._parse_scales(bad)


def test_lowest_cut_sits_just_above_the_negatives_it_must_reject():
    pos = np.array([0.3, 0.6, 0.9, 0.99, 0.999])
    neg = np.linspace(0.001, 0.02, 100)
    gap = V.choose_threshold(pos, neg, 0.0, min_neg_rejected=0.97)
    low = V.choose_threshold(pos, neg, 0.0, min_neg_rejected=0.97, cut_rule="lowest")
    assert low["threshold"] < 0.02 < gap["threshold"]  # the widest gap lies between the negatives and 0.3
    assert low["negatives_rejected"] >= 0.97 and low["ecg_rejected"] == 0.0
    # it never costs more ECGs than allowed: then the other rules decide
    crowded = V.choose_threshold(np.array([0.01, 0.9]), neg, 0.0, min_neg_rejected=0.97, cut_rule="lowest")
    assert crowded["ecg_rejected"] == 0.0


def test_calibrate_only_rechooses_the_threshold_of_a_trained_check(sets, tmp_path):
    train_dir, tune_dir, detector = sets
    kw = dict(tune=(str(tune_dir),), detector=str(detector), out=str(tmp_path / "v"), input_size=(32, 64))
    V.train(V.VerifierConfig(data=(str(train_dir),), epochs=1, batch=8, threads=1, **kw))
    onnx = (tmp_path / "v" / "verifier.onnx").read_bytes()
    fields = V.calibrate(V.VerifierConfig(cut_rule="lowest", min_negatives_rejected=0.5, threads=1, **kw))
    assert fields["calibration"]["cut_rule"] == "lowest" and 0.0 <= fields["threshold"] < 1.0
    assert json.loads((tmp_path / "v" / "verifier.json").read_text())["threshold"] == fields["threshold"]
    assert (tmp_path / "v" / "verifier.onnx").read_bytes() == onnx  # the model is untouched
    from edgeecg.errors import UsageError

    with pytest.raises(UsageError, match="no trained verifier"):
        V.calibrate(V.VerifierConfig(**{**kw, "out": str(tmp_path / "nothing")}))


def test_paper_closeups_are_negatives_of_their_own_stream(sets, tmp_path):
    _, _, detector = sets
    cfg = V.VerifierConfig(detector=str(detector), input_size=(32, 64), threads=1)
    pages, labels = V.closeup_set(cfg, 6, tmp_path)
    assert pages.shape == (6, 32, 64, 3) and not labels.any()
    assert np.array_equal(V.closeup_set(cfg, 6, tmp_path / "again")[0], pages)  # deterministic
    other, _ = V.closeup_set(cfg, 3, tmp_path)  # the tuning set (a third as many) is drawn apart
    assert not any(np.array_equal(o, p) for o in other for p in pages)
