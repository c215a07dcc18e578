"""The ONNX model file: I/O names, ``metadata_props``, external data, atomic placement (torch-free).

What every novum ONNX file promises (written by :mod:`novum.export.onnx`, read by the runtime,
calibration and the engine builder): input ``images`` uint8 [B, H, W, 3] BGR (dynamic B, static
H, W); outputs ``scores``, ``vertex``, ``vertex_score`` and optionally ``features``; everything a
loader needs in ``metadata_props`` (:func:`build_metadata` writes it, :func:`read_metadata`
decodes it, including the whole ModelConfig under ``novum_config``). Files with external data
(``.data`` next to the ``.onnx``) are handled everywhere: :func:`onnx_files`, :func:`onnx_sha256`,
:func:`copy_onnx`, :func:`save_onnx`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import onnx

from novum import __version__
from novum.config import CLASSES, FRAMING, INPUT_SIZE, MAX_CLASSES, MAX_CONFIG_JSON, MAX_VERTICES, MODEL_CONFIG_JSON, ModelConfig
from novum.contracts.schema import AnyJson, AsText, Int, IntText, JsonText, List, Nullable, Obj, SchemaError, Str, show, validate
from novum.errors import InputError, NovumError

# The opset novum writes by default: torch's dynamo exporter starts at 18 (its ONNX function
# library); TensorRT 10.x (JetPack 6: 10.3) and 11.x parse opsets 9 to 20; ONNX Runtime's static
# INT8 quantization needs <= 20. (The TorchScript exporter, behind --exporter torchscript, writes 17.)
OPSET = 18
EXPORTERS = ("dynamo", "torchscript")   # what made the file: metadata "exporter"
DEFAULT_EXPORTER = "dynamo"
INPUT_NAME = "images"
INPUT_FORMAT = "uint8 NHWC BGR"
OUTPUT_NAMES = ("scores", "vertex", "vertex_score")
FEATURES_NAME = "features"
DEFAULT_MAX_BATCH = 8


class OnnxFileError(NovumError):
    """An ONNX file could not be read or written."""


def build_metadata(config: ModelConfig, *, precision: str, opset: int, features: bool,
                   source_sha256: str | None, max_batch: int, exporter: str = "") -> dict[str, str]:
    """The ``metadata_props`` of an export (all values strings; JSON where structured)."""
    outputs = list(OUTPUT_NAMES) + ([FEATURES_NAME] if features else [])
    return {
        "novum_config": json.dumps(config.to_dict()),
        "classes": json.dumps(list(config.classes)),
        "input_name": INPUT_NAME,
        "input_format": INPUT_FORMAT,
        "input_size": json.dumps(list(config.input_size)),
        "precision": precision,
        "opset": str(opset),
        "exporter": exporter,
        "novum_version": str(__version__),
        "source_sha256": source_sha256 or "",
        "max_n": str(config.max_n),
        "n_list": json.dumps(list(config.n_list)),
        "outputs": json.dumps(outputs),
        "max_batch": str(max_batch),
        "stride": str(config.stride),
        "trained_input_size": json.dumps(list(config.trained_size)),
        "framing": json.dumps(config.framing),
    }


def set_metadata(proto: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Replace/add ``metadata_props`` entries in place."""
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    for p in keep:
        proto.metadata_props.add(key=p.key, value=p.value)
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=str(v))
    proto.producer_name = "novum"


