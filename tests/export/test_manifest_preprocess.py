"""The manifest's preprocess section follows how the members were trained."""

from __future__ import annotations

from edgeecg.export.bundle_writer import _preprocess


def test_preprocess_section_follows_training():
    assert _preprocess({"mode": "crop_clahe"})["mode"] == "crop"
    assert _preprocess({"mode": "warp_clahe"})["mode"] == "warp"
    rt = _preprocess(
        {"mode": "edgeecg", "runtime_mode": "warp", "runtime_corners": "classical", "clahe_clip": 3.0}
    )
    assert (rt["mode"], rt["corners"], rt["clahe"]["clip_limit"]) == ("warp", "classical", 3.0)
    assert rt["refine"] is False, "checkpoints from before corner refinement were trained without it"
    assert _preprocess({"mode": "edgeecg", "runtime_mode": "warp", "runtime_refine": True})["refine"] is True
