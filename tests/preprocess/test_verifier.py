"""The verifier on the pre-processed page: scores, rejection, manifest section, bad outputs."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.handmade import brightness_verifier_onnx, constant_detector_onnx, make_hand_scene

from edgeecg.backends.onnxruntime import OnnxRuntimeRunner
from edgeecg.errors import BackendError, UsageError
from edgeecg.preprocess import PreprocessConfig, Preprocessor, Verifier

OUT = (32, 64)


@pytest.fixture
def verifier(tmp_path):
    with OnnxRuntimeRunner(brightness_verifier_onnx(tmp_path / "v.onnx", OUT), threads=1) as r:
        yield Verifier(r, OUT, threshold=0.5)


def test_scores_follow_the_model(verifier):
    white = np.full((*OUT, 3), 250, np.uint8)
    black = np.full((64, 128, 3), 10, np.uint8)  # another size: resized to the verifier's input
    assert verifier.score(white) > 0.99
    assert verifier.score(black) < 0.01


def test_a_page_below_the_threshold_is_rejected(verifier):
    cfg = PreprocessConfig(mode="none", clahe_space="none")
    bright = Preprocessor(cfg, None, OUT, verifier=verifier)(np.full((48, 96, 3), 240, np.uint8))
    assert bright.rejected is None and bright.ecg_score > 0.99 and "verify" in bright.timings
    dark = Preprocessor(cfg, None, OUT, verifier=verifier)(np.full((48, 96, 3), 20, np.uint8), debug=True)
    assert dark.image is None and dark.ecg_score < 0.01
    assert dark.rejected == f"no ECG found (verifier {dark.ecg_score:.2f} < 0.50)"
    assert "input" in dark.stages


def test_manifest_section_is_checked(verifier):
    v = Verifier.from_manifest(verifier.runner, {"input_size": [32, 64], "threshold": 0.3})
    assert v.input_size == (32, 64) and v.threshold == 0.3
    with pytest.raises(UsageError):
        Verifier.from_manifest(verifier.runner, {"threshold": 0.3})
    with pytest.raises(UsageError):
        Verifier(verifier.runner, OUT, threshold=1.5)


def test_an_output_that_is_not_one_logit_is_refused(tmp_path):
    path = constant_detector_onnx(tmp_path / "c.onnx", np.zeros((1, 3), np.float32), size=OUT)
    with OnnxRuntimeRunner(path, threads=1) as r, pytest.raises(BackendError):
        Verifier(r, OUT, 0.5).score(make_hand_scene((64, 32)).image)


def test_a_bundle_with_a_verifier_checks_every_page(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from fixtures.sheets import scene

    from edgeecg.bundle import file_entry
    from edgeecg.errors import BundleError
    from edgeecg.pipeline import Pipeline

    bundle = Path(shutil.copytree(Path(__file__).parents[1] / "fixtures" / "bundle_tiny", tmp_path / "b"))
    brightness_verifier_onnx(bundle / "verifier.onnx", OUT)

    def set_threshold(thr: float) -> None:
        m = json.loads((bundle / "manifest.json").read_text())
        m["verifier"] = file_entry(bundle, "verifier.onnx", input_size=list(OUT), threshold=thr)
        (bundle / "manifest.json").write_text(json.dumps(m))

    set_threshold(0.2)  # a white sheet after CLAHE is bright: accepted
    with Pipeline.from_bundle(bundle, backend="onnxruntime", threads=1) as pipe:
        (r,) = pipe.run([scene(box=(60, 50, 420, 300))])
    assert r.ok and r.ecg_score > 0.2 and "verify" in r.timings
    assert json.loads(r.to_json())["ecg_score"] == r.ecg_score
    set_threshold(0.9999)
    with Pipeline.from_bundle(bundle, backend="onnxruntime", threads=1) as pipe:
        (r,) = pipe.run([scene(box=(60, 50, 420, 300))])
    assert r.rejected and r.probabilities is None and r.reason.startswith("no ECG found (verifier")
    with open(bundle / "verifier.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="verifier.onnx does not match"):
        Pipeline.from_bundle(bundle, backend="onnxruntime")


def test_the_check_can_be_switched_off(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from fixtures.sheets import scene

    from edgeecg.bundle import file_entry
    from edgeecg.pipeline import Pipeline

    bundle = Path(shutil.copytree(Path(__file__).parents[1] / "fixtures" / "bundle_tiny", tmp_path / "b"))
    brightness_verifier_onnx(bundle / "verifier.onnx", OUT)
    m = json.loads((bundle / "manifest.json").read_text())
    m["verifier"] = file_entry(bundle, "verifier.onnx", input_size=list(OUT), threshold=0.9999)
    (bundle / "manifest.json").write_text(json.dumps(m))
    with Pipeline.from_bundle(bundle, backend="onnxruntime", threads=1, use_verifier=False) as pipe:
        (r,) = pipe.run([scene(box=(60, 50, 420, 300))])
    assert r.ok and r.ecg_score is None
    # the keyword's name before the component had one name still works, with a warning
    with pytest.warns(DeprecationWarning, match="use_verifier"):
        old = Pipeline.from_bundle(bundle, backend="onnxruntime", threads=1, ecg_check=False)
    with old:
        (r,) = old.run([scene(box=(60, 50, 420, 300))])
    assert r.ok and r.ecg_score is None


@pytest.mark.parametrize("upright_logit", [5.0, -5.0])
def test_a_page_the_check_finds_upside_down_is_turned(tmp_path, upright_logit):
    scene = make_hand_scene((320, 240), seed=3)
    cfg = PreprocessConfig(mode="warp", corners="classical")
    plain = Preprocessor(cfg, None, OUT)(scene.image)
    path = constant_detector_onnx(tmp_path / "v.onnx", np.array([[5.0, upright_logit]], np.float32), size=OUT)
    with OnnxRuntimeRunner(path, threads=1) as r:
        check = Verifier.from_manifest(
            r, {"input_size": list(OUT), "threshold": 0.5, "outputs": ["ecg", "upright"]}
        )
        assert check.knows_upright
        got = Preprocessor(cfg, None, OUT, verifier=check)(scene.image)
    assert got.rejected is None and got.ecg_score > 0.99
    if upright_logit > 0:  # the right way up: nothing changes
        np.testing.assert_array_equal(got.image, plain.image)
        np.testing.assert_allclose(got.corners, plain.corners)
        assert not got.corner_source.endswith("+turned")
    else:  # the sheet's top-left is the opposite corner: the page and the corner order turn by 180 degrees
        np.testing.assert_array_equal(got.image, plain.image[::-1, ::-1])
        np.testing.assert_allclose(got.corners, np.roll(plain.corners, 2, axis=0))
        assert got.corner_source.endswith("+turned")


def test_verifier_outputs_are_checked(tmp_path):
    path = constant_detector_onnx(tmp_path / "v.onnx", np.array([[5.0, 1.0]], np.float32), size=OUT)
    with OnnxRuntimeRunner(path, threads=1) as r:
        with pytest.raises(UsageError, match="outputs"):
            Verifier(r, OUT, 0.5, outputs=("upright",))
        with pytest.raises(BackendError, match="1 finite logit"):
            Verifier(r, OUT, 0.5).score(np.zeros((*OUT, 3), np.uint8))  # two columns, one expected


def test_the_check_sees_the_page_made_at_its_own_size(verifier):
    """A bundle whose classifier page is larger than the check's input: the check gets the page the chain
    makes at the check's own size (as it was trained), not the classifier's page shrunk."""
    scene = make_hand_scene((320, 240), seed=3)
    for mode in ("warp", "crop", "none"):
        cfg = PreprocessConfig(mode=mode, corners="classical")
        big = (64, 128)  # classifier page; the check takes OUT = (32, 64)
        got = Preprocessor(cfg, None, big, verifier=verifier)(scene.image, debug=True)
        assert got.image is not None and got.image.shape[:2] == big
        at_its_size = Preprocessor(cfg, None, OUT)(scene.image).image
        np.testing.assert_array_equal(got.stages["verifier"], at_its_size)
        assert got.ecg_score == pytest.approx(verifier.score(at_its_size))
        same = Preprocessor(cfg, None, OUT, verifier=verifier)(scene.image, debug=True)
        assert "verifier" not in same.stages  # at the check's size the classifier's page is the check's
