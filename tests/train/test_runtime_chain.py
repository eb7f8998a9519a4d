"""The runtime chain as a training hook: same output as the Preprocessor serving uses, never rejects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.sheets import scene

from edgeecg.errors import UsageError
from edgeecg.preprocess import PreprocessConfig, Preprocessor
from edgeecg.train.runtime_chain import RuntimeHook

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_tiny"


@pytest.fixture()
def detector(tmp_path):
    section = json.loads((BUNDLE / "manifest.json").read_text())["detector"]
    shutil.copy(BUNDLE / section["file"], tmp_path / "detector.onnx")
    (tmp_path / "detector.json").write_text(json.dumps(section))
    return tmp_path / "detector.onnx"


def test_hook_equals_the_serving_chain(detector):
    hook = RuntimeHook(detector, (64, 128), mode="warp", corners="classical", clahe_clip=2.0, clahe_tile=8)
    img = scene()
    serve = Preprocessor(
        PreprocessConfig(mode="warp", corners="classical", conf_threshold=0.0), hook.detector, (64, 128)
    )
    out = hook(img, {"paper_quad": [[0, 0], [1, 0], [1, 1], [0, 1]]})  # ground truth is ignored
    np.testing.assert_array_equal(out, serve(img).image)
    assert out.shape == (64, 128, 3) and out.dtype == np.uint8


def test_hook_never_rejects(detector):
    hook = RuntimeHook(detector, (64, 128))
    hook.cfg = hook.pre.cfg = PreprocessConfig(mode="warp", conf_threshold=2.0)  # nothing can pass
    out = hook(np.full((120, 160, 3), 128, np.uint8))
    assert out.shape == (64, 128, 3) and hook.fallbacks == 1


def test_missing_detector_json_is_a_usage_error(tmp_path):
    (tmp_path / "detector.onnx").write_bytes(b"x")
    with pytest.raises(UsageError, match="detector.json"):
        RuntimeHook(tmp_path / "detector.onnx", (64, 128))


def test_threaded_cache_build_equals_the_serial_one(detector, tmp_path):
    """A cache built by several threads through the runtime chain (one shared detector session) is the
    same as the one built serially."""
    from edgeecg.train.config import DataConfig
    from edgeecg.train.data import CachedSource, make_source

    src = make_source(DataConfig(kind="synth", synth_n=8, synth_seed=5, synth_style="photo"))
    hook = RuntimeHook(detector, (64, 128))
    serial = CachedSource(src, hook, (64, 128), tmp_path / "a", "k", progress=False)
    threaded = CachedSource(src, hook, (64, 128), tmp_path / "b", "k", progress=False, workers=4)
    np.testing.assert_array_equal(np.asarray(threaded.data), np.asarray(serial.data))
    assert np.asarray(serial.data).std() > 10  # real pages, not blanks


def test_hook_with_the_verifier_turns_as_serving_does_and_never_rejects(detector, tmp_path):
    from fixtures.handmade import brightness_verifier_onnx

    from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
    from edgeecg.preprocess import Verifier

    check = brightness_verifier_onnx(tmp_path / "verifier.onnx", (32, 64))
    # a threshold no page reaches: serving turns every page away, training keeps them all
    (tmp_path / "verifier.json").write_text(json.dumps({"input_size": [32, 64], "threshold": 0.999}))
    hook = RuntimeHook(detector, (64, 128), verifier=check)
    img = scene()
    out = hook(img)
    assert hook.fallbacks == 0 and hook.pre.verifier is not None
    with OnnxRuntimeRunner(check, threads=1) as r:
        section = json.loads((tmp_path / "verifier.json").read_text())
        serve = Preprocessor(
            PreprocessConfig(mode="warp", corners="classical", conf_threshold=0.0),
            hook.detector,
            (64, 128),
            verifier=Verifier.from_manifest(r, section),
        )(img)
    assert serve.image is None and serve.rejected.startswith("no ECG found")
    # the same page the serving chain flattened before its check said no
    cfg = PreprocessConfig(mode="warp", corners="classical", conf_threshold=0.0)
    plain = Preprocessor(cfg, hook.detector, (64, 128))(img)
    np.testing.assert_array_equal(out, plain.image)
    (tmp_path / "verifier.json").unlink()
    with pytest.raises(UsageError, match="verifier.json"):
        RuntimeHook(detector, (64, 128), verifier=check)
