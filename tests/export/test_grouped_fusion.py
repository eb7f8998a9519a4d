"""Grouped fusion: the members as one network of K-fold width equal the members, and export writes it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeecg.export.fused import check_fused, export_fused, fused_module, grouped_module
from edgeecg.export.onnx_export import export_onnx

LN_KWARGS = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]}  # timm's LayerNorm ConvNeXt, shrunk
BN_KWARGS = {**LN_KWARGS, "norm_layer": "batchnorm2d", "conv_mlp": True, "ls_init_value": 1.0}
INPUT = {"height": 64, "width": 128}


@pytest.fixture
def members(tmp_path, make_checkpoint):
    from edgeecg.export.checkpoints import load_member, read_checkpoint

    def make(kwargs, n=3, sub="a"):
        d = tmp_path / sub
        d.mkdir()
        paths = [make_checkpoint(d, f, layer_scale=0.5, model_kwargs=kwargs) for f in range(n)]
        return [load_member(read_checkpoint(p)) for p in paths]

    return make


def test_grouped_network_equals_the_members(members):
    import torch

    ms = members(BN_KWARGS)
    grouped = grouped_module(ms)
    assert grouped is not None
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in grouped.modules())
    assert convs == sum(isinstance(m, torch.nn.Conv2d) for m in ms[0].modules()) + 1  # + the head's 1x1
    x = torch.randn(2, 3, INPUT["height"], INPUT["width"])
    with torch.no_grad():
        want, got = fused_module(ms)(x), grouped(x)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5)
    assert float(want[1].std()) > 0.05, "member outputs must differ for the comparison to mean something"


def test_grouped_graph_matches_member_graphs_in_onnxruntime(members, tmp_path):
    ms = members(BN_KWARGS)
    paths = [export_onnx(m, tmp_path / f"m{i}.onnx", 64, 128, ["logits"]) for i, m in enumerate(ms)]
    fused, how = export_fused(ms, tmp_path / "ens.onnx", INPUT)
    assert how == "grouped"
    batch = np.random.default_rng(0).standard_normal((4, 3, 64, 128)).astype(np.float32)
    assert check_fused(fused, paths, batch) <= 1e-5


def test_layernorm_convnext_is_fused_in_parallel(members, tmp_path):
    ln = members(LN_KWARGS, n=2)
    assert grouped_module(ln) is None  # LayerNorm mixes channels: stacking members would mix them
    assert export_fused(ln, tmp_path / "ens.onnx", INPUT)[1] == "parallel"
    bn = members(BN_KWARGS, n=2, sub="b")
    assert export_fused(bn, tmp_path / "e2.onnx", INPUT, grouped=False)[1] == "parallel"
    assert grouped_module(bn[:1]) is None  # one member: nothing to group


def test_export_records_the_fusion(tmp_path, make_checkpoint):
    from edgeecg.export.bundle_writer import ExportConfig, export_bundle

    ck = tmp_path / "ck"
    ck.mkdir()
    for f in range(2):
        make_checkpoint(ck, f, layer_scale=0.5, model_kwargs=BN_KWARGS)
    cfg = ExportConfig(
        checkpoints=(str(ck),), out=str(tmp_path / "b"), variants=("fp32", "int8w"), fused=True,
        parity_samples=8, command="pytest",
    )  # fmt: skip
    manifest = export_bundle(cfg)
    assert manifest["classifier"]["variants"]["fp32"]["fused"]["fusion"] == "grouped"
    assert manifest["metrics"]["export_checks"]["fused_vs_members_max_abs_prob_diff"] <= 1e-5
    on_disk = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert on_disk["classifier"]["variants"]["int8w"]["fused"]["fusion"] == "grouped"
