"""What ONNX Runtime really runs: the int8 fusions in the graph it optimizes for the CPU.

ONNX Runtime rewrites a Q/DQ graph when it loads it: ``DQ -> Conv -> Q`` becomes ``QLinearConv``,
``DQ, DQ -> Add -> Q`` becomes ``QLinearAdd``, and so on; what it cannot fuse runs as fp32 ops
with Quantize/DequantizeLinear around them. :func:`ort_fusion` reads the graph it optimized
(``SessionOptions.optimized_model_filepath``, CPU provider) and reports, for the backbone (every
node upstream of the L2 normalisation):

- ``int8_convs``: QLinearConv (or ConvInteger) nodes;
- ``fp32_convs``: Conv / FusedConv / NchwcConv nodes, i.e. convolutions left in fp32;
- ``standalone``: Q/DQ pairs that run as such: a QuantizeLinear whose output is dequantized
  right away, or a DequantizeLinear straight into a QuantizeLinear;
- ``fp32_islands``: fp32 ops between int8 tensors (DequantizeLinear -> op(s) -> QuantizeLinear).
  ONNX Runtime 1.32 has int8 kernels for everything in a novum backbone but the bilinear Resize
  of the decoder: it drops the Q/DQ around a *nearest* Resize only, and its uint8 linear Resize
  truncates (half of the values 1 step low, measured), so that upsampling stays fp32 between a
  DequantizeLinear and a QuantizeLinear (:data:`UNAVOIDABLE_ISLANDS`).

The first QuantizeLinear (the fp32 preprocessing's output) and the DequantizeLinear nodes that
hand the features to the fp32 head are the int8 region's edges, neither standalone nor islands.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import onnx

INT8_CONV_OPS = ("QLinearConv", "ConvInteger")
FP32_CONV_OPS = ("Conv", "FusedConv", "NchwcConv")
UNAVOIDABLE_ISLANDS = ("Resize",)     # no int8 kernel for bilinear Resize in ONNX Runtime's CPU provider


@dataclass
class FusionReport:
    int8_convs: int
    fp32_convs: list[str]
    standalone: list[str]
    fp32_islands: list[str]                         # "Resize", ...: the fp32 ops of each island
    quantize: int                                   # QuantizeLinear nodes left in the optimized graph
    dequantize: int                                 # DequantizeLinear nodes left
    ops: dict[str, int] = field(default_factory=dict)
    # indices into standalone / fp32_islands of entries next to an fp32 conv (the price of keeping it fp32)
    near_fp32_conv: tuple[set[int], set[int]] = field(default_factory=lambda: (set(), set()))

    def problems(self, allowed_fp32: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Backbone convs left fp32 (but the ``allowed_fp32`` ones, kept so on purpose), standalone
        Q/DQ pairs, and fp32 islands of ops that have an int8 kernel."""
        out = [f"{n}: convolution left in fp32" for n in self.fp32_convs if n not in set(allowed_fp32)]
        pairs, islands = self.near_fp32_conv if not out else (set(), set())   # next to allowed fp32 convs
        out += [s for i, s in enumerate(self.standalone) if i not in pairs]
        out += [f"{ops}: fp32 between int8 tensors" for i, ops in enumerate(self.fp32_islands)
                if i not in islands and any(op not in UNAVOIDABLE_ISLANDS for op in ops.split(" -> "))]
        return out

    def ok(self, allowed_fp32: list[str] | tuple[str, ...] = ()) -> bool:
        return not self.problems(allowed_fp32)

    def summary(self) -> str:
        islands = Counter(self.fp32_islands)
        isl = ", ".join(f"{k} x{v}" for k, v in islands.items()) or "none"
        return (f"{self.int8_convs} int8 convolutions (QLinearConv), {len(self.fp32_convs)} fp32, "
                f"{len(self.standalone)} standalone Q/DQ pairs, fp32 between int8 tensors: {isl}; "
                f"{self.quantize} QuantizeLinear and {self.dequantize} DequantizeLinear left")

    def as_metadata(self) -> dict:
        return {"int8_convs": self.int8_convs, "fp32_convs": len(self.fp32_convs),
                "standalone_qdq": len(self.standalone), "fp32_islands": self.fp32_islands,
                "quantize": self.quantize, "dequantize": self.dequantize}


