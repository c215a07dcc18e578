"""The deployed ONNX graph: uint8 BGR frames in, class scores and vertex matches out.

Graph = :func:`novum.model.preprocess_bgr` (cast, BGR->RGB, normalisation) -> backbone ->
:func:`novum.head.match` (block-wise: the [C*max_n x pixels] matrix never exists). Input
``images`` uint8 [B, H, W, 3] (dynamic B, static H, W); outputs ``scores`` f32 [B, C],
``vertex`` int32 [B, h, w], ``vertex_score`` f32 [B, h, w] and, with ``features=True``,
``features`` [B, D, h, w]. Names, ``metadata_props`` and file handling are the contract in
:mod:`novum.contracts.onnx_file`.

Exporters (``exporter=``):

- ``"dynamo"`` (default): ``torch.onnx.export(..., dynamo=True)``, torch's current exporter, at
  opset 18 (the lowest its ONNX function library writes). Its graph passes the same parity tests,
  TensorRT operator checks and INT8 recipe as the TorchScript one (``tests/test_export.py``,
  ``tests/test_int8.py``). Two things are set on the way: the batch is a ``torch.export.Dim``, and
  the Shape node it reads from the uint8 input is moved after the input's Cast
  (:func:`shape_from_cast`: TensorRT takes a uint8 input only into a Cast). Slower: about 15 s of
  CPU for the small model where TorchScript takes under 1 s.
- ``"torchscript"``: the TorchScript exporter (``dynamo=False``), deprecated by torch, at opset 17:
  the graph novum wrote before, kept behind ``--exporter torchscript``.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator

import onnx
import torch
from torch import Tensor, nn

from novum.config import ModelConfig
from novum.contracts.onnx_file import (DEFAULT_EXPORTER, DEFAULT_MAX_BATCH, EXPORTERS, FEATURES_NAME, INPUT_NAME, OPSET,
                                       OUTPUT_NAMES, build_metadata, save_onnx, set_metadata, staging_dir)
from novum.errors import InputError
from novum.head import match, match_dense
from novum.model import preprocess_bgr

DEFAULT_OPSETS = {"dynamo": OPSET, "torchscript": 17}
DYNAMO_MIN_OPSET = 18


class ExportGraph(nn.Module):
    """uint8 BGR NHWC frames -> (scores, vertex, vertex_score[, features]), the deployed graph.

    ``dense=True`` swaps the block-wise head for the one-matrix reference head (benchmarks only).
    """

    def __init__(self, model: nn.Module, features: bool = False, dense: bool = False) -> None:
        super().__init__()
        self.config: ModelConfig = model.config
        self.backbone = model.backbone
        self.register_buffer("bank", model.volumes.bank.detach().clone().float())
        self.features = features
        self.dense = dense

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        c = self.config
        # Cast first: TensorRT takes uint8 only as network I/O feeding a Cast (not a Gather).
        # uint8 -> float32 is exact, so this is NovumModel.preprocess to the bit.
        x = preprocess_bgr(images.to(torch.float32), c.mean, c.std)
        f = self.backbone(x)
        head = match_dense if self.dense else match
        out = head(f, self.bank, c.n_list, c.max_n, None, c.stride)
        res = (out.scores, out.vertex, out.vertex_score)
        return res + (f,) if self.features else res


def export_onnx(model: nn.Module, path: str | Path, *, features: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
                opset: int | None = None, source_sha256: str | None = None, dense_head: bool = False,
                exporter: str = DEFAULT_EXPORTER) -> Path:
    """Export ``model`` (a NovumModel) to ``path``, atomically; returns the path.

    The batch axis is dynamic (``max_batch`` is recorded for engine profiles); H, W are the
    config's ``input_size``. ``opset`` defaults to the exporter's (:data:`DEFAULT_OPSETS`).
    ``dense_head`` exports the one-matrix head (benchmarks only).
    """
    opset = resolve_opset(exporter, opset)
    path = Path(path)
    config: ModelConfig = with_framing(model.config)
    H, W = config.input_size
    graph = ExportGraph(model, features=features, dense=dense_head).eval()
    # batch 2 even for max_batch 1: torch.export specialises a dimension whose example size is 1
    example = torch.zeros(2 if exporter == "dynamo" else min(2, max(1, max_batch)), H, W, 3, dtype=torch.uint8)
    outputs = list(OUTPUT_NAMES) + ([FEATURES_NAME] if features else [])
    meta = build_metadata(config, precision="fp32", opset=opset, features=features,
                          source_sha256=source_sha256, max_batch=max_batch, exporter=exporter)
    with staging_dir(path.parent) as tmp, torch.no_grad():
        if exporter == "dynamo":
            proto = _dynamo(graph, example, outputs, opset)
        else:
            proto = _torchscript(graph, example, outputs, opset, tmp / "raw.onnx")
        shapes = [tuple(t.shape) for t in graph(example)]
        set_static_output_dims(proto, dict(zip(outputs, shapes)))
        set_metadata(proto, meta)
        save_onnx(proto, path, tmp)
    return path


def with_framing(config: ModelConfig) -> ModelConfig:
    """``config`` with its training framing recorded (what novum-run --roi reproduces): kept if the
    checkpoint has it (novum-train records it), else measured on the synthetic generator's scenes."""
    if config.framing:
        return config
    import dataclasses

    from novum.data.framing import generator_framing

    return dataclasses.replace(config, framing=generator_framing(config))


