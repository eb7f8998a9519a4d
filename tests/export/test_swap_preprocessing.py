"""`edgeecg-export --bundle B --verifier/--detector/--corner-model ... --out B2`: a copy of a bundle with its
pre-processing models replaced, its classifier kept; stale held-out figures set aside; bad calls refused."""

from __future__ import annotations

import json
import shutil

import pytest

from edgeecg.bundle import default_bundle_dir, load_manifest, sha256_file, verify
from edgeecg.export.cli import main

BUNDLE = default_bundle_dir()


def _with_sidecar(tmp_path, section: str, name: str, **change) -> str:
    """The default bundle's own model file, with the JSON its trainer would have written beside it."""
    entry = load_manifest(BUNDLE)[section]
    shutil.copy(BUNDLE / entry["file"], tmp_path / f"{name}.onnx")
    fields = {k: v for k, v in entry.items() if k not in ("file", "sha256")} | change
    (tmp_path / f"{name}.json").write_text(json.dumps(fields))
    return str(tmp_path / f"{name}.onnx")


def test_a_new_check_and_detector_go_in_and_the_classifier_stays(tmp_path, capsys):
    if not (BUNDLE / "manifest.json").is_file():
        pytest.skip("no default bundle in this checkout")
    old = load_manifest(BUNDLE)
    ver = _with_sidecar(tmp_path, "verifier", "verifier", threshold=0.5)
    det = _with_sidecar(tmp_path, "detector", "detector_rect", conf_threshold=0.3)
    out = tmp_path / "b2"
    assert main(["--bundle", str(BUNDLE), "--verifier", ver, "--detector", det, "--out", str(out)]) == 0
    new = load_manifest(out)
    verify(out, new)  # every file against its sha256
    assert new["verifier"]["threshold"] == 0.5 and new["detector"]["conf_threshold"] == 0.3
    assert new["classifier"] == old["classifier"] and new["corner_model"] == old["corner_model"]
    assert new["provenance"]["swapped"]["verifier"]["sha256"] == sha256_file(ver)
    if "held_out_test" in old.get("metrics", {}):  # measured through the old chain: set aside
        assert "held_out_test" not in new["metrics"]
        assert new["metrics"]["before_swap"]["held_out_test"] == old["metrics"]["held_out_test"]
    assert load_manifest(BUNDLE) == old  # the source is untouched

    from edgeecg.pipeline import Pipeline

    with Pipeline.from_bundle(out, backend="onnxruntime", threads=1) as pipe:
        assert pipe.preprocessor is not None


def test_bad_calls_are_refused_in_one_line(tmp_path, capsys):
    if not (BUNDLE / "manifest.json").is_file():
        pytest.skip("no default bundle in this checkout")
    ver = _with_sidecar(tmp_path, "verifier", "verifier")
    cases = [
        (
            ["--bundle", str(BUNDLE), "--out", str(tmp_path / "x")],
            2,
            "--detector, --verifier or --corner-model",
        ),
        (["--bundle", str(BUNDLE), "--verifier", ver], 2, "--out BUNDLE is required"),
        (["--bundle", str(BUNDLE), "--verifier", ver, "--out", str(BUNDLE)], 2, "not the source bundle"),
        (
            ["--bundle", str(tmp_path / "none"), "--verifier", ver, "--out", str(tmp_path / "y")],
            1,
            "not a model bundle",
        ),
    ]
    for argv, code, words in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_swapped_detector_can_store_int8_weights_as_an_export_would(tmp_path):
    if not (BUNDLE / "manifest.json").is_file():
        pytest.skip("no default bundle in this checkout")
    det = _with_sidecar(tmp_path, "detector", "detector_rect")
    out = tmp_path / "b3"
    argv = ["--bundle", str(BUNDLE), "--detector", det, "--detector-weights", "int8", "--out", str(out)]
    assert main(argv) == 0
    new = load_manifest(out)
    verify(out, new)
    assert new["detector"]["weights"] == "int8"
    assert "detector_int8_vs_fp32_onnxruntime" in new["metrics"]["export_checks"]
    assert (out / "detector.onnx").stat().st_size < (BUNDLE / "detector.onnx").stat().st_size / 2