def optimized_graph(path: str | Path, out: str | Path | None = None) -> onnx.ModelProto:
    """The graph ONNX Runtime's CPU provider runs for the model at ``path`` (all optimizations on)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="novum-ort-opt-") as tmp:
        dst = Path(out) if out is not None else Path(tmp) / "optimized.onnx"
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 1
        so.optimized_model_filepath = str(dst)
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return onnx.load(str(dst))


def ort_fusion(path: str | Path) -> FusionReport:
    """:class:`FusionReport` of the model at ``path`` on ONNX Runtime CPU (see module doc); fp32
    convolutions are named as in the file (ONNX Runtime renames the nodes it rewrites)."""
    return fusion_of(optimized_graph(path), onnx.load(str(path), load_external_data=False))


def fusion_of(model: onnx.ModelProto, source: onnx.ModelProto | None = None) -> FusionReport:
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    norms = [n for n in g.node if n.op_type == "ReduceL2"]
    region: set[str] = set()
    if norms:
        stack = [norms[0].input[0]]
        while stack:
            n = producer.get(stack.pop())
            if n is None or id(n) in region:
                continue
            region.add(id(n))
            stack.extend(n.input)
    inside = [n for n in g.node if id(n) in region] if norms else list(g.node)
    near = _next_to_fp32_convs(inside, producer, consumers)
    standalone, islands, excused = [], [], (set(), set())
    for n in inside:
        if n.op_type == "QuantizeLinear" and any(u.op_type == "DequantizeLinear" for u in consumers.get(n.output[0], [])):
            standalone.append(f"{n.name or n.output[0]}: QuantizeLinear -> DequantizeLinear pair")
            if any(id(u) in near for d in consumers[n.output[0]] for u in consumers.get(d.output[0], [])) or \
                    id(producer.get(n.input[0])) in near:
                excused[0].add(len(standalone) - 1)
        if n.op_type == "DequantizeLinear":
            hit = _reaches_quantize(n, consumers, region)
            if hit is None:
                continue
            *ops, q = hit
            after = [u for d in consumers.get(q.output[0], []) for u in consumers.get(d.output[0], [])]
            if not ops:
                standalone.append(f"{n.name or n.output[0]}: DequantizeLinear -> QuantizeLinear pair")
            else:
                islands.append(" -> ".join(m.op_type for m in ops))
                if any(id(m) in near for m in ops + after):
                    excused[1].add(len(islands) - 1)
    ops = Counter(n.op_type for n in g.node)
    return FusionReport(sum(n.op_type in INT8_CONV_OPS for n in inside),
                        [_source_name(n, source) for n in inside if n.op_type in FP32_CONV_OPS],
                        standalone, islands, ops.get("QuantizeLinear", 0), ops.get("DequantizeLinear", 0), dict(ops),
                        excused)


def _next_to_fp32_convs(nodes, producer, consumers) -> set[int]:
    """ids of the fp32 ops connected to an fp32 conv through fp32 ops only (its fp32 region)."""
    def fp32(n) -> bool:
        return n.op_type not in ("QuantizeLinear", "DequantizeLinear") and not n.op_type.startswith("QLinear") \
            and n.op_type not in INT8_CONV_OPS

    inside = {id(n) for n in nodes}
    out: set[int] = set()
    stack = [n for n in nodes if n.op_type in FP32_CONV_OPS]
    while stack:
        n = stack.pop()
        if id(n) in out or id(n) not in inside or not fp32(n):
            continue
        out.add(id(n))
        stack += [producer[i] for i in n.input if i in producer]
        stack += [u for o in n.output for u in consumers.get(o, [])]
    return out


def _reaches_quantize(dq: onnx.NodeProto, consumers, region: set[int]) -> list[onnx.NodeProto] | None:
    """The fp32 ops from ``dq`` to a QuantizeLinear inside the backbone, that Q last, if there is such a path."""
    stack = [(u, [u]) for u in consumers.get(dq.output[0], [])]
    seen: set[int] = set()
    while stack:
        n, path = stack.pop()
        if id(n) in seen or id(n) not in region:
            continue
        seen.add(id(n))
        if n.op_type == "QuantizeLinear":
            return path
        if n.op_type.startswith("QLinear") or n.op_type in INT8_CONV_OPS:
            continue
        stack.extend((u, path + [u]) for o in n.output for u in consumers.get(o, []))
    return None


def _source_name(n: onnx.NodeProto, source: onnx.ModelProto | None) -> str:
    """The name of the file's Conv that became ``n``: ONNX Runtime names a rewritten node after the
    node it replaced or after its output tensor, with a suffix (``_token_8``, ``_nchwc``, ...)."""
    cands = [_base(c) for c in (n.name, *n.output) if c]
    if source is not None:
        names = {m.name for m in source.graph.node}
        by_output = {o: m.name for m in source.graph.node for o in m.output}
        for c in cands:
            if c in names:
                return c
            if c in by_output:
                return by_output[c]
    return cands[0] if cands else n.op_type


def _base(name: str) -> str:
    for suffix in ("_token", "_fused", "_nchwc"):
        if suffix in name:
            return name.split(suffix)[0]
    return name
