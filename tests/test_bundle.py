"""Manifest validation, sha256 verification and atomic bundle replacement."""

from __future__ import annotations

import json

import pytest

from edgeecg import LABELS
from edgeecg.bundle import (
    FORMAT,
    AtomicBundleDir,
    file_entry,
    iter_file_entries,
    load_manifest,
    verify,
    write_manifest,
)
from edgeecg.errors import BundleError


def _bundle(tmp_path):
    (tmp_path / "fold0.onnx").write_bytes(b"model-0")
    (tmp_path / "det.onnx").write_bytes(b"detector")
    manifest = {
        "format": FORMAT,
        "labels": list(LABELS),
        "classifier": {
            "input": {
                "height": 64,
                "width": 128,
                "channel_order": "RGB",
                "mean": [0.5] * 3,
                "std": [0.5] * 3,
            },
            "output": "logits",
            "combine": "mean",
            "thresholds": [0.5] * 5,
            "variants": {"fp32": {"members": [file_entry(tmp_path, "fold0.onnx", fold=0, precision="fp32")]}},
        },
        "detector": file_entry(tmp_path, "det.onnx", kind="yolov8-pose"),
        "provenance": {"checkpoints": [{"file": "/elsewhere/ckpt.safetensors", "sha256": "0" * 64}]},
    }
    write_manifest(tmp_path, manifest)
    return manifest


def test_round_trip_verifies(tmp_path):
    manifest = _bundle(tmp_path)
    loaded = load_manifest(tmp_path)
    assert loaded == manifest
    verify(tmp_path, loaded)
    # provenance names files outside the bundle: they are not bundle files
    assert {e["file"] for e in iter_file_entries(loaded)} == {"fold0.onnx", "det.onnx"}


def test_tampered_file_is_refused(tmp_path):
    _bundle(tmp_path)
    (tmp_path / "fold0.onnx").write_bytes(b"model-X")
    with pytest.raises(BundleError, match="fold0.onnx does not match its manifest sha256"):
        verify(tmp_path, load_manifest(tmp_path))


def test_missing_file_is_refused(tmp_path):
    _bundle(tmp_path)
    (tmp_path / "det.onnx").unlink()
    with pytest.raises(BundleError, match="det.onnx is missing"):
        verify(tmp_path, load_manifest(tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "edgeecg-bundle/99"}, "unknown bundle format"),
        ({"labels": ["AF", "MI", "HYP", "CD", "STTC"]}, "labels"),
        ({"detector": {"file": "det.onnx", "sha256": "0" * 64, "letterbox": "wide"}}, "letterbox"),
    ],
)
def test_bad_manifest_is_refused(tmp_path, change, message):
    manifest = _bundle(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest | change))
    with pytest.raises(BundleError, match=message):
        load_manifest(tmp_path)


def test_paths_must_stay_inside(tmp_path):
    manifest = _bundle(tmp_path)
    manifest["detector"]["file"] = "../det.onnx"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="inside the bundle"):
        load_manifest(tmp_path)


def test_not_json(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_manifest(tmp_path)


def test_atomic_dir_keeps_old_bundle_on_failure(tmp_path):
    target = tmp_path / "bundle"
    with AtomicBundleDir(target) as d:
        (d / "a.txt").write_text("good")
    with pytest.raises(RuntimeError), AtomicBundleDir(target) as d:
        (d / "a.txt").write_text("half")
        raise RuntimeError("export failed")
    assert (target / "a.txt").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temp dirs left behind
    with AtomicBundleDir(target) as d:
        (d / "a.txt").write_text("new")
    assert (target / "a.txt").read_text() == "new"
