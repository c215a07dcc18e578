"""The deployed ONNX graph: uint8 BGR frames in, class scores and vertex matches out.

Graph = :func:`novum.model.preprocess_bgr` (cast, BGR->RGB, normalisation) -> backbone ->
:func:`novum.head.match` (block-wise: the [C*max_n x pixels] matrix never exists). Input
``images`` uint8 [B, H, W, 3] (dynamic B, static H, W); outputs ``scores`` f32 [B, C],
``vertex`` int32 [B, h, w], ``vertex_score`` f32 [B, h, w] and, with ``features=True``,
``features`` [B, D, h, w]. Names, ``metadata_props`` and file handling are the contract in
:mod:`novum.contracts.onnx_file`.

Exporter: the TorchScript exporter (``dynamo=False``) at :data:`OPSET`. Measured on the small
model and on ResNet-50 at 640x800 it gives a clean graph (no shape-computation subgraphs with
static H, W), writes one self-contained file below 2 GB, and is several times faster than the
dynamo exporter.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from novum.config import ModelConfig
from novum.contracts.onnx_file import (DEFAULT_MAX_BATCH, FEATURES_NAME, INPUT_NAME, OPSET, OUTPUT_NAMES, build_metadata,
                                       save_onnx, set_metadata, staging_dir)
from novum.head import match, match_dense
from novum.model import preprocess_bgr


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
                opset: int = OPSET, source_sha256: str | None = None, dense_head: bool = False) -> Path:
    """Export ``model`` (a NovumModel) to ``path``, atomically; returns the path.

    The batch axis is dynamic (``max_batch`` is recorded for engine profiles); H, W are the
    config's ``input_size``. ``dense_head`` exports the one-matrix head (benchmarks only).
    """
    path = Path(path)
    config: ModelConfig = with_framing(model.config)
    H, W = config.input_size
    graph = ExportGraph(model, features=features, dense=dense_head).eval()
    example = torch.zeros(min(2, max(1, max_batch)), H, W, 3, dtype=torch.uint8)
    outputs = list(OUTPUT_NAMES) + ([FEATURES_NAME] if features else [])
    dynamic = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in outputs}}
    meta = build_metadata(config, precision="fp32", opset=opset, features=features,
                          source_sha256=source_sha256, max_batch=max_batch)
    with staging_dir(path.parent) as tmp:
        raw = tmp / "raw.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (example,), str(raw), input_names=[INPUT_NAME], output_names=outputs,
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True,
                              dynamo=False)
            shapes = [tuple(t.shape) for t in graph(example)]
        proto = onnx.load(str(raw))
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


def set_static_output_dims(proto: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    """Declare every output dim after the batch as the static size it has (H, W are static; the
    TorchScript exporter leaves symbolic names like 'Reshapevertex_dim_1' on reshaped outputs)."""
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        for d, size in zip(list(dims)[1:], shapes[out.name][1:]):
            d.ClearField("dim_param")
            d.dim_value = int(size)
