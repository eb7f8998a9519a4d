"""SAM export: a clean error without the extra; a real export where segment_anything/mobile_sam is installed."""

from __future__ import annotations

import importlib.util

import pytest

from edgeecg.errors import MissingExtraError
from edgeecg.export.sam import export_sam

HAS_SAM = any(importlib.util.find_spec(m) for m in ("segment_anything", "mobile_sam"))


@pytest.mark.skipif(HAS_SAM, reason="a SAM package is installed")
def test_missing_extra_is_named(tmp_path):
    ck = tmp_path / "sam.pt"
    ck.write_bytes(b"\x00")
    with pytest.raises(MissingExtraError, match=r"edgeecg\[sam\]"):
        export_sam(ck, tmp_path / "sam")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SAM, reason="segment_anything / mobile_sam not installed")
def test_random_vit_t_exports(tmp_path):
    import numpy as np
    import torch

    from edgeecg.export.onnx_export import ort_run
    from edgeecg.export.sam import load_sam  # noqa: F401  (registry lookup exercised by export_sam)

    reg = None
    for mod in ("mobile_sam", "segment_anything"):
        if importlib.util.find_spec(mod):
            reg = importlib.import_module(mod).sam_model_registry
            break
    model_type = "vit_t" if "vit_t" in reg else "vit_b"
    ck = tmp_path / "sam.pth"
    torch.save(reg[model_type]().state_dict(), ck)
    sam = export_sam(ck, tmp_path / "sam", model_type)
    emb = ort_run(
        tmp_path / "sam" / sam["encoder"]["file"].split("/")[-1],
        np.zeros((1, 3, sam["input_size"], sam["input_size"]), np.float32),
    )
    assert next(iter(emb.values())).shape[1] == 256
