"""``novum-export --triton DIR``: the exported files as a Triton model repository.

For the production container (``nvcr.io/nvidia/tritonserver:<yy.mm>-py3``): each ONNX file becomes
a model on platform ``onnxruntime_onnx`` named after the file (``demo``, ``demo_fp16``, ...), each
TensorRT engine a model on ``tensorrt_plan`` (``demo_fp16_trt``) with the I/O of the ONNX file it
was built from. Layout and config: :mod:`novum.contracts.triton_repository`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from novum.errors import InputError
from novum.contracts.triton_repository import ModelSpec, RepoOptions, TensorSpec, write_model

PLAN_SUFFIX = "_trt"


def spec_from_onnx(path: str | Path) -> ModelSpec:
    """Inputs and outputs as declared in the ONNX graph (batch axis dropped), plus its novum metadata."""
    import onnx

    from novum.contracts.onnx_file import read_metadata

    path = Path(path)
    meta = read_metadata(path)
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}

    def specs(values) -> list[TensorSpec]:
        out = []
        for v in values:
            if v.name in inits:
                continue
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            if not dims or dims[0] > 0:
                raise InputError(f"{path}: tensor {v.name} has no dynamic batch axis {dims}; Triton's batching needs "
                                 f"one (re-export with novum-export)")
            out.append(TensorSpec(v.name, str(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)), tuple(dims[1:])))
        return out

    return ModelSpec(specs(graph.input), specs(graph.output), meta["novum_config"], meta.get("precision", "fp32"))


def write_export_repository(out: str | Path, onnx_files: dict[str, Path], engines: dict[str, Path], *,
                            max_batch: int, instances: int = 1, queue_delay_us: int = 1000,
                            log: Callable[[str], None] = print) -> dict[str, Path]:
    """One model per exported file; returns {model name: folder}. Instances run on the GPU when
    engines were built (a GPU machine), else where Triton finds one (KIND_AUTO)."""
    from novum import __version__

    out = Path(out)
    written: dict[str, Path] = {}
    gpu = bool(engines)
    for prec, onnx_path in onnx_files.items():
        spec = spec_from_onnx(onnx_path)
        opts = RepoOptions(max_batch=max_batch, instances=instances, kind="gpu" if gpu else "auto",
                           queue_delay_us=queue_delay_us)
        name = onnx_path.stem
        written[name] = write_model(out, name, onnx_path, spec, opts, platform="onnxruntime_onnx",
                                    comment=f"novum {__version__}: {onnx_path.name} ({prec}) on ONNX Runtime")
        if prec in engines:
            eng = engines[prec]
            name = eng.stem + PLAN_SUFFIX
            opts = RepoOptions(max_batch=max_batch, instances=instances, kind="gpu", queue_delay_us=queue_delay_us)
            written[name] = write_model(out, name, eng, spec, opts, platform="tensorrt_plan",
                                        comment=f"novum {__version__}: {eng.name} ({prec}) on TensorRT, built from "
                                                f"{onnx_path.name}; the plan runs only where it was built (see "
                                                f"model.plan.json)")
    log(f"wrote Triton model repository {out}: {', '.join(written)}")
    return written
