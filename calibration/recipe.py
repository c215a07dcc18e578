"""What gets quantized, and the checks that the result is what TensorRT and ONNX Runtime need.

Recipe (README, "INT8"): symmetric INT8 (zero points 0: TensorRT's ONNX parser accepts
QuantizeLinear / DequantizeLinear only with zero points 0), per-channel weights, fp32 biases (TensorRT dequantizes no int32), Q/DQ format, on the
backbone only; Q/DQ on the inputs of each Conv, and on its output only where that is exact
(:func:`settle_output_qdq`); one Q/DQ pair per consumer (:func:`dedicate_qdq`). The backbone is found in the
graph, not by node names: it is every node upstream of the feature projection, the Conv whose
output the L2 normalisation (ReduceL2) reads. The projection itself, the normalisation, the
prototype MatMuls, ReduceMax / ArgMax and the score sums stay fp32: quantizing the matching
flips top-1 (class margins are ~1e-3).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from novum.errors import NovumError

# Op types quantized inside the backbone: the convolutions carry the compute.
OP_TYPES = ("Conv",)
HEAD_OPS = ("MatMul", "ReduceMax", "ArgMax", "ReduceL2", "ReduceSum", "Div", "Gather", "GatherElements", "Equal", "Where")
RECIPE_VERSION = "qdq-s8s7-perchannel-backbone-v3"


class QuantizeError(NovumError):
    """The graph cannot be quantized as asked."""


@dataclass
class GraphParts:
    backbone: list[str]            # names of the nodes upstream of the projection (quantizable ops only)
    projection: str                # the projection Conv
    features: str                  # the projection's output tensor (pre-normalisation features)
    head: list[str] = field(default_factory=list)   # every node downstream of ``features``


def _index(graph: onnx.GraphProto) -> tuple[dict[str, onnx.NodeProto], dict[str, list[onnx.NodeProto]]]:
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def find_parts(model: onnx.ModelProto, op_types: tuple[str, ...] = OP_TYPES) -> GraphParts:
    """Split a novum graph into the backbone (to quantize) and the head (kept fp32)."""
    g = model.graph
    _ensure_names(g)
    producer, consumers = _index(g)
    norms = [n for n in g.node if n.op_type == "ReduceL2"]
    if len(norms) != 1:
        raise QuantizeError(f"expected one ReduceL2 (the feature normalisation) in the graph, found {len(norms)}; "
                            f"is this a novum-export fp32 ONNX?")
    features = norms[0].input[0]
    proj = producer.get(features)
    if proj is None or proj.op_type != "Conv":
        raise QuantizeError("the feature normalisation does not read a Conv output; is this a novum-export fp32 ONNX?")
    up: set[str] = set()
    stack = [i for i in proj.input]
    while stack:
        t = stack.pop()
        n = producer.get(t)
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
    backbone = [n.name for n in g.node if n.name in up and n.op_type in op_types]
    return GraphParts(backbone, proj.name, features, down)


def _ensure_names(g: onnx.GraphProto) -> None:
    used = {n.name for n in g.node if n.name}
    for i, n in enumerate(g.node):
        if not n.name:
            name = f"{n.op_type}_{i}"
            while name in used:
                name += "_"
            n.name = name
            used.add(name)


def dedicate_qdq(model: onnx.ModelProto) -> int:
    """Give every consumer of a shared activation Q -> DQ pair its own pair (same scale and zero point).

    ONNX Runtime's x86 CPU path fuses DQ -> Conv -> Q into QLinearConv only after turning the int8
    Q/DQ pair in front of it into uint8, which it does only for a Q with a single DQ consumer; the
    quantizer shares one pair between a block's convolutions and its residual Add. Copies get their
    own scale / zero-point initializers, else ONNX Runtime's constant sharing and common
    subexpression elimination merge them back. Values are unchanged; TensorRT sees the same
    quantization. Returns the number of pairs added.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer, consumers = _index(g)
    nodes: list[onnx.NodeProto] = []
    extra: list[onnx.TensorProto] = []
    made = 0
    for dq in list(g.node):
        nodes.append(dq)
        q = producer.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or len(q.input) < 3 or q.input[1] not in inits \
                or q.input[2] not in inits:
            continue
        for k, user in enumerate(consumers.get(dq.output[0], [])[1:], 1):
            names = []
            for src in (q.input[1], q.input[2]):
                t = onnx.TensorProto()
                t.CopyFrom(inits[src])
                t.name = f"{src}_c{k}"
                extra.append(t)
                names.append(t.name)
            q2 = onnx.helper.make_node("QuantizeLinear", [q.input[0], *names], [f"{q.output[0]}_c{k}"], name=f"{q.name}_c{k}")
            d2 = onnx.helper.make_node("DequantizeLinear", [q2.output[0], *names], [f"{dq.output[0]}_c{k}"],
                                       name=f"{dq.name}_c{k}")
            q2.attribute.extend(q.attribute)
            d2.attribute.extend(dq.attribute)
            nodes += [q2, d2]
            for j, name in enumerate(user.input):
                if name == dq.output[0]:
                    user.input[j] = d2.output[0]
            made += 1
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(extra)
    return made


