"""Int8 weight storage: per-output-channel symmetric int8 weights with a DequantizeLinear in front of each.

Only the stored weights shrink (about 4x); compute stays FP32. ONNX Runtime folds the constant
DequantizeLinear nodes back into FP32 weights at session creation when the session config entry
`session.disable_quant_qdq` is "1" (the pipeline sets it for a bundle entry whose "weights" is "int8");
without it ORT keeps the nodes and dequantizes on every call, which is slower but gives the same numbers.

Which axis holds the output channels depends on the consumer: Conv weights [M, C/g, kH, kW] -> axis 0;
Gemm B -> axis 0 with transB=1, else axis 1; MatMul B [..., K, N] -> the last axis. A weight that reaches
consumers disagreeing on the axis (or any consumer that is not a weight input) stays FP32.

Depthwise Conv weights ([C, 1, kH, kW], group = C) stay FP32 by default: each output channel's scale there
covers one small filter that carries the whole channel, and in the bundled ConvNeXt members those few
tensors (4% of the weights) caused most of the int8 error (one early 7x7 depthwise filter bank alone moved
the ensemble's probabilities by 0.008 on 256 test pages; all of them FP32 halved the total, 0.0106 -> 0.0052).
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

#: Per-axis DequantizeLinear needs opset 13.
MIN_OPSET = 13


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _weight_axis(node: Any, index: int, ndim: int) -> int | None:
    """Output-channel axis of `node`'s input `index` when it is a weight this pass handles, else None."""
    if index != 1:
        return None
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "MatMul":
        return ndim - 1
    return None


def _is_depthwise(node: Any, dims: list[int]) -> bool:
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return node.op_type == "Conv" and group > 1 and len(dims) == 4 and dims[1] == 1


def quantize_weights_int8(model: Any, min_size: int = 1024, depthwise: bool = False) -> Any:
    """Return a copy of `model` whose large Conv/Gemm/MatMul weights are stored as per-channel int8.

    Every float32 initializer with ndim >= 2 and at least `min_size` elements that feeds only weight
    inputs (input 1 of Conv, Gemm, MatMul; also through Identity nodes) agreeing on one output-channel axis
    becomes `<name>_q` (int8), `<name>_scale` (float32, one per channel) and `<name>_zero` (int8 zeros), and
    a DequantizeLinear node that produces the original name, so every consumer is untouched.

    Args:
        model: an onnx.ModelProto with float32 weights, opset >= 13.
        min_size: smaller initializers stay FP32 (they cost little and some are precision-sensitive).
        depthwise: quantize depthwise Conv weights too (default: they stay FP32; see the module note).

    Returns:
        A new ModelProto that passes onnx.checker.

    Raises:
        EdgeECGError: the opset is below 13 or the result does not check.
    """
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper  # (onnx is an extra)

    if _opset(model) < MIN_OPSET:
        raise EdgeECGError(f"int8 weights need ONNX opset >= {MIN_OPSET} (per-axis DequantizeLinear)")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    consumers: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for node in g.node:
        for k, x in enumerate(node.input):
            consumers[x].append((node, k))
    graph_outputs = {o.name for o in g.output}
    taken = (
        {t.name for t in g.initializer} | {x for n in g.node for x in n.output} | {i.name for i in g.input}
    )

    def axes_of(name: str, dims: list[int], depth: int = 0) -> set[int | None]:
        """Axes the uses of `name` ask for (through Identity); None marks a use that is not a weight, or a
        depthwise one when those stay FP32."""
        if name in graph_outputs or depth > 8:
            return {None}
        found: set[int | None] = set()
        for node, k in consumers.get(name, []):
            if node.op_type == "Identity":
                found |= axes_of(node.output[0], dims, depth + 1)
            elif not depthwise and _is_depthwise(node, dims):
                found.add(None)
            else:
                found.add(_weight_axis(node, k, len(dims)))
        return found

    keep, dq_nodes, n_done, before, after = [], [], 0, 0, 0
    for init in g.initializer:
        ndim = len(init.dims)
        size = int(np.prod(init.dims)) if ndim else 1
        axes = axes_of(init.name, list(init.dims)) if init.data_type == TensorProto.FLOAT else set()
        fresh = all(f"{init.name}{s}" not in taken for s in ("_q", "_scale", "_zero"))
        if ndim < 2 or size < min_size or len(axes) != 1 or None in axes or not fresh:
            keep.append(init)
            continue
        (axis,) = axes
        w = numpy_helper.to_array(init).astype(np.float32)
        # Symmetric per-channel scale: the largest |w| of each output channel maps to 127.
        reduce_axes = tuple(a for a in range(ndim) if a != axis)
        scale = np.abs(w).max(axis=reduce_axes) / 127.0  # [C]
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)  # an all-zero channel: any scale works
        shape = [1] * ndim
        shape[axis] = -1
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)  # [C] -> broadcast on axis
        keep += [
            numpy_helper.from_array(q, f"{init.name}_q"),
            numpy_helper.from_array(scale, f"{init.name}_scale"),
            numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{init.name}_zero"),
        ]
        dq_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{init.name}_q", f"{init.name}_scale", f"{init.name}_zero"],
                [init.name],
                name=f"{init.name}_dequantize",
                axis=axis,
            )
        )
        n_done += 1
        before += w.nbytes
        after += q.nbytes + 5 * scale.size
    del g.initializer[:]
    g.initializer.extend(keep)
    # DequantizeLinear nodes read only initializers, so putting them first keeps the graph sorted.
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(dq_nodes + nodes)
    try:
        onnx.checker.check_model(out)
    except Exception as err:  # onnx raises several types; report one line
        raise EdgeECGError(
            f"int8 weight pass produced an invalid model: {str(err).splitlines()[0]}"
        ) from None
    log.info("int8 weights: %d initializers, %.1f MB -> %.1f MB", n_done, before / 1e6, after / 1e6)
    return out


def is_int8_weights(model: Any) -> bool:
    """True when the model stores any weight through a DequantizeLinear of an int8 initializer."""
    int8_type = require("onnx").TensorProto.INT8
    int8 = {t.name for t in model.graph.initializer if t.data_type == int8_type}
    return any(n.op_type == "DequantizeLinear" and n.input[0] in int8 for n in model.graph.node)


def dequantize_weights(model: Any) -> Any:
    """Inverse storage change: a copy with every constant DequantizeLinear folded back into FP32 initializers.

    For tools that want plain FP32 weights (e.g. a TensorRT build). The values are exactly what the
    DequantizeLinear nodes compute, so the result matches the int8-weight model, not the original FP32 one.
    """
    onnx = require("onnx")
    from onnx import numpy_helper  # (onnx is an extra)

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    folded, used = [], set()
    nodes = []
    for node in g.node:
        if node.op_type != "DequantizeLinear" or not all(x in inits for x in node.input if x):
            nodes.append(node)
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1

        def per_axis(name: str, shape: list[int] = shape) -> np.ndarray:
            v = numpy_helper.to_array(inits[name]).astype(np.float32)
            return v.reshape(shape) if v.ndim == 1 else v  # [C] -> broadcast along axis; scalars as they are

        zero = per_axis(node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
        w = (q - zero) * per_axis(node.input[1])
        folded.append(numpy_helper.from_array(w.astype(np.float32), node.output[0]))
        used.update(x for x in node.input if x)
    still = {x for n in nodes for x in n.input}
    keep = [t for t in g.initializer if t.name not in used or t.name in still]
    del g.initializer[:]
    g.initializer.extend(keep + folded)
    del g.node[:]
    g.node.extend(nodes)
    return out
