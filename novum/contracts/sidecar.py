"""The JSON sidecar next to a TensorRT plan (``model.engine`` -> ``model.engine.json``).

A plan is tied to its TensorRT version and GPU architecture, and TensorRT has no preflight check:
a foreign plan fails deep inside deserialisation with "Version tag does not match" or
"Magic tag does not match". Loaders call :func:`check_sidecar` first and get one line naming
what differs and the command that rebuilds the engine. The plan itself stays a plain TensorRT
plan (trtexec and Polygraphy load it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from novum.config import CLASSES, INPUT_SIZE, MAX_CONFIG_JSON, MODEL_CONFIG
from novum.contracts.schema import Bool, Either, Int, JsonText, List, Map, Nullable, Obj, SchemaError, Str, load_json_file
from novum.errors import NovumError
from novum.gpu import version_tuple
from novum.io import atomic_write_text

SIDECAR_VERSION = 1
# Version-compatible plans run on later runtimes of the same major, and across these majors.
VC_MAJOR_HOPS = {(8, 10), (10, 11)}


class EngineMismatchError(NovumError):
    """The engine was built for another TensorRT version or GPU (or has no valid sidecar)."""


def sidecar_path(engine_path: str | Path) -> Path:
    return Path(str(engine_path) + ".json")


def write_sidecar(engine_path: str | Path, info: dict[str, Any]) -> Path:
    """Write ``info`` (what :func:`novum.export.tensorrt.sidecar_info` collects) atomically next to the plan."""
    path = sidecar_path(engine_path)
    atomic_write_text(path, json.dumps({"sidecar_version": SIDECAR_VERSION, **info}, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# the schema: what export.tensorrt.sidecar_info writes; unknown keys (a newer novum) are ignored

MAX_SIDECAR_BYTES = 4 << 20       # a sidecar is ~3 kB (upstream's config included)
REBUILD = "rebuild with novum-export --checkpoint <model> --engine"
_HEX64 = r"[0-9a-f]{64}"
_CONFIG = Either(MODEL_CONFIG, JsonText(MODEL_CONFIG, MAX_CONFIG_JSON),
                 what="the ModelConfig (an object, or its JSON text)")

SIDECAR = Obj({
    "sidecar_version": Int(1, SIDECAR_VERSION, what=f"a version this novum reads (1..{SIDECAR_VERSION})"),
    "tensorrt_version": Str(32, min_len=1, pattern=r"[0-9]+(\.[0-9A-Za-z]+)*", what="a TensorRT version such as 10.13.0.35"),
    "gpu_name": Str(256),
    "compute_capability": List(Int(0, 99), 2, 2, what="[major, minor], integers in [0, 99]"),
    "precision": Str(choices=("fp32", "fp16", "int8")),
    "strict_fp32": Bool(),
    "version_compatible": Bool(),
    "hardware_compatibility": Str(choices=("none", "ampere_plus", "same_compute_capability")),
    "profile": Map(List(List(Int(-1, 1 << 20), 8, min_len=1), 3, 3, what="[min, opt, max] shapes"), 16,
                   key=Str(256, min_len=1)),
    "onnx": Str(4096),
    "onnx_sha256": Str(64, pattern=_HEX64, what="a sha256 (64 hex digits)"),
    "source_sha256": Str(64, pattern=f"(|{_HEX64})", what="empty or a sha256 (64 hex digits)"),
    "classes": CLASSES,
    "input_size": INPUT_SIZE,
    "input_format": Nullable(Str(64)),
    "outputs": Nullable(List(Str(64, min_len=1), 8, min_len=1, unique=True)),
    "config": Nullable(_CONFIG),
    "novum_config": Nullable(_CONFIG),
    "novum_version": Nullable(Str(64)),
    "rebuild_command": Str(2048, min_len=1),
}, required=("sidecar_version", "tensorrt_version", "compute_capability"), checks=[lambda d: _agrees(d)])


def _agrees(side: dict[str, Any]) -> tuple[str, str] | None:
    cfg = side.get("config", side.get("novum_config"))
    if isinstance(cfg, str):
        cfg = json.loads(cfg)   # checked by the schema already
    if isinstance(cfg, dict):
        for key in ("classes", "input_size"):
            if key in side and key in cfg and list(side[key]) != list(cfg[key]):
                return key, f"disagrees with the sidecar's config ({key} {cfg[key] if key == 'input_size' else len(cfg[key])})"
    return None


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """The sidecar of ``engine_path``, checked against :data:`SIDECAR` (types, ranges, sizes): a
    missing, unreadable or wrong sidecar is one EngineMismatchError line naming the file and field."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EngineMismatchError(f"{engine_path}: no sidecar {path.name} next to the engine, so its TensorRT version "
                                  f"and GPU are unknown; {REBUILD}")
    try:
        side = load_json_file(path, SIDECAR, MAX_SIDECAR_BYTES, "sidecar", REBUILD)
    except SchemaError as e:
        raise EngineMismatchError(str(e)) from None
    return side


