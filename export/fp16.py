"""FP16 in the graph itself (TensorRT 11 builds strongly typed networks only).

Converted here, node by node (no ModelOpt; ONNX Runtime's float16 converter emitted duplicate\nCast outputs and unsorted graphs on this model). What runs in which precision:

- preprocessing (uint8 -> float, BGR -> RGB, mean/std): fp32 (cheap; exact pixel values);
- backbone convolutions, ReLU, pooling, resize, concat: fp16 weights and activations;
- the L2 normalisation: fp32 -- its sum of squares overflows fp16 once a feature's norm passes
  256 (256^2 > 65504) and ``x / inf`` then silently gives a zero vector;
- the matching head: with ``head="fp16"`` (default) each class block's MatMul against the fp16
  bank, the ``/2 + 0.5`` and the per-block max / argmax run in fp16 (unit vectors: no range
  issue; rounding ~2.4e-4 near 1); with ``head="fp32"`` the whole head stays fp32;
- the cross-block winner, the padding test and the score sums: fp32 (a sum over h*w pixels
  loses digits in fp16).

I/O types are kept (uint8 in; float32 / int32 out), so fp32 and fp16 files are drop-in swaps.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.shape_inference

from novum.contracts.onnx_file import (OnnxFileError, decode_metadata, load_onnx, read_raw_metadata, save_onnx, set_metadata,
                                       staging_dir)

HEAD_CHAIN_OPS = {"Div", "Add", "Mul", "Sub"}
# Inputs that stay float32 whatever the data type (Resize roi / scales).
FP32_SLOTS = {"Resize": {1, 2, 3}}


def convert_fp16(src: str | Path, dst: str | Path, *, head: str = "fp16") -> Path:
    """Write an fp16 copy of the fp32 novum ONNX ``src`` to ``dst`` (atomically); returns ``dst``."""
    if head not in ("fp16", "fp32"):
        raise ValueError(f"head must be 'fp16' or 'fp32', not {head!r}")
    src, dst = Path(src), Path(dst)
    meta = read_raw_metadata(src)
    decode_metadata(meta, src)   # a damaged or hostile record is refused, not copied into the fp16 file
    if meta.get("precision", "fp32") != "fp32":
        raise OnnxFileError(f"{src}: is already {meta.get('precision')}; convert the fp32 export")
    proto = load_onnx(src)
    constants_to_initializers(proto.graph)
    keep = fp32_nodes(proto, head=head)
    to_fp16(proto, {n.name for n in proto.graph.node} - keep)
    meta.update(precision="fp16", fp16_head=head)
    set_metadata(out := proto, meta)
    with staging_dir(dst.parent) as tmp:
        save_onnx(out, dst, tmp)
    return dst


def constants_to_initializers(g: onnx.GraphProto) -> None:
    """Turn ``Constant`` nodes holding a tensor into initializers (one place to retype them)."""
    keep = []
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            g.initializer.append(t)
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)


def to_fp16(proto: onnx.ModelProto, low: set[str]) -> None:
    """Run the nodes named in ``low`` in fp16: their float initializers become fp16 copies, Cast
    nodes go between fp32 and fp16 regions (one per tensor and direction); graph I/O types stay."""
    g = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto)
    floats = {v.name for v in list(inferred.graph.value_info) + list(g.input) + list(g.output)
              if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    inits = {t.name: t for t in g.initializer}
    floats |= {n for n, t in inits.items() if t.data_type == onnx.TensorProto.FLOAT}
    half: set[str] = set()          # tensors that now hold fp16
    casts: dict[tuple[str, int], str] = {}
    new_nodes: list[onnx.NodeProto] = []

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}_to_{'fp16' if to == onnx.TensorProto.FLOAT16 else 'fp32'}"
            new_nodes.append(onnx.helper.make_node("Cast", [name], [out], to=to, name=f"novum_cast_{out}"))
            casts[key] = out
        return casts[key]

    def half_init(name: str) -> str:
        out = f"{name}_fp16"
        if out not in inits:
            t = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(inits[name]).astype(np.float16), out)
            g.initializer.append(t)
            inits[out] = t
        return out

    for n in g.node:
        is_low = n.name in low
        for i, name in enumerate(n.input):
            if not name or name not in floats or (n.op_type in FP32_SLOTS and i in FP32_SLOTS[n.op_type]):
                continue
            if is_low and name not in half:
                n.input[i] = half_init(name) if name in inits else cast(name, onnx.TensorProto.FLOAT16)
            elif not is_low and name in half:
                n.input[i] = cast(name, onnx.TensorProto.FLOAT)
        if is_low:
            if n.op_type == "Cast":
                for a in n.attribute:
                    if a.name == "to" and a.i == onnx.TensorProto.FLOAT:
                        a.i = onnx.TensorProto.FLOAT16
            half.update(o for o in n.output if o in floats)
        new_nodes.append(n)
    for o in g.output:  # keep I/O types: a half graph output is renamed and cast back
        if o.name in half:
            for n in new_nodes:
                n.output[:] = [f"{x}_fp16" if x == o.name else x for x in n.output]
                n.input[:] = [f"{x}_fp16" if x == o.name else x for x in n.input]
            new_nodes.append(onnx.helper.make_node("Cast", [f"{o.name}_fp16"], [o.name], to=onnx.TensorProto.FLOAT))
    del g.node[:]
    g.node.extend(new_nodes)
    used = {i for n in g.node for i in n.input}
    unused = [t for t in g.initializer if t.name not in used]
    for t in unused:
        g.initializer.remove(t)
    del g.value_info[:]
    topological_sort(g)


def fp32_nodes(proto: onnx.ModelProto, head: str = "fp16") -> set[str]:
    """Names of the nodes kept in fp32 (see the module docstring). Unnamed nodes get names."""
    g = proto.graph
    for i, n in enumerate(g.node):
        if not n.name:
            n.name = f"novum_node_{i}"
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    convs = [n for n in g.node if n.op_type == "Conv"]
    norms = [n for n in g.node if n.op_type == "ReduceL2"]
    if not convs or len(norms) != 1:
        raise OnnxFileError("not a novum graph (expected Conv layers and one ReduceL2 normalisation)")
    keep = _ancestors(convs[0].input[0], producer)                 # preprocessing
    feat = norms[0].input[0]                                       # last conv output (unnormalised)
    head_nodes = _descendants(feat, consumers)                     # normalisation + head
    keep |= head_nodes
    if head == "fp16":
        for n in g.node:
            if n.op_type == "MatMul" and n.name in head_nodes:
                keep -= _block_chain(n, consumers)
    return keep


def topological_sort(g: onnx.GraphProto) -> None:
    """Reorder ``g.node`` so every node follows its inputs' producers (the converter appends casts)."""
    known = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    nodes, done = list(g.node), []
    pending = nodes
    while pending:
        rest = []
        for n in pending:
            if all(i in known for i in n.input):
                done.append(n)
                known.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise OnnxFileError(f"fp16 conversion left a cycle or a dangling input at node {rest[0].name}")
        pending = rest
    del g.node[:]
    g.node.extend(done)


def _ancestors(tensor: str, producer) -> set[str]:
    out, stack = set(), [tensor]
    while stack:
        n = producer.get(stack.pop())
        if n is not None and n.name not in out:
            out.add(n.name)
            stack.extend(n.input)
    return out


def _descendants(tensor: str, consumers) -> set[str]:
    out, stack = set(), [tensor]
    while stack:
        for n in consumers.get(stack.pop(), []):
            if n.name not in out:
                out.add(n.name)
                stack.extend(n.output)
    return out


def _block_chain(matmul, consumers) -> set[str]:
    """A class block: MatMul -> elementwise (/2, +0.5) -> ReduceMax / ArgMax."""
    chain, t = {matmul.name}, matmul.output[0]
    while True:
        nxt = consumers.get(t, [])
        if len(nxt) == 1 and nxt[0].op_type in HEAD_CHAIN_OPS:
            chain.add(nxt[0].name)
            t = nxt[0].output[0]
            continue
        if nxt and all(n.op_type in ("ReduceMax", "ArgMax") for n in nxt):
            chain |= {n.name for n in nxt}
        return chain
