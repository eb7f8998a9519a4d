"""Fixtures shared by the pre-processing tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bundled_chain():
    """The default bundle's pre-processing chain (detector, corners, corner model, verifier)."""
    from edgeecg.bundle import default_bundle_dir
    from edgeecg.pipeline import Pipeline

    if not (default_bundle_dir() / "manifest.json").is_file():
        pytest.skip("no default bundle in this checkout")
    with Pipeline.from_bundle(backend="onnxruntime", threads=2) as pipe:
        yield pipe.preprocessor
