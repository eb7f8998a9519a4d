"""Int8 weight storage: graph shape (int8 + per-axis DequantizeLinear), size, ONNX Runtime parity, the int8w
bundle variant written alone (no FP32 files) with an int8 detector, loaded through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeecg.backends.onnxruntime import INT8_WEIGHTS_SESSION_CONFIG, OnnxRuntimeRunner
from edgeecg.bundle import load_manifest, verify
from edgeecg.errors import BackendError, EdgeECGError, UsageError
from edgeecg.export.bundle_writer import ExportConfig, build_engines, export_bundle
from edgeecg.export.cli import main
from edgeecg.export.fused import sigmoid
from edgeecg.export.int8w import dequantize_weights, is_int8_weights, quantize_weights_int8
from edgeecg.export.onnx_export import check_inputs
from edgeecg.pipeline import Pipeline


def _run(
    model: onnx.ModelProto, x: np.ndarray, config: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    for k, v in (config or {}).items():
        opts.add_session_config_entry(k, v)
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x}), strict=True))


def _dq_by_output(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}


def _axis(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "axis")


@pytest.fixture(scope="module")
def active_ckpts(tmp_path_factory, make_checkpoint) -> Path:
    d = tmp_path_factory.mktemp("active")
    # Blocks that contribute (layer scale 0.1) and a 10x head: the shared fixture (inert blocks, 50x head) is
    # a worst case for weight rounding, its logits 50x two random downsample convs (int8w lands at ~1.0e-2).
    for fold in (0, 1):
        make_checkpoint(d, fold, head_scale=10.0, layer_scale=0.1)
    return d


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory, active_ckpts, bundle):
    out = tmp_path_factory.mktemp("fp32") / "bundle"
    cfg = ExportConfig(
        checkpoints=(str(active_ckpts),),
        out=str(out),
        detector=str(bundle[0] / "detector.onnx"),
        precision="fp32",
        fused=True,
        command="pytest",
    )
    return out, export_bundle(cfg)


@pytest.fixture(scope="module")
def member(fp32_bundle) -> onnx.ModelProto:
    out, manifest = fp32_bundle
    return onnx.load(str(out / manifest["classifier"]["variants"]["fp32"]["members"][0]["file"]))


def test_conv_weights_int8_with_axis0_biases_stay_fp32(member):
    q = quantize_weights_int8(member, min_size=0, depthwise=True)
    onnx.checker.check_model(q)
    inits = {t.name: t for t in q.graph.initializer}
    dq = _dq_by_output(q)
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    assert len(convs) >= 8
    for node in convs:
        w = node.input[1]
        assert w in dq and w not in inits, f"{node.name}: weight {w} should come from a DequantizeLinear"
        qname, sname = dq[w].input[0], dq[w].input[1]
        assert inits[qname].data_type == TensorProto.INT8 and _axis(dq[w]) == 0
        assert list(inits[sname].dims) == [inits[qname].dims[0]]  # one scale per output channel
        if len(node.input) > 2 and node.input[2] in inits:
            assert inits[node.input[2]].data_type == TensorProto.FLOAT, f"bias of {node.name} must stay fp32"
    gemm = next(n for n in q.graph.node if n.op_type == "Gemm")
    assert _axis(dq[gemm.input[1]]) == 0  # timm head: Gemm with transB=1, weight [classes, features]
    # The default min_size leaves the smallest weights in FP32.
    small = quantize_weights_int8(member)
    assert 0 < len(_dq_by_output(small)) < len(dq)


def test_depthwise_conv_weights_stay_fp32_by_default(member):
    shapes = {t.name: list(t.dims) for t in member.graph.initializer}
    groups = {
        n.input[1]: next((a.i for a in n.attribute if a.name == "group"), 1)
        for n in member.graph.node
        if n.op_type == "Conv"
    }
    dw = {w for w, g in groups.items() if g > 1 and shapes[w][1] == 1}
    dense = {w for w, g in groups.items() if g == 1 and np.prod(shapes[w]) >= 1024}
    assert dw and dense  # a ConvNeXt: 7x7 depthwise filters and 1x1 / patchify convolutions
    q = quantize_weights_int8(member)
    dq, inits = _dq_by_output(q), {t.name: t for t in q.graph.initializer}
    assert not dw & set(dq) and all(inits[w].data_type == TensorProto.FLOAT for w in dw)
    assert dense <= set(dq)
    assert dw <= set(_dq_by_output(quantize_weights_int8(member, min_size=0, depthwise=True)))


def test_axis_per_consumer_shared_and_zero_channels():
    """MatMul quantizes along its last axis, Gemm transB=0 along axis 1; an axis conflict stays FP32."""
    rng = np.random.default_rng(0)
    w_mm = rng.normal(size=(32, 48)).astype(np.float32)
    w_mm[:, 5] = 0.0  # an all-zero output channel: scale 1, values 0
    w_gemm = rng.normal(size=(48, 40)).astype(np.float32)
    w_shared = rng.normal(size=(40, 40)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w_mm"], ["a"]),
        helper.make_node("Gemm", ["a", "w_gemm"], ["b"]),  # transB=0: B is [K, N]
        helper.make_node("MatMul", ["b", "w_shared"], ["c"]),  # asks for axis 1 ...
        helper.make_node("Gemm", ["c", "w_shared"], ["y"], transB=1),  # ... and this one for axis 0
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 40])],
        [
            numpy_helper.from_array(v, k)
            for k, v in {"w_mm": w_mm, "w_gemm": w_gemm, "w_shared": w_shared}.items()
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    q = quantize_weights_int8(model, min_size=0)
    dq = _dq_by_output(q)
    assert _axis(dq["w_mm"]) == 1 and _axis(dq["w_gemm"]) == 1
    assert "w_shared" not in dq and any(t.name == "w_shared" for t in q.graph.initializer)
    scales = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    assert scales["w_mm_scale"].shape == (48,) and scales["w_mm_scale"][5] == 1.0
    assert not scales["w_mm_q"][:, 5].any()
    x = rng.normal(size=(2, 32)).astype(np.float32)
    ref, got = _run(model, x)["y"], _run(q, x, INT8_WEIGHTS_SESSION_CONFIG)["y"]
    assert np.abs(got - ref).max() <= 2e-2 * np.abs(ref).max()
    # Folding the storage back gives exactly what the DequantizeLinear nodes compute.
    back = dequantize_weights(q)
    assert not is_int8_weights(back) and is_int8_weights(q)
    np.testing.assert_allclose(_run(back, x)["y"], got, rtol=1e-5, atol=1e-5)
    old = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    with pytest.raises(EdgeECGError, match="opset >= 13"):
        quantize_weights_int8(old)


def test_size_shrinks_about_4x_and_probabilities_stay_close(member, fp32_bundle):
    _, manifest = fp32_bundle
    q = quantize_weights_int8(member)
    before = {t.name: t for t in member.graph.initializer}
    dq = _dq_by_output(q)
    fp32_bytes = sum(numpy_helper.to_array(before[name]).nbytes for name in dq)
    int8_bytes = sum(numpy_helper.to_array(t).nbytes for t in q.graph.initializer if t.name.endswith("_q"))
    assert 3.9 <= fp32_bytes / int8_bytes <= 4.0 + 1e-9  # the quantized weights themselves: exactly 4x
    # The whole tiny file: small weights stay FP32, so a bit less than 4x (5 members of atto: ~3.9x).
    assert member.ByteSize() / q.ByteSize() > 2.3
    x = check_inputs(manifest["classifier"]["input"], n_random=2, n_ecg=4, seed=1)
    ref = sigmoid(_run(member, x)["logits"])
    got = sigmoid(_run(q, x, INT8_WEIGHTS_SESSION_CONFIG)["logits"])
    assert np.abs(got - ref).max() <= 1e-2
    assert np.abs(ref - ref.mean(axis=0)).max() > 1e-2  # the inputs really differ, so the check can fail


@pytest.fixture(scope="module")
def int8w_bundle(tmp_path_factory, active_ckpts, detector_pt):
    """A bundle of only int8w files (fused + members) with an int8 detector, as the default bundle is written."""
    out = tmp_path_factory.mktemp("int8w") / "bundle"
    cfg = ExportConfig(
        checkpoints=(str(active_ckpts),),
        out=str(out),
        detector=str(detector_pt),
        detector_imgsz=64,
        variants=("int8w",),
        detector_weights="int8",
        fused=True,
        parity_samples=16,
        command="pytest",
    )
    return out, export_bundle(cfg)


def test_int8w_only_bundle_manifest_and_files(int8w_bundle):
    out, manifest = int8w_bundle
    verify(out, load_manifest(out))
    variants = manifest["classifier"]["variants"]
    assert list(variants) == ["int8w"] and variants["int8w"]["weights"] == "int8"
    assert not (out / "fp32").exists() and not list(out.rglob("*.tmp"))
    files = [m["file"] for m in variants["int8w"]["members"]] + [variants["int8w"]["fused"]["file"]]
    assert all(f.startswith("int8w/") for f in files) and len(files) == 3
    for f in files:
        assert is_int8_weights(onnx.load(str(out / f))), f
    checks = manifest["metrics"]["export_checks"]["int8w_vs_fp32_onnxruntime"]
    assert set(checks) == {"members", "fused"}
    assert all(0.0 <= c["max_abs_prob_diff"] <= 1e-2 for c in checks.values())
    det = manifest["detector"]
    assert det["weights"] == "int8" and is_int8_weights(onnx.load(str(out / det["file"])))
    assert "max_abs_output_diff" in manifest["metrics"]["export_checks"]["detector_int8_vs_fp32_onnxruntime"]


def test_pipeline_int8w_agrees_with_fp32_bundle_and_sets_session_config(int8w_bundle, fp32_bundle):
    x = check_inputs(int8w_bundle[1]["classifier"]["input"], n_random=2, n_ecg=4, seed=5)
    probs = {}
    for name, (path, _) in {"int8w": int8w_bundle, "fp32": fp32_bundle}.items():
        want = INT8_WEIGHTS_SESSION_CONFIG if name == "int8w" else {}
        for fused in (True, False):
            with Pipeline.from_bundle(path, backend="onnxruntime", threads=1, fused=fused) as p:
                assert all(r.session_config == want for r in p.ensemble.runners), name
                assert p._extra[0].name == "detector" and p._extra[0].session_config == want, name
                # The tiny random detector finds no paper, so compare the classifier on the same tensors.
                probs[(name, fused)] = p.ensemble(x)[0]
                (r,) = p.run([np.full((120, 200, 3), 255, np.uint8)])
                assert r.error is None  # the int8 detector runs end to end
    assert np.abs(probs[("int8w", True)] - probs[("int8w", False)]).max() <= 1e-5
    assert np.abs(probs[("fp32", True)] - probs[("fp32", False)]).max() <= 1e-5
    assert np.abs(probs[("int8w", True)] - probs[("fp32", True)]).max() <= 1e-2
    assert np.abs(probs[("fp32", True)] - probs[("fp32", True)].mean(axis=0)).max() > 1e-2


def test_precision_choice_and_tensorrt_refusal(bundle, int8w_bundle, tmp_path):
    out, manifest = bundle
    with Pipeline.from_bundle(out, backend="onnxruntime") as p:
        assert p.ensemble.runners[0].session_config == {}  # fp32 stays the onnxruntime default
    with pytest.raises(UsageError, match="no 'int8w' classifier"):
        Pipeline.from_bundle(out, precision="int8w")
    with pytest.raises(UsageError, match="TensorRT runs fp16/fp32 plans"):
        Pipeline.from_bundle(int8w_bundle[0], backend="tensorrt")
    cfg = ExportConfig(checkpoints=("x",), out=str(tmp_path / "b"), variants=("int8w",), engines=True)
    with pytest.raises(UsageError, match="fp16 or fp32 variant"):
        export_bundle(cfg)
    with pytest.raises(BackendError, match="only int8w"):
        build_engines(int8w_bundle[0], json.loads(json.dumps(int8w_bundle[1])), cfg)


def test_cli_variants_flag(capsys):
    assert main(["--variants", "fp32,int9"]) == 2
    assert "int9" in capsys.readouterr().err
    assert main(["--variants", "int8w", "--precision", "fp32"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_runner_applies_session_config(bundle):
    out, manifest = bundle
    path = out / manifest["classifier"]["variants"]["fp32"]["members"][0]["file"]
    with OnnxRuntimeRunner(path, threads=1, session_config={"session.disable_quant_qdq": "1"}) as r:
        assert r.session_config == {"session.disable_quant_qdq": "1"}
        assert (
            r.infer(check_inputs(manifest["classifier"]["input"], n_random=1, n_ecg=0))["logits"].shape[1]
            == 5
        )
