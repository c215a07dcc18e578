"""What gets quantized for each INT8 target, and the checks that the graph is what its runtime fuses.

The backbone is found in the graph, never by node names (a retrained or reshaped model needs no
change here): it is every node upstream of the feature projection, the Conv whose output the L2
normalisation (the one ReduceL2) reads; the projection belongs to it. The head (normalisation,
prototype MatMuls, ReduceMax / ArgMax, score sums) stays fp32 in every target: class margins are
small, and the head's cost is measured apart (``benchmarks/int8_head.py``).

Both targets: per-channel symmetric int8 weights (zero point 0), fp32 biases (TensorRT dequantizes
no int32), ONNX Runtime's ``quantize_static`` in QDQ format on ranges calibrated once.

- ``tensorrt`` (TensorRT's explicit-quantization rules): symmetric int8 activations (zero points
  0); Q/DQ on the inputs of every Conv and on the *residual* input of every Add, none on Conv
  outputs, so TensorRT fuses Conv + Add + ReLU and the quantization of the next layer's input into
  one int8 kernel; no Q/DQ pair is left that TensorRT would have to run on its own
  (:func:`trt_placement_issues`). 8-bit weights (TensorRT's kernels accumulate in int32).
- ``onnxruntime`` (ONNX Runtime's x86 int8 kernels): uint8 activations with zero points, Q/DQ
  around every backbone op (Conv, Add, Concat, pooling, Resize) so each fuses into an int8 kernel
  (QLinearConv, QLinearAdd, QLinearConcat, uint8 MaxPool / Resize); the ReLU after a Conv folds
  into the Conv's output quantization (zero point at 0). 7-bit weights: without VNNI the u8 x s8
  kernels add pairs of products in int16, which saturates with 8-bit weights.

The two disagree exactly where a ReLU follows a Conv: ONNX Runtime fuses a Conv into QLinearConv
only when a Q follows it directly, and with zero point 0 (TensorRT's) that Q cannot stand in for
the ReLU, which then runs on its own between int8 tensors; TensorRT fuses Conv + ReLU + Q anyway.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from novum.contracts.int8 import ONNXRUNTIME, TENSORRT
from novum.errors import NovumError

RECIPE_VERSION = "v4"
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Ops whose output lies within their input's range: their output takes the input's quantization
# (ONNX Runtime then runs them on uint8 and drops the Q/DQ around them).
PASSTHROUGH = ("MaxPool", "Resize", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice")
HEAD_OPS = ("MatMul", "ReduceMax", "ArgMax", "ReduceL2", "ReduceSum", "Div", "Gather", "GatherElements", "Equal", "Where")


@dataclass(frozen=True)
class TargetRecipe:
    target: str
    op_types: tuple[str, ...]          # quantize_static's op_types_to_quantize
    activations: str                   # "int8" | "uint8"
    symmetric_activations: bool
    weight_bits: int                   # 8, or 7 (reduce_range)
    exclude_outputs: tuple[str, ...] = ()   # OpTypesToExcludeOutputQuantization

    def describe(self) -> str:
        zp = "zero points 0" if self.symmetric_activations else "zero points calibrated"
        return (f"{self.activations} activations ({zp}), per-channel int8 weights ({self.weight_bits}-bit), "
                f"fp32 biases; Q/DQ on {', '.join(self.op_types)}")


RECIPES = {
    TENSORRT: TargetRecipe(TENSORRT, ("Conv", "Add"), "int8", True, 8, exclude_outputs=("Conv", "Add")),
    ONNXRUNTIME: TargetRecipe(ONNXRUNTIME, ("Conv", "Add", "Relu", "Clip", "MaxPool", "AveragePool", "Concat",
                                            "Resize"), "uint8", False, 7),
}
# Every tensor either recipe may quantize is calibrated in one pass.
CALIBRATED_OPS = tuple(sorted({op for r in RECIPES.values() for op in r.op_types} | set(PASSTHROUGH)))


class QuantizeError(NovumError):
    """The graph cannot be quantized as asked."""


@dataclass
class GraphParts:
    backbone: list[str]            # every node upstream of the features from the first Conv on, projection included
    convs: list[str]               # the backbone's Conv nodes, projection included, in graph order
    projection: str                # the projection Conv
    features: str                  # the tensor the L2 normalisation reads
    head: list[str] = field(default_factory=list)   # every node downstream of ``features``
    pre: list[str] = field(default_factory=list)    # the preprocessing before the first Conv (kept fp32)


def _index(graph: onnx.GraphProto) -> tuple[dict[str, onnx.NodeProto], dict[str, list[onnx.NodeProto]]]:
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def find_parts(model: onnx.ModelProto) -> GraphParts:
    """Split a novum graph (fp32 or Q/DQ) into the backbone and the head (kept fp32)."""
    g = model.graph
    _ensure_names(g)
    producer, consumers = _index(g)
    norms = [n for n in g.node if n.op_type == "ReduceL2"]
    if len(norms) != 1:
        raise QuantizeError(f"expected one ReduceL2 (the feature normalisation) in the graph, found {len(norms)}; "
                            f"is this a novum-export fp32 ONNX?")
    features = norms[0].input[0]
    proj = producer.get(features)
    while proj is not None and proj.op_type in ("DequantizeLinear", "QuantizeLinear"):
        proj = producer.get(proj.input[0])            # a quantized projection output
    if proj is None or proj.op_type != "Conv":
        raise QuantizeError("the feature normalisation does not read a Conv output; is this a novum-export fp32 ONNX?")
    up: set[str] = set()
    stack = [features]
    while stack:
        n = producer.get(stack.pop())
        if n is None or n.name in up:
            continue
        up.add(n.name)
        stack.extend(n.input)
    down: list[str] = []
    seen: set[str] = set()
    stack = [features]
    while stack:
        for n in consumers.get(stack.pop(), []):
            if n.name not in seen:
                seen.add(n.name)
                down.append(n.name)
                stack.extend(n.output)
    # The preprocessing (cast, layout, mean/std and the optional contrast normalisation) is every
    # node with no Conv upstream of it: it stays fp32, so the int8 region starts at the first Conv's
    # input (a per-pixel division by a local deviation is no op to run on 8 bits).
    after_conv: set[str] = set()
    for n in g.node:                                  # graph order is topological
        if n.name in up and (n.op_type == "Conv" or any(
                (p := producer.get(i)) is not None and p.name in after_conv for i in n.input)):
            after_conv.add(n.name)
    backbone = [n.name for n in g.node if n.name in up and n.name in after_conv]
    pre = [n.name for n in g.node if n.name in up and n.name not in after_conv]
    convs = [n.name for n in g.node if n.name in up and n.op_type == "Conv"]
    return GraphParts(backbone, convs, proj.name, features, down, pre)


def _ensure_names(g: onnx.GraphProto) -> None:
    used = {n.name for n in g.node if n.name}
    for i, n in enumerate(g.node):
        if not n.name:
            name = f"{n.op_type}_{i}"
            while name in used:
                name += "_"
            n.name = name
            used.add(name)


def tie_passthrough_ranges(model: onnx.ModelProto, ranges: dict[str, Any]) -> int:
    """Give each pass-through op's output (MaxPool, Resize, reshapes) its input's calibrated range.

    ``ranges``: tensor -> ONNX Runtime ``TensorData``, changed in place; returns how many were tied.
    Exact: a max or an interpolation of values never leaves their range. With equal scales ONNX
    Runtime runs these ops on uint8 instead of dequantizing around them.
    """
    tied = 0
    for n in model.graph.node:        # graph order: a chain of them inherits the first input's range
        if n.op_type in PASSTHROUGH and n.input and n.input[0] in ranges and n.output[0] in ranges:
            ranges[n.output[0]] = ranges[n.input[0]]
            tied += 1
    return tied


def trt_placement(model: onnx.ModelProto) -> tuple[int, int]:
    """TensorRT's placement on top of the quantizer's: returns (pairs removed, consumers detached).

    - At a residual Add the quantizer puts a Q/DQ pair on both inputs. The input a Conv produced
      is the main branch, which TensorRT fuses with the Add (and the ReLU after it) into that
      Conv's kernel, so its pair is removed (the first such input when both come from Convs, as
      in a downsampling block); the residual input keeps its pair.
    - The quantizer hands the dequantized tensor to every consumer of a quantized tensor. A
      consumer that is neither a weighted layer nor a residual Add (a decoder Concat reading an
      encoder output, say) gets the fp32 tensor back: a DQ there would run on its own.
    """
    g = model.graph
    producer, consumers = _index(g)
    drop: set[str] = set()
    for add in (n for n in g.node if n.op_type == "Add"):
        pairs = []
        for j, t in enumerate(add.input):
            dq = producer.get(t)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is None or q.op_type != "QuantizeLinear":
                break
            pairs.append((j, dq, q, producer.get(q.input[0])))
        if len(pairs) != len(add.input):
            continue
        main = [p for p in pairs if p[3] is not None and p[3].op_type == "Conv"
                and len(consumers.get(p[1].output[0], [])) == 1 and len(consumers.get(p[2].output[0], [])) == 1]
        if main:
            j, dq, q, _ = main[0]
            add.input[j] = q.input[0]
            drop.update((dq.name, q.name))
    _remove_nodes(g, drop)
    producer, consumers = _index(g)
    inits = {t.name for t in g.initializer}
    detached = 0
    for dq in [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits]:
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        for u in consumers.get(dq.output[0], []):
            if _trt_fuses(u, dq.output[0], producer):
                continue
            for k, name in enumerate(u.input):
                if name == dq.output[0]:
                    u.input[k] = q.input[0]
            detached += 1
    producer, consumers = _index(g)
    unused = {n.name for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
              and not any(consumers.get(o) for o in n.output) and n.output[0] not in {o.name for o in g.output}}
    while unused:          # a pair left without consumers
        _remove_nodes(g, unused)
        producer, consumers = _index(g)
        unused = {n.name for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                  and not any(consumers.get(o) for o in n.output)}
    return len(drop) // 2, detached


def keep_outputs_fp32(model: onnx.ModelProto, convs: list[str]) -> int:
    """Remove the Q/DQ pair on the output of each of ``convs`` (kept fp32 on purpose): their
    consumers read the fp32 output. Else ONNX Runtime, seeing DQ -> Conv -> Q, quantizes the fp32
    weights itself (per tensor) and runs the layer in int8 anyway. Returns the pairs removed."""
    g = model.graph
    producer, consumers = _index(g)
    byname = {n.name: n for n in g.node}
    drop: set[str] = set()
    for name in convs:
        out = byname[name].output[0]
        for q in [u for u in consumers.get(out, []) if u.op_type == "QuantizeLinear"]:
            for dq in [u for u in consumers.get(q.output[0], []) if u.op_type == "DequantizeLinear"]:
                for u in consumers.get(dq.output[0], []):
                    u.input[:] = [out if i == dq.output[0] else i for i in u.input]
                drop.add(dq.name)
            if all(u.name in drop for u in consumers.get(q.output[0], [])):
                drop.add(q.name)
    _remove_nodes(g, drop)
    return len([d for d in drop if byname[d].op_type == "QuantizeLinear"])


def _trt_fuses(user: onnx.NodeProto, tensor: str, producer: dict[str, onnx.NodeProto]) -> bool:
    """Whether TensorRT fuses a DQ feeding ``user`` with ``tensor``: a weighted layer's data input,
    or an Add whose other input(s) a Conv produces (the residual input)."""
    if user.op_type in WEIGHTED:
        return user.input[0] == tensor
    if user.op_type == "Add":
        others = [producer.get(i) for i in user.input if i != tensor]
        return bool(others) and all(o is not None and o.op_type == "Conv" for o in others)
    return False


def _remove_nodes(g: onnx.GraphProto, names: set[str]) -> None:
    keep = [n for n in g.node if n.name not in names]
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)


# ----------------------------------------------------------------------------------------------
# checks


@dataclass
class QdqSummary:
    target: str
    quantize: int                          # QuantizeLinear nodes
    dequantize: int                        # DequantizeLinear nodes
    bad_zero_points: list[str]             # Q/DQ nodes breaking the target's zero-point / type rules
    head_qdq: list[str]                    # head nodes touching Q/DQ (must be empty)
    quantized_convs: list[str]             # backbone Convs whose weight comes through a DequantizeLinear
    fp32_convs: list[str]                  # backbone Convs with fp32 weights
    placement: list[str] = field(default_factory=list)   # TensorRT placement problems (tensorrt target)

    @property
    def ok(self) -> bool:
        return not (self.bad_zero_points or self.head_qdq or self.placement) and bool(self.quantized_convs)


def inspect_qdq(model: onnx.ModelProto, target: str) -> QdqSummary:
    """Zero points, head precision, quantized convs and (TensorRT) Q/DQ placement of a Q/DQ graph."""
    g = model.graph
    producer, _ = _index(g)
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    qs = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    bad = []
    for n in qs:
        zp = _const(n.input[2], inits, consts) if len(n.input) > 2 and n.input[2] else np.zeros((), np.uint8)
        weight = n.op_type == "DequantizeLinear" and n.input[0] in inits
        if zp is None or zp.dtype not in (np.int8, np.uint8):
            bad.append(n.name)
        elif (target == TENSORRT or weight) and (zp.dtype != np.int8 or np.any(zp != 0)):
            bad.append(n.name)     # TensorRT: int8, zero point 0; weights: symmetric int8 everywhere
    parts = find_parts(model)
    head = set(parts.head)
    head_qdq = []
    for n in g.node:
        if n.name not in head:
            continue
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") or any(
                (p := producer.get(i)) is not None and p.op_type == "DequantizeLinear" and i != parts.features
                for i in n.input):
            head_qdq.append(n.name)
    byname = {n.name: n for n in g.node}
    quantized, fp32 = [], []
    for name in parts.convs:
        w = producer.get(byname[name].input[1])
        (quantized if w is not None and w.op_type == "DequantizeLinear" else fp32).append(name)
    return QdqSummary(target, sum(n.op_type == "QuantizeLinear" for n in qs), sum(n.op_type == "DequantizeLinear" for n in qs),
                      bad, head_qdq, quantized, fp32, trt_placement_issues(model) if target == TENSORRT else [])


def trt_placement_issues(model: onnx.ModelProto) -> list[str]:
    """Where a Q/DQ graph breaks TensorRT's explicit-quantization placement (empty: it follows it).

    Every activation Q must feed DequantizeLinear nodes only, and every such DQ a weighted layer
    (Conv, ConvTranspose, Gemm, MatMul) or an Add whose other input a Conv produces (the residual
    input, fused into that Conv). Anything else is a Q/DQ pair TensorRT runs on its own.
    """
    g = model.graph
    producer, consumers = _index(g)
    inits = {t.name for t in g.initializer}
    out = []
    for q in (n for n in g.node if n.op_type == "QuantizeLinear"):
        for u in consumers.get(q.output[0], []):
            if u.op_type != "DequantizeLinear":
                out.append(f"{q.name} feeds {u.op_type} {u.name} (not a DequantizeLinear)")
    for dq in (n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits):
        for u in consumers.get(dq.output[0], []):
            if _trt_fuses(u, dq.output[0], producer):
                continue
            out.append(f"{dq.name} feeds {u.op_type} {u.name}: a Q/DQ pair TensorRT would run on its own")
    return out


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(Counter(n.op_type for n in model.graph.node))


def _const(name: str, inits, consts) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    if name in consts:
        for a in consts[name].attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    return None