def check_sidecar(engine_path: str | Path, trt_version: str, gpu_name: str, compute_capability: tuple) -> dict[str, Any]:
    """The sidecar of ``engine_path`` if this TensorRT / GPU can run the plan; else EngineMismatchError.

    Rules: a plain plan needs the same TensorRT version and the same compute capability (another
    GPU model of the same architecture runs it; a ``warnings`` entry says so). A version-compatible
    plan runs on the same or a later TensorRT of the same major (or 8->10, 10->11). A
    hardware-compatible plan runs on any compute capability >= 8.0 (``ampere_plus``) or on the same
    capability (``same_compute_capability``).
    """
    side = read_sidecar(engine_path)
    rebuild = side.get("rebuild_command") or "novum-export --checkpoint <model> --engine"
    built_v = str(side.get("tensorrt_version", "?"))
    built_cc = tuple(int(v) for v in side.get("compute_capability", ()))
    cc = tuple(int(v) for v in compute_capability)
    here = f"this machine has TensorRT {trt_version} on {gpu_name} (sm_{_cc(cc)})"
    built = f"built with TensorRT {built_v} for {side.get('gpu_name', '?')} (sm_{_cc(built_cc)})"
    name = Path(engine_path).name

    if not _version_ok(built_v, trt_version, bool(side.get("version_compatible"))):
        raise EngineMismatchError(f"{name}: {built}, {here}; rebuild with {rebuild}")
    hw = side.get("hardware_compatibility") or "none"
    if hw == "ampere_plus":
        ok = cc >= (8, 0)
    else:
        ok = cc == built_cc
    if not ok:
        raise EngineMismatchError(f"{name}: {built}, {here}; rebuild with {rebuild}")
    warnings = []
    if hw == "none" and side.get("gpu_name") and side.get("gpu_name") != gpu_name:
        warnings.append(f"{name}: built on {side.get('gpu_name')}, running on {gpu_name} (same sm_{_cc(cc)}); "
                        f"tactics may be slower than a rebuild here")
    return {**side, "warnings": warnings}


def sidecar_config(side: dict[str, Any], engine_path: str | Path) -> dict[str, Any]:
    """The model config a sidecar carries (``config`` as a dict, or ``novum_config`` as JSON)."""
    cfg = side.get("config", side.get("novum_config"))
    if isinstance(cfg, str):
        cfg = json.loads(cfg)   # read_sidecar checked it
    if not isinstance(cfg, dict) or "classes" not in cfg or "input_size" not in cfg:
        raise NovumError(f"{engine_path}: the sidecar holds no model config (classes, input_size); rebuild with novum-export --engine")
    return cfg


def _version_ok(built: str, here: str, version_compatible: bool) -> bool:
    """Versions compare on the parts both report: the pip wheel of 10.3 says "10.3.0", JetPack's
    build of the same release "10.3.0.30" (the build number is left out when either lacks it)."""
    b, h = _parse(built), _parse(here)
    if len(b) < 3 or len(h) < 3:
        return built == here
    n = min(len(b), len(h), 4)
    b, h = b[:n], h[:n]
    if not version_compatible:
        return b == h
    if b[0] == h[0]:
        return h >= b
    return (b[0], h[0]) in VC_MAJOR_HOPS


def _parse(v: str) -> tuple[int, ...]:
    """"10.3.0.30" -> (10, 3, 0, 30); "10" -> (10, 0, 0)."""
    out = version_tuple(v)
    return out + (0,) * (3 - len(out)) if out else ()


def _cc(cc: tuple) -> str:
    return "".join(str(v) for v in cc) or "?"
