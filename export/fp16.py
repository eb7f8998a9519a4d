"""Mixed-precision FP16 ONNX: FP16 everywhere except FP32 islands where FP16 overflows or loses the answer.

ConvNeXt's LayerNorm overflows in FP16 (docs/design.md section 6), so normalisation, reductions, softmax/sigmoid
and the final classifier head stay FP32; Conv weights and the activations between them become FP16. Cast
nodes sit where an FP32 island meets FP16, and the model's inputs and outputs stay float32, so a caller
feeds and reads the same arrays as with the FP32 model. The result is meant for a strongly typed TensorRT
build (which keeps exactly these types) and loads in ONNX Runtime.

We write this pass ourselves: onnxconverter_common's converter produced models ONNX Runtime refused to load.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np

from edgeecg._lazy import require
from edgeecg.errors import EdgeECGError

# Imported inside functions, so they load only when used: optional or heavy libraries (onnx).

log = logging.getLogger(__name__)

#: Op types that always run in FP32: normalisation, reductions, softmax/sigmoid.
FP32_OPS: frozenset[str] = frozenset(
    {
        "LayerNormalization",
        "BatchNormalization",
        "InstanceNormalization",
        "GroupNormalization",
        "LpNormalization",
        "GlobalAveragePool",
        "GlobalLpPool",
        "ReduceMean",
        "ReduceSum",
        "ReduceSumSquare",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "Softmax",
        "LogSoftmax",
        "Sigmoid",
    }
)

#: Ops that only move or reshape data: they follow the precision of their (first) data input, so a layout
#: op between two FP32 islands does not bounce through FP16.
FOLLOW_OPS: frozenset[str] = frozenset(
    {
        "Transpose",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Concat",
        "Slice",
        "Split",
        "Gather",
        "Expand",
        "Tile",
        "Pad",
    }
)

#: Head ops: walking back from each graph output, the first of these (and everything after it) stays FP32.
#: Conv: the grouped fused ensemble's classifier is a grouped 1x1 Conv on the pooled features.
HEAD_OPS: frozenset[str] = frozenset({"Gemm", "MatMul", "Conv"})
#: Ops whose output does not depend on their input's values: the walk back from the outputs stops there, or a
#: Reshape's shape computed from a body tensor would pull the whole body into the head.
SHAPE_OPS: frozenset[str] = frozenset({"Shape", "Size"})

#: (op type, input index) that the ONNX spec fixes to float32 whatever the data type (e.g. Resize scales).
FIXED_FP32_INPUTS: frozenset[tuple[str, int]] = frozenset({("Resize", 1), ("Resize", 2)})


def _float_tensors(model: Any) -> dict[str, int]:
    """Name -> ONNX elem type of every typed value in the model (after shape inference)."""
    onnx = require("onnx")
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types: dict[str, int] = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    for node in g.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def head_nodes(model: Any) -> set[int]:
    """Indices of nodes on the path from each graph output back to (and including) the last Gemm, MatMul or
    Conv (the classifier head), not walking through the inputs of Shape/Size."""
    g = model.graph
    producer = {out: i for i, node in enumerate(g.node) for out in node.output}
    init_names = {t.name for t in g.initializer}
    head: set[int] = set()
    stack = [o.name for o in g.output]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen or name in init_names or name not in producer:
            continue
        seen.add(name)
        idx = producer[name]
        node = g.node[idx]
        head.add(idx)
        if node.op_type in HEAD_OPS:
            # The head's weight and bias come from initializers or Constants; its data input is left alone.
            for inp in node.input[1:]:
                if inp in producer and g.node[producer[inp]].op_type == "Constant":
                    head.add(producer[inp])
            continue
        if node.op_type not in SHAPE_OPS:
            stack.extend(node.input)
    return head


def convert_to_mixed_fp16(
    model: Any, fp32_ops: frozenset[str] = FP32_OPS, keep_head_fp32: bool = True
) -> Any:
    """Return a mixed-precision copy of an FP32 ONNX model.

    Args:
        model: an onnx.ModelProto with float32 weights and IO.
        fp32_ops: op types that stay FP32.
        keep_head_fp32: keep the final Gemm/MatMul/Conv (+ Add) and everything after it in FP32.

    Returns:
        A new ModelProto: FP16 weights and activations outside the FP32 islands, Cast nodes at the borders,
        float32 graph inputs and outputs. It passes onnx.checker and full shape inference.
    """
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper  # (onnx is an extra)

    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
    src = onnx.ModelProto()
    src.CopyFrom(model)
    types = _float_tensors(src)
    g = src.graph
    nodes = list(g.node)
    head = head_nodes(src) if keep_head_fp32 else set()
    inits = {t.name: t for t in g.initializer}
    const_nodes = {n.output[0]: n for n in nodes if n.op_type == "Constant"}
    graph_inputs = {i.name for i in g.input}

    def is_float(name: str) -> bool:
        return types.get(name) == FLOAT

    # 1. Decide each node's precision (True = FP16) in topological order (ONNX graphs are stored sorted).
    # Weights (initializers, Constants) take the precision of their consumers, so they are decided later.
    half_node: dict[int, bool] = {}
    tensor_half: dict[str, bool] = {n: False for n in graph_inputs}
    for i, node in enumerate(nodes):
        if node.op_type == "Constant":
            continue
        floats_in = [x for x in node.input if x and is_float(x)]
        floats_out = [x for x in node.output if x and is_float(x)]
        if not floats_in and not floats_out:
            half = False  # integer/shape arithmetic: untouched
        elif i in head or node.op_type in fp32_ops:
            half = False
        elif node.op_type in FOLLOW_OPS or node.op_type == "Cast":
            data = [x for x in floats_in if x not in inits and x not in const_nodes]
            half = bool(data) and all(tensor_half.get(x, False) for x in data)
        else:
            half = True
        half_node[i] = half
        for out in floats_out:
            tensor_half[out] = half
        # A Cast to float inside an FP16 region must cast to float16 instead.
        if node.op_type == "Cast" and floats_out:
            tensor_half[node.output[0]] = half

    # 2. Weights: FP16 when every consumer is FP16; shared weights with mixed consumers get an FP16 twin.
    consumers: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, node in enumerate(nodes):
        for k, x in enumerate(node.input):
            consumers[x].append((i, k))

    def wants_half(i: int, k: int) -> bool:
        return half_node.get(i, False) and (nodes[i].op_type, k) not in FIXED_FP32_INPUTS

    rename: dict[tuple[int, int], str] = {}
    new_inits = []
    for name in list(inits) + list(const_nodes):
        if not is_float(name):
            continue
        uses = consumers.get(name, [])
        want = {wants_half(i, k) for i, k in uses}
        if want == {True}:
            tensor_half[name] = True
            if name in inits:
                arr = numpy_helper.to_array(inits[name]).astype(np.float16)
                inits[name].CopyFrom(numpy_helper.from_array(arr, name))
            else:
                attr = next(a for a in const_nodes[name].attribute if a.name == "value")
                arr = numpy_helper.to_array(attr.t).astype(np.float16)
                attr.t.CopyFrom(numpy_helper.from_array(arr))
        elif want == {True, False}:
            tensor_half[name] = False
            twin = f"{name}__fp16"
            if name in inits:
                arr = numpy_helper.to_array(inits[name]).astype(np.float16)
            else:
                attr = next(a for a in const_nodes[name].attribute if a.name == "value")
                arr = numpy_helper.to_array(attr.t).astype(np.float16)
            new_inits.append(numpy_helper.from_array(arr, twin))
            for i, k in uses:
                if wants_half(i, k):
                    rename[(i, k)] = twin
        else:
            tensor_half[name] = False
    g.initializer.extend(new_inits)

    # 3. Rewire: a Cast wherever a float tensor reaches a node of the other precision; Cast 'to' fixed up.
    out_nodes = []
    casts: dict[tuple[str, bool], str] = {}

    def cast_to(name: str, half: bool) -> str:
        key = (name, half)
        if key not in casts:
            cname = f"{name}__to_{'fp16' if half else 'fp32'}"
            out_nodes.append(
                helper.make_node("Cast", [name], [cname], name=f"{cname}_cast", to=HALF if half else FLOAT)
            )
            casts[key] = cname
        return casts[key]

    for i, node in enumerate(nodes):
        half = half_node.get(i, False)
        if node.op_type != "Constant":
            for k, x in enumerate(node.input):
                if not x or not is_float(x):
                    continue
                if (i, k) in rename:
                    node.input[k] = rename[(i, k)]
                    continue
                need = wants_half(i, k)
                if tensor_half.get(x, False) != need:
                    node.input[k] = cast_to(x, need)
            if node.op_type == "Cast":
                for attr in node.attribute:
                    if attr.name == "to" and attr.i in (FLOAT, HALF) and is_float(node.output[0]):
                        attr.i = HALF if half else FLOAT
        out_nodes.append(node)

    # 4. Graph outputs stay float32: an FP16 producer writes a renamed tensor, and a Cast restores the name.
    for out in g.output:
        if tensor_half.get(out.name, False):
            inner = f"{out.name}__fp16"
            for node in out_nodes:
                for k, x in enumerate(node.input):
                    if x == out.name:
                        node.input[k] = inner
                for k, x in enumerate(node.output):
                    if x == out.name:
                        node.output[k] = inner
            out_nodes.append(helper.make_node("Cast", [inner], [out.name], name=f"{out.name}_cast", to=FLOAT))

    # Casts were appended before their consumers, so out_nodes is still topologically sorted.
    del g.node[:]
    g.node.extend(out_nodes)
    del g.value_info[:]
    try:
        onnx.checker.check_model(src)
        result = onnx.shape_inference.infer_shapes(src, check_type=True, strict_mode=True)
    except Exception as err:  # onnx raises several types; report one line
        raise EdgeECGError(
            f"mixed FP16 conversion produced an invalid model: {str(err).splitlines()[0]}"
        ) from None
    n_half = sum(half_node.values())
    log.info("FP16 pass: %d of %d nodes in FP16, %d casts", n_half, len(half_node), len(casts))
    return result


def node_input_types(model: Any) -> list[tuple[Any, list[int]]]:
    """Every node with the elem types of its inputs (after shape inference); for checks and tests."""
    onnx = require("onnx")
    inferred = onnx.shape_inference.infer_shapes(model)
    types = _float_tensors(inferred)
    return [(node, [types.get(x, 0) for x in node.input if x]) for node in inferred.graph.node]
