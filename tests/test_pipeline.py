"""Pipeline: bundle checks before loading, fused vs members vs torch agree, thresholds, votes, batching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.sheets import scene

from edgeecg import LABELS
from edgeecg.bundle import default_bundle_dir
from edgeecg.errors import BundleError, UsageError
from edgeecg.pipeline import Pipeline, Result

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "bundle_tiny"
BOX = (60, 50, 420, 300)


@pytest.fixture(scope="module")
def pipe():
    with Pipeline.from_bundle(BUNDLE, backend="auto", threads=1) as p:
        yield p


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    return Path(shutil.copytree(BUNDLE, tmp_path / "b"))


def _edit_manifest(bundle: Path, fn) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    fn(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


def test_result_fields_for_a_sheet(pipe):
    (r,) = pipe.run([scene(box=BOX)], names=["photo.jpg"])
    assert r.ok and r.image == "photo.jpg" and pipe.backend == "onnxruntime"
    assert list(r.probabilities) == list(LABELS)
    members = np.array([list(m.values()) for m in r.member_probabilities])
    np.testing.assert_allclose(
        list(r.probabilities.values()), members.mean(0), atol=1e-6
    )  # the ensemble mean
    assert r.box is not None and np.allclose(r.box, BOX, atol=16), r.box
    assert r.corners is not None and len(r.corners) == 4
    assert len(r.member_probabilities) == 2
    for key in ("detect", "crop", "clahe", "classify", "total"):
        assert key in r.timings and r.timings[key] >= 0, key
    assert r.timings["total"] >= r.timings["classify"]
    line = json.loads(r.to_json())
    assert line["probabilities"] == r.probabilities and line["rejected"] is False


def test_votes_and_positive_follow_thresholds(pipe):
    (r,) = pipe.run([scene(box=BOX)])
    for i, lab in enumerate(LABELS):
        thr = pipe.thresholds[i]
        assert r.votes[lab] == sum(m[lab] >= thr for m in r.member_probabilities)
        assert (lab in r.positive) == (r.probabilities[lab] >= thr)
    mean = np.mean([[m[lab] for lab in LABELS] for m in r.member_probabilities], axis=0)
    np.testing.assert_allclose([r.probabilities[lab] for lab in LABELS], mean, atol=1e-5)


def test_manifest_thresholds_decide_positive_labels(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m["classifier"].update(thresholds=[0.0, 1.01, 0.0, 1.01, 1.01]))
    with Pipeline.from_bundle(bundle_copy, backend="onnxruntime", threads=1) as p:
        (r,) = p.run([scene(box=BOX)])
    assert r.positive == ["MI", "HYP"]
    assert r.votes == {"MI": 2, "AF": 0, "HYP": 2, "CD": 0, "STTC": 0}


def test_no_sheet_is_rejected_without_probabilities(pipe):
    (r,) = pipe.run([scene(box=None)])
    assert r.rejected and not r.ok and "no ECG found" in r.reason
    assert r.probabilities is None and r.positive == [] and r.votes is None
    assert json.loads(r.to_json())["rejected"] is True


def test_fused_members_and_torch_agree():
    imgs = [scene(box=BOX, seed=s) for s in range(3)]
    out = {}
    for name, kw in {
        "fused": {"fused": True},
        "members": {"fused": False},
        "torch": {"backend": "torch"},
    }.items():
        kw = {"backend": "onnxruntime", **kw}
        with Pipeline.from_bundle(BUNDLE, threads=1, **kw) as p:
            out[name] = [[r.probabilities[lab] for lab in LABELS] for r in p.run(imgs)]
            assert len(p.ensemble.runners) == (1 if name == "fused" else 2)
    np.testing.assert_allclose(out["fused"], out["members"], atol=1e-5)
    np.testing.assert_allclose(out["torch"], out["members"], atol=1e-4)


def test_batching_does_not_change_results(pipe):
    imgs = [scene(box=(40 + 10 * s, 30, 400, 280 + 5 * s), seed=s) for s in range(5)] + [scene(box=None)]
    pipe.batch_size = 1
    one = pipe.run(imgs)
    pipe.batch_size = 4
    four = pipe.run(imgs)
    pipe.batch_size = 8
    for a, b in zip(one, four, strict=True):
        assert a.rejected == b.rejected
        if a.ok:
            np.testing.assert_allclose(
                list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5
            )


def test_run_wants_a_list_not_a_bare_image(pipe):
    img = scene(box=(40, 30, 400, 280))
    with pytest.raises(UsageError, match=r"pass \[img\]"):
        pipe.run(img)
    assert len(pipe.run([img])) == 1


def test_run_paths_reports_bad_files_and_keeps_going(pipe, tmp_path):
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), scene(box=BOX))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not an image at all")
    empty = tmp_path / "c.png"
    cv2.imwrite(str(empty), scene(box=None))
    results = list(pipe.run_paths([good, bad, tmp_path / "missing.png", empty], debug_dir=tmp_path / "dbg"))
    assert [r.image for r in results] == [str(good), str(bad), str(tmp_path / "missing.png"), str(empty)]
    assert results[0].ok and "decode" in results[0].timings
    assert "not an image" in results[1].error and "no such file" in results[2].error
    assert json.loads(results[1].to_json()) == {"image": str(bad), "error": results[1].error}
    assert results[3].rejected
    assert (tmp_path / "dbg" / "a.debug.png").is_file() and (tmp_path / "dbg" / "c.debug.png").is_file()


def test_debug_montages_of_same_stem_do_not_overwrite(pipe, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.png"
    cv2.imwrite(str(first), scene(box=BOX))
    cv2.imwrite(str(second), scene(box=None))  # a different picture: a rejected page's montage
    dbg = tmp_path / "dbg"
    results = list(pipe.run_paths([first, second], debug_dir=dbg))
    assert [r.debug_image for r in results] == [str(dbg / "x.debug.png"), str(dbg / "x-2.debug.png")]
    a, b = (cv2.imread(r.debug_image) for r in results)
    assert a is not None and b is not None and (a.shape != b.shape or (a != b).any())
    assert json.loads(results[1].to_json())["debug_image"] == str(dbg / "x-2.debug.png")
    # in-memory images named alike get the same treatment
    again = pipe.run([scene(box=BOX), scene(box=BOX)], names=["p/y.jpg", "q/y.jpg"], debug_dir=dbg)
    assert [Path(r.debug_image).name for r in again] == ["y.debug.png", "y-2.debug.png"]
    assert sorted(p.name for p in dbg.iterdir()) == [
        "x-2.debug.png",
        "x.debug.png",
        "y-2.debug.png",
        "y.debug.png",
    ]


def test_sha256_mismatch_refused_before_loading(bundle_copy):
    with open(bundle_copy / "ensemble.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="ensemble.onnx does not match its manifest sha256"):
        Pipeline.from_bundle(bundle_copy, backend="onnxruntime", fused=True)
    # the members are intact: a members-only pipeline loads
    Pipeline.from_bundle(bundle_copy, backend="onnxruntime", fused=False).close()


def test_onnxruntime_runs_a_fused_graph_by_default_only_when_grouped(bundle_copy):
    # bundle_tiny's fused graph holds the members side by side: slower than separate sessions on CPU
    with Pipeline.from_bundle(bundle_copy, backend="onnxruntime", threads=1) as p:
        assert p.ensemble.fused_outputs is None and len(p.ensemble.runners) == 2

    def mark_grouped(m):
        for v in m["classifier"]["variants"].values():
            if v.get("fused"):
                v["fused"]["fusion"] = "grouped"

    _edit_manifest(bundle_copy, mark_grouped)
    with Pipeline.from_bundle(bundle_copy, backend="onnxruntime", threads=1) as p:
        assert p.ensemble.fused_outputs is not None and len(p.ensemble.runners) == 1


def test_unknown_manifest_format(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m.update(format="edgeecg-bundle/99"))
    with pytest.raises(BundleError, match="unknown bundle format"):
        Pipeline.from_bundle(bundle_copy)


def test_bad_options(bundle_copy):
    with pytest.raises(UsageError, match="no 'fp16' classifier"):
        Pipeline.from_bundle(bundle_copy, precision="fp16")
    with pytest.raises(UsageError, match="unknown backend"):
        Pipeline.from_bundle(bundle_copy, backend="openvino")
    with pytest.raises(UsageError, match="no fused model"):
        Pipeline.from_bundle(bundle_copy, backend="torch", fused=True)


def test_torch_backend_uses_provenance_checkpoints(bundle_copy, tmp_path):
    """Export writes the training checkpoints into provenance (outside the bundle): torch finds and checks them."""
    ck = tmp_path / "ck"
    ck.mkdir()
    for i in range(2):
        for ext in (".safetensors", ".json"):
            shutil.move(bundle_copy / f"fold{i}{ext}", ck / f"fold{i}{ext}")

    def edit(m):
        for mem in m["classifier"]["variants"]["fp32"]["members"]:
            entry = mem.pop("checkpoint")
            m["provenance"]["checkpoints"].append(
                {"file": str(ck / entry["file"]), "sha256": entry["sha256"], "fold": mem["fold"]}
            )

    _edit_manifest(bundle_copy, edit)
    with Pipeline.from_bundle(bundle_copy, backend="torch", threads=1) as p:
        (r,) = p.run([scene(box=BOX)])
    assert r.ok and len(r.member_probabilities) == 2
    with open(ck / "fold1.safetensors", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="does not match the sha256 in the manifest's provenance"):
        Pipeline.from_bundle(bundle_copy, backend="torch")


def test_result_json_of_error():
    assert json.loads(Result("x.png", error="x.png: boom").to_json()) == {
        "image": "x.png",
        "error": "x.png: boom",
    }


@pytest.mark.skipif(
    not (default_bundle_dir() / "manifest.json").is_file(), reason="no trained default bundle yet"
)
def test_default_bundle_on_real_photos(realdata):
    photos = sorted((realdata / "photos").glob("*.*"))[:4]
    with Pipeline.from_bundle() as p:
        results = list(p.run_paths(photos))
    assert all(r.error is None for r in results)
    assert any(r.ok for r in results)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_rss_flat_over_10000_inferences(tmp_path):
    """10,000 full inferences (decode, detect, crop, CLAHE, classify) in one process keep RSS flat."""
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), scene(box=BOX))
    rss = []
    with Pipeline.from_bundle(BUNDLE, backend="onnxruntime", threads=1, batch_size=1) as p:
        for i in range(10_000):
            (r,) = p.run_paths([path])
            assert r.ok
            if i in (499, 9_999) or i % 1000 == 999:
                rss.append(_rss_kb())
    growth_mb = (rss[-1] - rss[0]) / 1024
    assert growth_mb < 16, f"RSS grew {growth_mb:.1f} MB after warm-up: {rss}"
