"""scripts/checkpoint_from_bundle.py: a bundle member back into a training checkpoint that computes what its
graph computes (the BatchNorms the export folded become identities, layer scales come back from constants)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeecg.bundle import default_bundle_dir

pytest.importorskip("timm")


def test_module_names_from_the_exporters_scopes(load_script):
    cfb = load_script("checkpoint_from_bundle")
    assert (
        cfb._module_of("/stages/stages.0/blocks/blocks.0/conv_dw/Conv_output_0")
        == "stages.0.blocks.0.conv_dw"
    )
    assert cfb._module_of("/stem/stem.0/Conv_output_0") == "stem.0"
    assert cfb._module_of("/stages/stages.1/downsample/downsample.1/Conv_output_0") == "stages.1.downsample.1"
    assert cfb._module_of("/stages/stages.2/blocks/blocks.3/Mul_output_0") == "stages.2.blocks.3"


@pytest.mark.skipif(not (default_bundle_dir() / "manifest.json").is_file(), reason="no default bundle")
def test_default_member_rebuilt_as_a_checkpoint_matches_its_graph(load_script, tmp_path):
    import onnxruntime as ort
    import torch

    from edgeecg.bundle import load_manifest
    from edgeecg.train.stages import load_trained

    cfb = load_script("checkpoint_from_bundle")
    assert cfb.main(["--fold", "1", "--out", str(tmp_path)]) == 0
    side = json.loads((tmp_path / "fold1.json").read_text())
    assert side["from_bundle"]["max_abs_logit_diff"] < 1e-3 and side["fold"] == 1
    model = load_trained(tmp_path / "fold1.safetensors")  # loads as training's own checkpoints do
    manifest = load_manifest(default_bundle_dir())
    entry = manifest["classifier"]["variants"]["int8w"]["members"][1]
    sess = ort.InferenceSession(str(default_bundle_dir() / entry["file"]), providers=["CPUExecutionProvider"])
    h, w = manifest["classifier"]["input"]["height"], manifest["classifier"]["input"]["width"]
    x = np.random.default_rng(5).normal(size=(2, 3, h, w)).astype(np.float32)
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-3
    assert np.abs(want).max() > 0.5  # logits that mean something, so the comparison can fail
