"""Triton Inference Server model repository: the folders and ``config.pbtxt`` novum writes.

One folder per model, as Triton expects::

    <repository>/<name>/config.pbtxt
    <repository>/<name>/labels.txt      class names, one per line, in ``scores`` order
    <repository>/<name>/1/model.onnx    platform "onnxruntime_onnx"  (production container)
    <repository>/<name>/1/model.plan    platform "tensorrt_plan"     (production container, GPU)
    <repository>/<name>/1/model.py      backend "python" + the model file (novum-serve's variant)

Every config has the exported I/O (input ``images`` TYPE_UINT8 [H, W, 3] after the batch axis;
the outputs with their dtypes and static dims), ``max_batch_size``, dynamic batching, an
instance group, ``label_filename`` on ``scores`` (Triton's classification extension then answers
``class_count=k`` requests with labelled top-k) and the model config as the parameter
``novum_config`` (the same JSON as the ONNX ``metadata_props``), which is how a client learns
the classes and input size from the server alone. Torch-free: callers describe the model
(:class:`ModelSpec`) from the ONNX file (export) or from the loaded runtime backend (serve).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from novum.contracts.onnx_file import onnx_files
from novum.contracts.sidecar import sidecar_path
from novum.errors import InputError

TRITON_DTYPES = {"uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                 "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64", "bool": "TYPE_BOOL"}
KINDS = {"auto": "KIND_AUTO", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}
# Triton's default model file names per platform
MODEL_FILES = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}
LABELS = "labels.txt"
SCORES = "scores"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as Triton sees it: name, numpy dtype name, dims after the batch axis."""

    name: str
    dtype: str
    dims: tuple[int, ...]


@dataclass
class ModelSpec:
    """What a config needs to know about a model file."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    novum_config: dict                       # the ModelConfig JSON (classes, input_size, ...)
    precision: str = "fp32"

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.novum_config["classes"]]


@dataclass
class RepoOptions:
    """``max_batch``: Triton's max_batch_size (the export's batch range). ``kind``: auto | cpu | gpu.
    ``queue_delay_us``: how long the dynamic batcher waits for more requests to fill a batch."""

    max_batch: int = 8
    instances: int = 1
    kind: str = "auto"
    queue_delay_us: int = 1000
    parameters: dict[str, str] = field(default_factory=dict)   # extra string parameters


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InputError(f"'{name}': not a usable Triton model name (letters, digits, '_', '.', '-'; at most 128)")
    return name


def config_text(name: str, spec: ModelSpec, opts: RepoOptions, *, platform: str | None = None,
                backend: str | None = None, comment: str = "") -> str:
    """The ``config.pbtxt`` text (protobuf text format of Triton's ``ModelConfig``)."""
    if (platform is None) == (backend is None):
        raise ValueError("give exactly one of platform and backend")
    if opts.max_batch < 1 or opts.instances < 1 or opts.queue_delay_us < 0:
        raise InputError(f"Triton config: max batch {opts.max_batch} and instances {opts.instances} must be >= 1, "
                         f"queue delay {opts.queue_delay_us} us >= 0")
    if opts.kind not in KINDS:
        raise InputError(f"instance kind '{opts.kind}': use one of {', '.join(KINDS)}")
    lines = [f"# {comment}"] if comment else []
    lines += [f"name: {_q(check_name(name))}",
              f"platform: {_q(platform)}" if platform else f"backend: {_q(backend)}",
              f"max_batch_size: {int(opts.max_batch)}",
              "input [", ",\n".join(_tensor(t) for t in spec.inputs), "]",
              "output [", ",\n".join(_tensor(t, LABELS if t.name == SCORES else None) for t in spec.outputs), "]",
              "dynamic_batching {", f"  max_queue_delay_microseconds: {int(opts.queue_delay_us)}", "}",
              "instance_group [", f"  {{ count: {int(opts.instances)} kind: {KINDS[opts.kind]} }}", "]"]
    params = {"novum_config": json.dumps(spec.novum_config, separators=(",", ":")), "novum_precision": spec.precision,
              **opts.parameters}
    lines += ["parameters [", ",\n".join(f"  {{ key: {_q(k)} value: {{ string_value: {_q(v)} }} }}"
                                          for k, v in params.items()), "]"]
    return "\n".join(lines) + "\n"


def labels_text(spec: ModelSpec) -> str:
    for c in spec.classes:
        if not c or "\n" in c or "\r" in c:
            raise InputError(f"class name {c!r} cannot go into a Triton labels file (empty or multi-line); "
                             f"rename the class and re-export")
    return "".join(c + "\n" for c in spec.classes)


def write_model(repository: str | Path, name: str, model: str | Path, spec: ModelSpec, opts: RepoOptions, *,
                platform: str | None = None, backend: str | None = None, model_file: str | None = None,
                extra_files: dict[str, str] | None = None, comment: str = "") -> Path:
    """Write ``<repository>/<name>/`` (config, labels, ``1/<model_file>`` + what travels with it,
    ``extra_files`` {name: text} into ``1/``) atomically: a staged folder replaces the old one."""
    repository, model = Path(repository), Path(model)
    check_name(name)
    model_file = model_file or MODEL_FILES.get(platform or "", model.name)
    _check_io(name, spec)
    text = config_text(name, spec, opts, platform=platform, backend=backend, comment=comment)
    labels = labels_text(spec)
    try:
        repository.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repository))
    except OSError as e:
        raise InputError(f"{repository}: cannot write the model repository ({e.strerror}); pass a writable folder") from None
    try:
        version = stage / "1"
        version.mkdir()
        shutil.copyfile(model, version / model_file)
        for src, fname in _travelling_files(model, model_file):
            shutil.copyfile(src, version / fname)
        for fname, body in (extra_files or {}).items():
            (version / fname).write_text(body)
        (stage / LABELS).write_text(labels)
        (stage / "config.pbtxt").write_text(text)
        _replace_dir(stage, repository / name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return repository / name


def _travelling_files(model: Path, model_file: str) -> list[tuple[Path, str]]:
    """(file, name in the version folder) of what travels with a model: an ONNX file's external
    data (same names: the graph refers to them) or an engine's sidecar (``<model_file>.json``)."""
    if model.suffix.lower() == ".onnx":
        return [(f, f.name) for f in onnx_files(model)[1:]]
    side = sidecar_path(model)
    return [(side, model_file + ".json")] if side.is_file() else []


def _check_io(name: str, spec: ModelSpec) -> None:
    for t in spec.inputs + spec.outputs:
        if t.dtype not in TRITON_DTYPES:
            raise InputError(f"{name}: tensor {t.name} has dtype {t.dtype}, which novum does not map to a Triton type")
        if any(not isinstance(d, int) or d <= 0 for d in t.dims):
            raise InputError(f"{name}: tensor {t.name} has dims {list(t.dims)} after the batch axis; Triton needs them "
                             f"static (re-export with novum-export)")
    if SCORES not in [t.name for t in spec.outputs]:
        raise InputError(f"{name}: no '{SCORES}' output; not a novum classification model")


def _replace_dir(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _tensor(t: TensorSpec, label_file: str | None = None) -> str:
    dims = ", ".join(str(int(d)) for d in t.dims)
    label = f" label_filename: {_q(label_file)}" if label_file else ""
    return f"  {{ name: {_q(t.name)} data_type: {TRITON_DTYPES[t.dtype]} dims: [ {dims} ]{label} }}"


def _q(s: str) -> str:
    """A protobuf text-format string literal (ASCII; JSON is made ASCII with ensure_ascii)."""
    s = str(s)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
