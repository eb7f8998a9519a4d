"""Round trip checkpoints → bundle → manifest/verify → ONNX Runtime equals torch; integrity and atomicity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeecg import LABELS
from edgeecg.bundle import load_manifest, sha256_file, verify
from edgeecg.errors import BundleError, UsageError
from edgeecg.export.bundle_writer import ExportConfig, export_bundle, read_thresholds
from edgeecg.export.checkpoints import find_checkpoints, load_member
from edgeecg.export.fused import sigmoid
from edgeecg.export.onnx_export import check_inputs, ort_run, torch_run


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_members_equal_torch(bundle, ckpt_dir):
    out, _ = bundle
    manifest = load_manifest(out)
    verify(out, manifest)
    clf = manifest["classifier"]
    assert clf["output"] == "logits" and clf["input"]["height"] == 64 and clf["input"]["width"] == 128
    batch = check_inputs(clf["input"], n_random=1, n_ecg=2, seed=7)
    members = {m.fold: m for m in find_checkpoints([ckpt_dir])}
    for entry in clf["variants"]["fp32"]["members"]:
        want = torch_run(load_member(members[entry["fold"]]), batch)[0]
        got = ort_run(out / entry["file"], batch)["logits"]
        assert np.abs(want - got).max() <= 1e-4, entry["file"]


def test_fused_equals_separate_members(bundle):
    out, manifest = bundle
    fp32 = manifest["classifier"]["variants"]["fp32"]
    fused = fp32["fused"]
    assert fused["outputs"] == {"mean": "prob", "members": "member_probs"}
    batch = check_inputs(manifest["classifier"]["input"], n_random=2, n_ecg=1, seed=3)
    res = ort_run(out / fused["file"], batch)
    sep = np.stack([sigmoid(ort_run(out / m["file"], batch)["logits"]) for m in fp32["members"]], axis=1)
    assert res["member_probs"].shape == (3, 2, len(LABELS))
    assert np.abs(res["member_probs"] - sep).max() <= 1e-5
    assert np.abs(res["prob"] - sep.mean(axis=1)).max() <= 1e-5
    # The members really differ, so the comparison above can catch a mix-up of members.
    assert np.abs(sep[:, 0] - sep[:, 1]).max() > 1e-2


def test_manifest_records_provenance_and_detector(bundle, ckpt_dir):
    _, manifest = bundle
    prov = manifest["provenance"]
    for rec in prov["checkpoints"]:
        # outside the working directory a file is named by its name alone, beside its sha256
        assert rec["file"] == Path(rec["file"]).name
        assert rec["sha256"] == sha256_file(ckpt_dir / rec["file"])
    assert not _absolute_paths(prov)
    assert prov["command"] == "pytest" and prov["edgeecg_version"] and prov["created"]
    det = manifest["detector"]
    assert det["kind"] == "yolov8-pose" and det["keypoints"] == 4 and det["strides"] == [8, 16, 32]
    assert det["input_size"] == [64, 64] and det["classes"] == ["ecg"]
    assert manifest["engines"] == []
    checks = manifest["metrics"]["export_checks"]
    assert all(m["max_abs_logit_diff_vs_torch"] <= 1e-4 for m in checks["members"])
    assert checks["fp16_vs_fp32_onnxruntime"]["fused"]["max_abs_prob_diff"] <= 1e-2


def _absolute_paths(node) -> list[str]:
    if isinstance(node, dict):
        return [p for v in node.values() for p in _absolute_paths(v)]
    if isinstance(node, list):
        return [p for v in node for p in _absolute_paths(v)]
    return [node] if isinstance(node, str) and Path(node).is_absolute() else []


def test_provenance_paths_are_relative_to_the_working_directory_or_bare_names(tmp_path, monkeypatch):
    from edgeecg.export.bundle_writer import _portable

    monkeypatch.chdir(tmp_path)
    prov = {
        "file": str(tmp_path / "runs" / "x" / "fold0.safetensors"),
        "data": [{"path": "/elsewhere/data/s1_clean", "weight": 1.0}],
        "command": "edgeecg-export --out /abs/bundle",
        "seed": 0,
    }
    assert _portable(prov) == {
        "file": "runs/x/fold0.safetensors",
        "data": [{"path": "s1_clean", "weight": 1.0}],
        "command": "edgeecg-export --out /abs/bundle",  # the command line stays as typed
        "seed": 0,
    }


def test_sha256_mismatch_is_detected(bundle, tmp_path):
    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    manifest = load_manifest(copy)
    target = copy / manifest["classifier"]["variants"]["fp16"]["members"][0]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        verify(copy, manifest)


def test_failed_export_leaves_old_bundle_byte_identical(bundle, tmp_path, make_checkpoint):
    out, _ = bundle
    old = tmp_path / "bundle"
    shutil.copytree(out, old)
    before = _tree(old)
    # A second checkpoint dir whose fold-1 weights are a different architecture: export fails midway.
    bad = tmp_path / "bad"
    make_checkpoint(bad, 0)
    make_checkpoint(bad, 1)
    side = json.loads((bad / "fold1.json").read_text())
    side["model_kwargs"] = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 48]}
    side.pop("sha256")
    for fold in (0, 1):  # keep the members agreeing on the architecture, so loading (not checking) fails
        s = json.loads((bad / f"fold{fold}.json").read_text())
        s["model_kwargs"] = side["model_kwargs"]
        (bad / f"fold{fold}.json").write_text(json.dumps(s))
    cfg = ExportConfig(checkpoints=(str(bad),), out=str(old), precision="fp32")
    with pytest.raises(BundleError, match="do not fit"):
        export_bundle(cfg)
    assert _tree(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "bundle"]  # no temp dirs left behind


def test_thresholds_from_training_file_and_sidecar(tmp_path):
    f = tmp_path / "thresholds.json"
    f.write_text(
        json.dumps({"labels": list(LABELS), "thresholds": [0.1, 0.2, 0.3, 0.4, 0.5], "method": "youden_j"})
    )
    assert read_thresholds(f) == ([0.1, 0.2, 0.3, 0.4, 0.5], "youden_j")
    f.write_text(json.dumps({k: 0.3 for k in LABELS}))
    assert read_thresholds(f) == ([0.3] * 5, "from-file")
    f.write_text(json.dumps([0.5, 2.0, 0.5, 0.5, 0.5]))
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        read_thresholds(f)
    assert read_thresholds(None) == ([0.5] * 5, "default-0.5")


def test_checkpoints_must_agree_and_be_safetensors(tmp_path, make_checkpoint):
    make_checkpoint(tmp_path, 0)
    make_checkpoint(tmp_path, 1)
    side = json.loads((tmp_path / "fold1.json").read_text())
    side["input"] = {**side["input"], "height": 96}
    (tmp_path / "fold1.json").write_text(json.dumps(side))
    with pytest.raises(BundleError, match="differ in their input"):
        find_checkpoints([tmp_path])
    (tmp_path / "fold1.json").unlink()
    with pytest.raises(BundleError, match="no JSON sidecar"):
        find_checkpoints([tmp_path])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no \\*.safetensors"):
        find_checkpoints([empty])
    with pytest.raises(UsageError, match="does not exist"):
        find_checkpoints([tmp_path / "nope.safetensors"])


def test_members_equal_torch_on_real_photos(bundle, ckpt_dir, realdata):
    import cv2

    from edgeecg.export.onnx_export import manifest_batch

    out, manifest = bundle
    photos = sorted((realdata / "photos").glob("*.jpg"))[:3]
    assert photos, "no photos in realdata"
    batch = manifest_batch([cv2.imread(str(p)) for p in photos], manifest["classifier"]["input"])
    entry = manifest["classifier"]["variants"]["fp32"]["members"][1]
    member = next(m for m in find_checkpoints([ckpt_dir]) if m.fold == entry["fold"])
    want = torch_run(load_member(member), batch)[0]
    assert np.abs(want - ort_run(out / entry["file"], batch)["logits"]).max() <= 1e-4
