"""Classifier variants derived from a bundle without checkpoints: the shipped default (int8w only) gets the
mixed FP16 graph TensorRT plans are built from, checked against it in ONNX Runtime on CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from edgeecg.bundle import default_bundle_dir, load_manifest, verify
from edgeecg.errors import UsageError
from edgeecg.export import bundle_writer
from edgeecg.export.bundle_writer import ExportConfig, add_engines, derive_bundle, export_bundle
from edgeecg.export.cli import main
from edgeecg.export.int8w import is_int8_weights
from edgeecg.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = default_bundle_dir()
needs_default = pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file(), reason="no default bundle")


@pytest.fixture(scope="module")
def fp16_default(tmp_path_factory) -> Path:
    """`edgeecg-export --bundle <default> --variants fp16 --out B`, as the README says, on fewer samples."""
    out = tmp_path_factory.mktemp("derived") / "b"
    rc = main(["--bundle", str(DEFAULT), "--variants", "fp16", "--out", str(out), "--parity-samples", "64"])
    assert rc == 0
    return out


@needs_default
def test_default_bundle_gets_a_verified_fp16_variant(fp16_default):
    manifest = load_manifest(fp16_default)
    verify(fp16_default, manifest)
    shipped = load_manifest(DEFAULT)
    variants = manifest["classifier"]["variants"]
    assert list(variants) == ["fp16", "int8w"]  # manifest order; no FP32 left behind
    assert variants["int8w"] == shipped["classifier"]["variants"]["int8w"]
    assert not (fp16_default / "fp32").exists()
    fp16 = variants["fp16"]
    assert len(fp16["members"]) == 5 and fp16["fused"]["fusion"] == "grouped"
    assert "weights" not in fp16 and all(m["precision"] == "fp16" for m in fp16["members"])
    for entry in [*fp16["members"], fp16["fused"]]:
        model = onnx.load(str(fp16_default / entry["file"]))
        assert not is_int8_weights(model)
        halves = sum(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
        assert halves > len(model.graph.initializer) // 2, f"{entry['file']}: only {halves} FP16 weights"
    checks = manifest["metrics"]["export_checks"]["fp16_vs_int8w_onnxruntime"]
    assert set(checks) == {"members", "fused"}
    for fig in checks.values():
        assert fig["samples"] == 64 and fig["max_abs_prob_diff"] <= 1e-2
    assert "fp32_vs_int8w_onnxruntime" not in manifest["metrics"]["export_checks"]
    derived = manifest["provenance"]["derived"]
    assert derived["variants"] == ["fp16"] and "--variants fp16" in derived["command"]
    assert not Path(derived["from_bundle"]).is_absolute()
    # The shipped bundle itself is untouched.
    verify(DEFAULT, shipped)
    assert list(shipped["classifier"]["variants"]) == ["int8w"]


@needs_default
def test_fp16_variant_classifies_the_examples_as_the_shipped_one(fp16_default):
    paths = sorted(str(p) for p in (ROOT / "examples").glob("*.jpg"))
    probs, positives = {}, {}
    for precision in ("fp16", "int8w"):
        with Pipeline.from_bundle(fp16_default, backend="onnxruntime", precision=precision) as pipe:
            results = list(pipe.run_paths(paths))
        assert all(r.ok for r in results)
        probs[precision] = np.array([list(r.probabilities.values()) for r in results])
        positives[precision] = [r.positive for r in results]
    assert positives["fp16"] == positives["int8w"]
    assert np.abs(probs["fp16"] - probs["int8w"]).max() <= 1e-2


@needs_default
def test_derive_refuses_bad_requests(tmp_path, capsys):
    cfg = ExportConfig(checkpoints=(), out=str(DEFAULT), variants=("fp16",))
    with pytest.raises(UsageError, match="new directory"):
        derive_bundle(DEFAULT, cfg)
    with pytest.raises(UsageError, match="--variants names"):
        derive_bundle(DEFAULT, ExportConfig(checkpoints=(), out=str(tmp_path / "x")))
    args = [
        "--bundle",
        str(DEFAULT),
        "--variants",
        "fp16",
        "--out",
        str(tmp_path / "y"),
        "--verifier",
        "v.onnx",
    ]
    assert main(args) == 2
    assert "separate run" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_a_bundle_with_only_fp16_cannot_derive(bundle, tmp_path):
    src = tmp_path / "only16"
    shutil.copytree(bundle[0], src)
    manifest = json.loads((src / "manifest.json").read_text())
    del manifest["classifier"]["variants"]["fp32"]
    (src / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(src / "fp32")
    cfg = ExportConfig(checkpoints=(), out=str(tmp_path / "out"), variants=("int8w",))
    with pytest.raises(UsageError, match="needs fp32 or int8w"):
        derive_bundle(src, cfg)


def test_engines_on_an_int8w_bundle_build_from_a_derived_fp16(tmp_path, monkeypatch, bundle, make_checkpoint):
    """`--engines --bundle` on an int8w-only bundle: the FP16 variant is derived before the plans are built.
    TensorRT cannot run here, so the plan build is replaced by a recorder; the derivation is the real one."""
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    for fold in (0, 1):  # blocks that contribute, a moderate head (as test_int8w's: int8-friendly weights)
        make_checkpoint(ckpts, fold, head_scale=10.0, layer_scale=0.1)
    src = tmp_path / "int8only"
    cfg = ExportConfig(
        checkpoints=(str(ckpts),),
        out=str(src),
        detector=str(bundle[0] / "detector.onnx"),
        variants=("int8w",),
        fused=True,
        parity_samples=16,
    )
    export_bundle(cfg)
    assert list(load_manifest(src)["classifier"]["variants"]) == ["int8w"]
    built = []

    def fake_build(tmp, manifest, cfg, progress):
        built.append(sorted(manifest["classifier"]["variants"]))
        for entry in manifest["classifier"]["variants"]["fp16"]["members"]:
            assert (tmp / entry["file"]).is_file()

    monkeypatch.setattr(bundle_writer, "engine_support", lambda: None)
    monkeypatch.setattr(bundle_writer, "build_engines", fake_build)
    out = add_engines(src, ExportConfig(checkpoints=(), out=str(src), parity_samples=16))
    assert built == [["fp16", "int8w"]]
    assert list(out["classifier"]["variants"]) == ["fp16", "int8w"]
    verify(src, load_manifest(src))
