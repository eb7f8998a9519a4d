"""The bundled default model: present in the package, within the asset budget, verified, and the README's
main job (`edgeecg infer examples/<photo>`) works with no flags."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeecg import LABELS
from edgeecg.bundle import default_bundle_dir, load_manifest, verify

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = default_bundle_dir()
pytestmark = pytest.mark.skipif(
    not (DEFAULT / "manifest.json").is_file(), reason="no default bundle in this checkout"
)

ASSET_BUDGET_MB = 40.0


def test_assets_fit_the_budget():
    assets = DEFAULT.parent
    total = sum(p.stat().st_size for p in assets.rglob("*") if p.is_file())
    assert total / 2**20 <= ASSET_BUDGET_MB, f"edgeecg/assets holds {total / 2**20:.1f} MB"


def test_manifest_is_verified_and_says_where_it_came_from():
    manifest = load_manifest(DEFAULT)
    verify(DEFAULT, manifest)  # every file against its sha256
    assert manifest["labels"] == list(LABELS)
    assert manifest["detector"] is not None, "the default bundle must be able to say 'no ECG found'"
    assert manifest["verifier"]["threshold"] > 0, "the verifier turns away sheets that are no ECG"
    assert manifest["preprocess"]["refine"] is True
    assert manifest["corner_model"]["expand"] > 0, "the corner model places sheets without clear edges"
    members = manifest["classifier"]["variants"]
    assert members and all(len(v["members"]) == 5 for v in members.values())
    prov = manifest["provenance"]
    assert "train_default.sh" in json.dumps(prov) and "PTB-XL strat_fold 1-8" in prov["training_data"]
    absolute = [s for s in re.findall(r'"(/[^"]*)"', json.dumps(prov))]
    assert not absolute, f"provenance names the building machine's paths: {absolute[:3]}"
    val = manifest["metrics"]["validation"]  # PTB-XL fold 9 as photos, through the runtime
    assert val["dataset"].endswith("val9_photo") and val["n"] == 267 and val["n_rejected"] == 0
    assert set(val["auroc"]) == set(LABELS)


def _infer(*args: str) -> list[dict]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "edgeecg.cli", "infer", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_main_job_on_a_bundled_example():
    (res,) = _infer("examples/photo_mi.jpg")
    assert not res.get("rejected"), res
    assert res["ecg_score"] is not None and res["ecg_score"] > 0.5
    assert list(res["probabilities"]) == list(LABELS)
    thresholds = json.loads((ROOT / "edgeecg/assets/default/manifest.json").read_text())["classifier"][
        "thresholds"
    ]
    called = [k for k, t in zip(LABELS, thresholds, strict=True) if res["probabilities"][k] >= t]
    assert res["positive"] == called and "MI" in called  # the example's cardiologists' label


def test_every_bundled_example_passes_the_verifier_and_it_can_be_skipped(tmp_path):
    examples = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.jpg"))
    results = _infer(*examples)
    assert len(results) == len(examples) and not any(r["rejected"] for r in results), results
    (off,) = _infer(examples[0], "--no-verifier")
    assert off["ecg_score"] is None and off["probabilities"] is not None
    (old,) = _infer(examples[0], "--no-ecg-check")  # the flag's earlier name, kept out of the help
    assert old["ecg_score"] is None and old["probabilities"] == off["probabilities"]