def resolve_opset(exporter: str, opset: int | None) -> int:
    """The opset ``exporter`` writes for a requested ``opset`` (None: its default), or a one-line error."""
    if exporter not in EXPORTERS:
        raise InputError(f"--exporter {exporter}: unknown; choose {' or '.join(EXPORTERS)}")
    opset = DEFAULT_OPSETS[exporter] if opset is None else int(opset)
    if exporter == "dynamo" and opset < DYNAMO_MIN_OPSET:
        raise InputError(f"--opset {opset}: the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or newer; pass "
                         f"--opset {DYNAMO_MIN_OPSET}, or --exporter torchscript for opset {opset}")
    return opset


def _dynamo(graph: nn.Module, example: Tensor, outputs: list[str], opset: int) -> onnx.ModelProto:
    with _quiet_dynamo():
        program = torch.onnx.export(graph, (example,), None, input_names=[INPUT_NAME], output_names=outputs,
                                    dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1)}},
                                    opset_version=opset, dynamo=True, external_data=False, verbose=False)
    proto = program.model_proto
    shape_from_cast(proto)
    return proto


def _torchscript(graph: nn.Module, example: Tensor, outputs: list[str], opset: int, raw: Path) -> onnx.ModelProto:
    dynamic = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in outputs}}
    with warnings.catch_warnings():
        # tracing records the static H, W branches of the decoder's padding as constants: expected
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(graph, (example,), str(raw), input_names=[INPUT_NAME], output_names=outputs,
                          dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, dynamo=False)
    return onnx.load(str(raw))


@contextlib.contextmanager
def _quiet_dynamo() -> Iterator[None]:
    """The dynamo exporter's own noise, named: one FutureWarning raised inside torch.export, and
    log lines about the torchvision ops it cannot register (novum uses none of them)."""
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        registry.setLevel(level)


def set_static_output_dims(proto: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    """Declare every output dim after the batch as the static size it has (H, W are static; the
    TorchScript exporter leaves symbolic names like 'Reshapevertex_dim_1' on reshaped outputs)."""
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        for d, size in zip(list(dims)[1:], shapes[out.name][1:]):
            d.ClearField("dim_param")
            d.dim_value = int(size)


def shape_from_cast(proto: onnx.ModelProto) -> None:
    """TensorRT takes a uint8 network input only into a Cast: a Shape node reading the input (the
    dynamo exporter reads the batch size there) reads the Cast's output instead, placed after it."""
    g = proto.graph
    casts = [n for n in g.node if n.op_type == "Cast" and n.input[0] == INPUT_NAME]
    moved = [n for n in g.node if n.op_type == "Shape" and n.input[0] == INPUT_NAME]
    if not casts or not moved:
        return
    for n in moved:
        n.input[0] = casts[0].output[0]
    nodes = [n for n in g.node if n not in moved]
    at = nodes.index(casts[0]) + 1
    nodes[at:at] = moved                      # the graph stays topologically sorted
    del g.node[:]
    g.node.extend(nodes)