def settle_output_qdq(model: onnx.ModelProto) -> tuple[int, int]:
    """Keep a Conv output's Q/DQ pair only where it costs no accuracy; returns (aligned, dropped).

    ONNX Runtime's quantizer quantizes every Conv output (its CPU kernels need DQ -> Conv -> Q to
    fuse QLinearConv). Where the output reaches, through ReLU / MaxPool only, Q nodes that share
    one scale, the pair takes that scale: the second rounding is then exact (values below -max,
    which the pair clips, are zeroed by the ReLU anyway) and the Conv still fuses. Elsewhere (the
    residual branch before its Add, the decoder output feeding bilinear upsampling, and above all
    the last conv whose output the fp32 feature projection reads) the pair is removed and the
    consumers read the fp32 output: that is TensorRT's recommended placement (Q/DQ on the inputs
    of quantized ops) and, measured on the demo model, it cuts the feature error ~7x.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer, consumers = _index(g)
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    aligned, drop = 0, set()
    for q in g.node:
        conv = producer.get(q.input[0]) if q.op_type == "QuantizeLinear" else None
        if conv is None or conv.op_type != "Conv":
            continue
        dqs = consumers.get(q.output[0], [])
        if len(dqs) != 1 or dqs[0].op_type != "DequantizeLinear":
            continue
        t = dqs[0].output[0]
        while len(users := consumers.get(t, [])) == 1 and users[0].op_type in ("Relu", "MaxPool"):
            t = users[0].output[0]
        users = consumers.get(t, [])
        ends_in_q = t != dqs[0].output[0] and users and all(
            u.op_type == "QuantizeLinear" and u.input[1] in inits for u in users)
        scales = {float(numpy_helper.to_array(inits[u.input[1]])) for u in users} if ends_in_q else set()
        own_scale = q.input[1] in inits and dqs[0].input[1] == q.input[1] and uses.get(q.input[1], 0) == 2
        if len(scales) == 1 and own_scale:
            old = inits[q.input[1]]
            old.CopyFrom(numpy_helper.from_array(
                np.array(scales.pop(), dtype=numpy_helper.to_array(old).dtype), old.name))
            aligned += 1
            continue
        for u in consumers.get(dqs[0].output[0], []):
            for j, name in enumerate(u.input):
                if name == dqs[0].output[0]:
                    u.input[j] = q.input[0]
        drop.update((q.name, dqs[0].name))
    keep = [n for n in g.node if n.name not in drop]
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    kept_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    return aligned, len(drop) // 2


@dataclass
class QdqSummary:
    quantize: int                          # QuantizeLinear nodes
    dequantize: int                        # DequantizeLinear nodes
    nonzero_zero_points: list[str]         # Q/DQ nodes whose zero point is not all 0 (must be empty)
    head_qdq: list[str]                    # head nodes touching Q/DQ (must be empty)
    quantized_convs: int                   # Conv nodes whose weight comes through a DequantizeLinear
    head_ops: dict[str, int]               # op type -> count of the fp32 head

    @property
    def ok(self) -> bool:
        return not self.nonzero_zero_points and not self.head_qdq and self.quantized_convs > 0


def inspect_qdq(model: onnx.ModelProto) -> QdqSummary:
    """Zero points, head precision and quantized convs of a Q/DQ graph (the TensorRT contract)."""
    g = model.graph
    producer, consumers = _index(g)
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    bad = []
    qs = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    for n in qs:
        if len(n.input) < 3 or not n.input[2]:
            continue  # no zero point input = 0
        zp = _const(n.input[2], inits, consts)
        if zp is None or np.any(zp != 0):
            bad.append(n.name)
    parts = find_parts(model)
    head = set(parts.head)
    head_qdq = []
    for n in g.node:
        if n.name not in head:
            continue
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            head_qdq.append(n.name)
            continue
        if any((p := producer.get(i)) is not None and p.op_type == "DequantizeLinear" for i in n.input):
            head_qdq.append(n.name)
    proj = next(n for n in g.node if n.name == parts.projection)
    if any((p := producer.get(i)) is not None and p.op_type == "DequantizeLinear" for i in proj.input[1:]):
        head_qdq.append(proj.name)  # the projection's weights must stay fp32 too
    convs = sum(1 for n in g.node if n.op_type == "Conv" and len(n.input) > 1
                and (p := producer.get(n.input[1])) is not None and p.op_type == "DequantizeLinear")
    ops: dict[str, int] = {}
    for n in g.node:
        if n.name in head and n.op_type in HEAD_OPS:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return QdqSummary(sum(n.op_type == "QuantizeLinear" for n in qs), sum(n.op_type == "DequantizeLinear" for n in qs),
                      bad, head_qdq, convs, ops)


def _const(name: str, inits, consts) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    if name in consts:
        for a in consts[name].attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    return None