def read_raw_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` as strings, without loading external weights (sizes checked, values not)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ONNX file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        props = [(p.key, p.value) for p in proto.metadata_props]
    except Exception as e:  # onnx raises DecodeError / google.protobuf errors, UnicodeDecodeError
        raise OnnxFileError(f"{path}: not a readable ONNX file ({_short(e)})") from None
    return check_props_size(props, path)


# ----------------------------------------------------------------------------------------------
# the metadata_props schema: what a novum export writes, checked wherever a file is opened

MAX_PROPS = 256                   # metadata_props entries (a novum export writes ~30)
MAX_PROP_KEY = 256                # characters of a key
MAX_PROP_VALUE = 1 << 20          # characters of one value (novum_config: ~2.3 kB upstream)
MAX_PROPS_TOTAL = 8 << 20         # characters of all values together
PRECISIONS = ("fp32", "fp16", "int8")
MAX_BATCH_LIMIT = 4096
_HEX64 = r"[0-9a-f]{64}"
_NAME = Str(4096)

METADATA = Obj({
    "novum_config": MODEL_CONFIG_JSON,
    "classes": JsonText(CLASSES, MAX_CONFIG_JSON),
    "input_name": Str(256, min_len=1),
    "input_format": Str(64),
    "input_size": JsonText(INPUT_SIZE, 256),
    "precision": Str(choices=PRECISIONS),
    "opset": IntText(1, 1000),
    "exporter": Str(choices=EXPORTERS + ("",)),       # "": a file written before the exporter was recorded
    "novum_version": Str(64),
    "source_sha256": Str(64, pattern=f"(|{_HEX64})", what="empty or a sha256 (64 hex digits)"),
    "max_n": IntText(1, MAX_VERTICES),
    "n_list": JsonText(List(Int(1, MAX_VERTICES), MAX_CLASSES, min_len=1), MAX_CONFIG_JSON),
    "outputs": JsonText(List(Str(choices=OUTPUT_NAMES + (FEATURES_NAME,)), 4, min_len=1, unique=True), 1024),
    "max_batch": IntText(1, MAX_BATCH_LIMIT),
    "stride": IntText(1, 64),
    "fp16_head": Str(choices=("fp16", "fp32")),
    # copies of config values, kept as text (readers use novum_config's)
    "trained_input_size": AsText(JsonText(INPUT_SIZE, 256)),
    "framing": AsText(JsonText(Nullable(FRAMING), 4096)),
    # novum.calibration's record of an INT8 model
    "int8_recipe": Str(1024),
    "calib_source": _NAME,
    "calib_kind": Str(64),
    "calib_method": Str(64),
    # the INT8 record stays text (as novum.calibration wrote it), checked all the same
    "calib_count": AsText(IntText(0, 1 << 24)),
    "calib_seed": AsText(IntText(-(1 << 63), 1 << 64)),
    "calib_samples": AsText(JsonText(List(_NAME, 1 << 16), MAX_PROP_VALUE)),
    "calib_sha256": Str(64, pattern=_HEX64, what="a sha256 (64 hex digits)"),
    "int8_quantized_convs": AsText(IntText(0, 1 << 20)),
    "int8_fp32_layers": AsText(JsonText(List(_NAME, 1 << 16), MAX_PROP_VALUE)),
    "fp32_sha256": Str(64, pattern=_HEX64, what="a sha256 (64 hex digits)"),
    "int8_gate": AsText(JsonText(AnyJson((dict,), "an object"), MAX_PROP_VALUE)),
    "int8_target": Str(choices=("onnxruntime", "tensorrt")),      # novum.contracts.int8.TARGETS
    "int8_activations": Str(choices=("int8", "uint8")),
    "int8_weight_bits": AsText(IntText(1, 16)),
    "int8_ort_fusion": AsText(JsonText(AnyJson((dict,), "an object"), MAX_PROP_VALUE)),
}, required=("novum_config",), checks=[lambda d: _agrees_with_config(d)], max_keys=MAX_PROPS)


def _agrees_with_config(d: dict[str, Any]) -> tuple[str, str] | None:
    """The copies of config values kept as their own keys (for tools that read one key) must agree."""
    cfg = {"stride": 8, **d["novum_config"]}
    for key in ("classes", "input_size", "n_list", "max_n", "stride"):
        if key in d and key in cfg and d[key] != cfg[key]:
            return key, f"{_show_short(d[key])} disagrees with novum_config ({_show_short(cfg[key])})"
    return None


def _show_short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def check_props_size(props: Any, where: Any) -> dict[str, str]:
    """``metadata_props`` as a dict after the size limits (entries, key and value lengths)."""
    items = list(props.items()) if isinstance(props, dict) else list(props)
    fix = "re-export it with novum-export"
    if len(items) > MAX_PROPS:
        raise SchemaError(f"{where}: {len(items)} metadata_props entries, more than the {MAX_PROPS} allowed; {fix}")
    total = 0
    for k, v in items:
        if len(k) > MAX_PROP_KEY:
            raise SchemaError(f"{where}: a metadata_props key of {len(k)} characters, more than {MAX_PROP_KEY}; {fix}")
        if len(v) > MAX_PROP_VALUE:
            raise SchemaError(f"{where}: metadata_props {show(k)} holds {len(v)} characters, more than the "
                              f"{MAX_PROP_VALUE} allowed; {fix}")
        total += len(v)
    if total > MAX_PROPS_TOTAL:
        raise SchemaError(f"{where}: metadata_props hold {total} characters, more than the {MAX_PROPS_TOTAL} allowed; {fix}")
    return dict(items)


def decode_metadata(props: Any, where: Any) -> dict[str, Any]:
    """Checked and decoded ``metadata_props`` (raw strings, e.g. from ONNX Runtime's
    ``custom_metadata_map``): JSON values parsed, numbers as ints, ``config`` = the ModelConfig.
    A file without ``novum_config`` is not a novum export; a wrong or hostile value is one
    SchemaError line naming the file and the key (:data:`METADATA`)."""
    raw = check_props_size(props, where)
    if "novum_config" not in raw:
        raise OnnxFileError(f"{where}: an ONNX file without novum metadata (no 'novum_config'): not a novum export; "
                            f"export it with novum-export")
    out = validate(METADATA, raw, str(where), "re-export it with novum-export")
    out["config"] = ModelConfig.from_dict(out["novum_config"], f"{where}: novum_config")
    return out


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Decoded metadata of a novum ONNX file (:func:`decode_metadata`)."""
    return decode_metadata(read_raw_metadata(path), path)


# ----------------------------------------------------------------------------------------------
# files: single-file or external data, atomic placement


def onnx_files(path: str | Path) -> list[Path]:
    """The ``.onnx`` file followed by the external-data files it references (if any)."""
    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    names: set[str] = set()
    for t in _all_initializers(proto):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for e in t.external_data:
                if e.key == "location":
                    names.add(e.value)
    return [path] + [path.parent / n for n in sorted(names)]


def onnx_sha256(path: str | Path) -> str:
    """sha256 of the model: the ``.onnx`` bytes, then each external-data file's, in order."""
    h = hashlib.sha256()
    for p in onnx_files(path):
        with open(p, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
    return h.hexdigest()


def copy_onnx(src: str | Path, dst: str | Path) -> Path:
    """Copy an ONNX file with its external data (same names next to ``dst``, data first)."""
    src, dst = Path(src), Path(dst)
    files = onnx_files(src)
    with staging_dir(dst.parent) as tmp:
        for f in files[1:]:
            shutil.copyfile(f, tmp / f.name)
        shutil.copyfile(files[0], tmp / dst.name)
        _place(tmp, dst, [f.name for f in files[1:]])
    return dst


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Load with external data (from next to ``path``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ONNX file not found")
    try:
        return onnx.load(str(path), load_external_data=True)
    except Exception as e:
        raise OnnxFileError(f"{path}: not a readable ONNX file ({_short(e)})") from None


def save_onnx(proto: onnx.ModelProto, path: Path, tmp: Path) -> None:
    """Write ``proto`` into staging dir ``tmp`` (external data above 2 GB) and move it onto ``path``."""
    big = proto.ByteSize() > 2_000_000_000 if _serialisable(proto) else True
    data_name = path.name + ".data"
    staged = tmp / path.name
    if big:
        onnx.save_model(proto, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name)
        _place(tmp, path, [data_name])
    else:
        onnx.save_model(proto, str(staged))
        stale = path.parent / data_name
        _place(tmp, path, [])
        with contextlib.suppress(FileNotFoundError):
            if stale.is_file() and data_name not in {f.name for f in onnx_files(path)[1:]}:
                stale.unlink()


@contextlib.contextmanager
def staging_dir(parent: str | Path) -> Iterator[Path]:
    """A temporary folder inside ``parent`` (same filesystem, so moves are renames), always removed."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".novum-export-", dir=parent))
    except OSError as e:
        raise InputError(f"{parent}: output folder is not writable ({e.strerror}); pass a writable --output-dir") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _place(tmp: Path, path: Path, data_names: list[str]) -> None:
    for n in data_names:  # data first: a visible .onnx always has its weights
        os.replace(tmp / n, path.parent / n)
    os.replace(tmp / path.name, path)


def _serialisable(proto: onnx.ModelProto) -> bool:
    try:
        proto.ByteSize()
        return True
    except Exception:
        return False


def _all_initializers(proto: onnx.ModelProto):
    def walk(g):
        yield from g.initializer
        for n in g.node:
            for a in n.attribute:
                if a.g is not None and a.HasField("g"):
                    yield from walk(a.g)
                for sg in a.graphs:
                    yield from walk(sg)
    yield from walk(proto.graph)


def _short(e: Any, n: int = 160) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= n else s[: n - 3] + "..."
