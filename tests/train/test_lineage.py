"""A checkpoint's sidecar names every dataset behind it, through the chain of init checkpoints."""

from __future__ import annotations

import json

import pytest

from edgeecg.bundle import sha256_file
from edgeecg.train.config import load_config
from edgeecg.train.loop import data_lineage

pytest.importorskip("torch")


def _cfg(**over):
    return load_config(
        None, {"sources": [{"path": "/d/s1a"}, {"path": "/d/s1b"}], "target": {"path": "/d/photos"}, **over}
    )


def test_stage2_lineage_follows_its_init_back_through_two_stage1_passes(tmp_path):
    first = data_lineage(_cfg(), None, None)
    assert [d["path"] for d in first[0]["data"]] == ["/d/s1a", "/d/s1b"] and first[0]["init"] is None
    w1 = tmp_path / "first.safetensors"
    w1.write_bytes(b"weights one")
    w1.with_suffix(".json").write_text(json.dumps({"lineage": first, "fold": None}))

    second = data_lineage(_cfg(sources=[{"path": "/d/s1a"}, {"path": "/d/fresh"}]), None, w1)
    assert [s["stage"] for s in second] == ["stage1", "stage1"]
    assert second[1]["init"] == {"file": str(w1.resolve()), "sha256": sha256_file(w1)}
    w2 = tmp_path / "second.safetensors"
    w2.write_bytes(b"weights two")
    w2.with_suffix(".json").write_text(json.dumps({"lineage": second, "fold": None}))

    member = data_lineage(_cfg(), 3, w2)
    assert [s["stage"] for s in member] == ["stage1", "stage1", "stage2"]
    assert [d["path"] for d in member[2]["data"]] == ["/d/photos"]  # the folds' data, not stage I's sources
    assert member[2]["init"]["sha256"] == sha256_file(w2)

    writer = pytest.importorskip("edgeecg.export.bundle_writer")
    flat = [d["path"] for d in writer._lineage_data({"lineage": member})]
    assert flat == ["/d/s1a", "/d/s1b", "/d/fresh", "/d/photos"]  # each once, oldest first


def test_older_sidecars_and_bare_weights(tmp_path):
    old = tmp_path / "old.safetensors"
    old.write_bytes(b"w")
    old.with_suffix(".json").write_text(json.dumps({"fold": None, "config": {"sources": [{"path": "/d/x"}]}}))
    steps = data_lineage(_cfg(), 0, old)
    assert [d["path"] for d in steps[0]["data"]] == ["/d/x"] and steps[1]["stage"] == "stage2"
    bare = tmp_path / "imagenet.pth"  # user-supplied weights: no sidecar, only the file's hash
    bare.write_bytes(b"w")
    steps = data_lineage(_cfg(), None, bare)
    assert len(steps) == 1 and steps[0]["init"]["sha256"] == sha256_file(bare)
