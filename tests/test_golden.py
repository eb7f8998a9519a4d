"""Golden test of the shipped model: the labelled examples through `edgeecg infer --json` with the bundled
default give the recorded probabilities (to 1e-3) and the labels examples/README.md states.

A change that moves the shipped outputs (normalisation, channel order, resize, CLAHE, the members) fails here.
When the bundled model or its pre-processing changes on purpose, regenerate: python scripts/make_golden.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from edgeecg import LABELS
from edgeecg.bundle import default_bundle_dir

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_PATH = ROOT / "tests" / "golden" / "default_examples.json"
ATOL = 1e-3
REGENERATE = "if the change is on purpose, regenerate with: python scripts/make_golden.py"

pytestmark = pytest.mark.skipif(
    not (default_bundle_dir() / "manifest.json").is_file(), reason="no default bundle in this checkout"
)


def _script():
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "scripts" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = _script()


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped() -> dict[str, dict]:
    return {r["image"]: r for r in make_golden.infer_json(make_golden.examples())}


def mismatches(results: dict[str, dict], golden: dict, atol: float = ATOL) -> list[str]:
    """Every way `results` (image -> infer --json object) differ from the golden record, one line each."""
    out = []
    want_all = golden["examples"]
    if set(results) != set(want_all):
        out.append(f"examples differ: {sorted(results)} vs {sorted(want_all)}")
    for image in sorted(set(results) & set(want_all)):
        got, want = results[image], want_all[image]
        for key in ("rejected", "positive"):
            if got.get(key) != want[key]:
                out.append(f"{image}: {key} {got.get(key)} != {want[key]}")
        members = got.get("member_probabilities") or []
        if len(members) != len(want["member_probabilities"]):
            out.append(f"{image}: {len(members)} members != {len(want['member_probabilities'])}")
        probs = [("probabilities", got.get("probabilities"), want["probabilities"])]
        probs += [
            (f"member {i}", g, w)
            for i, (g, w) in enumerate(zip(members, want["member_probabilities"], strict=False))
        ]
        for name, g, w in probs:
            if g is None or w is None:
                if g != w:
                    out.append(f"{image}: {name} {g} != {w}")
                continue
            for label in LABELS:
                if abs(g[label] - w[label]) > atol:
                    out.append(f"{image}: {name} {label} {g[label]:.6f} != {w[label]:.6f} (atol {atol})")
        g, w = got.get("ecg_score"), want["ecg_score"]
        if (g is None) != (w is None) or (g is not None and abs(g - w) > atol):
            out.append(f"{image}: ecg_score {g} != {w}")
    return out


def readme_labels() -> dict[str, list[str]]:
    """examples/README.md's table: example path -> its true labels, in label order (columns found by name)."""
    rows: dict[str, list[str]] = {}
    header: list[str] | None = None
    for line in (ROOT / "examples" / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if not cells:
            header = None
            continue
        if header is None:
            header = cells
            continue
        m = re.fullmatch(r"`([^`]+\.jpg)`", cells[0])
        if m and all(lab in header for lab in LABELS):
            rows[f"examples/{m[1]}"] = [lab for lab in LABELS if cells[header.index(lab)] == "1"]
    return rows


def test_golden_record_is_of_the_shipped_bundle(golden):
    assert golden["bundle"] == make_golden.bundle_identity(), (
        f"the bundled model or its settings changed since {GOLDEN_PATH.name} was recorded; {REGENERATE}"
    )


def test_shipped_outputs_match_the_golden_record(shipped, golden):
    problems = mismatches(shipped, golden)
    assert not problems, "\n".join([f"shipped outputs moved ({REGENERATE}):", *problems[:20]])


def test_shipped_labels_are_those_the_examples_readme_states(shipped):
    truth = readme_labels()
    assert len(truth) == len(make_golden.examples()) == 6, "every example needs its row in examples/README.md"
    got = {image: r["positive"] for image, r in shipped.items()}
    assert got == truth


def _perturbed(tmp_path: Path, edit) -> dict[str, dict]:
    """infer --json on the examples with a copy of the default bundle whose manifest `edit` changed."""
    copy = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return {r["image"]: r for r in make_golden.infer_json(make_golden.examples(), "--bundle", str(copy))}


def _bgr(m: dict) -> None:
    m["classifier"]["input"]["channel_order"] = "BGR"


def _clahe(m: dict) -> None:
    m["preprocess"]["clahe"]["clip_limit"] = 3.0


def _normalisation(m: dict) -> None:
    m["classifier"]["input"]["mean"] = [0.5, 0.5, 0.5]


@pytest.mark.parametrize("edit", [_bgr, _clahe, _normalisation], ids=["channel-order", "clahe", "mean"])
def test_the_golden_check_catches_a_preprocessing_change(tmp_path, golden, edit):
    assert mismatches(_perturbed(tmp_path, edit), golden), f"{edit.__name__} left every output within {ATOL}"
