"""The calibration cache: activation ranges saved as JSON next to the INT8 model.

The file holds ONNX Runtime's calibrator output (``TensorsData``: per tensor its range, plus the
histogram for entropy / percentile) under a key = sha256 of (fp32 model sha256, sample names and
pixels, method, recipe version). A later export with the same model, frames and method loads the
ranges instead of running calibration; anything else recomputes them and overwrites the file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novum.contracts.int8 import CALIB_METHODS
from novum.contracts.schema import Bool, Either, Int, List, Map, Num, Obj, SchemaError, Str, parse_json, read_text, validate
from novum.io import atomic_write_text

CACHE_VERSION = "1"


@dataclass
class CacheEntry:
    key: str
    method: str
    samples: list[str]
    tensors: dict[str, Any]      # ONNX Runtime's own calibration-cache JSON (save_tensors_data)


def cache_path(int8_path: str | Path) -> Path:
    """``model_int8.onnx`` -> ``model_int8.calib.json``."""
    p = Path(int8_path)
    return p.with_name(p.stem + ".calib.json")


def cache_key(model_sha256: str, samples: list[str], frames_sha256: str, method: str, recipe: str = "") -> str:
    payload = json.dumps({"v": CACHE_VERSION, "model": model_sha256, "samples": list(samples),
                          "frames": frames_sha256, "method": method, "recipe": recipe}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# the schema: our record around ONNX Runtime's TensorsData JSON (calibrate.save_tensors_data)

MAX_CACHE_BYTES = 64 << 20        # entropy caches hold 2048-bin histograms: ~50 kB per tensor
MAX_CACHE_TENSORS = 1 << 16       # calibrated tensors (a ResNet-50 novum model: ~70)
MAX_ARRAY = 1 << 16               # values in one array (histograms: 2048 bins)
METHODS = CALIB_METHODS
FIX = "delete it to calibrate again"
_F32 = 3.4e38
_DTYPE_MAX = {"float16": 65504.0, "float32": _F32, "float64": 1.7e308, "int32": 2 ** 31 - 1, "int64": 2 ** 63 - 1,
              "uint64": 2 ** 64 - 1}


def _array(dtypes: tuple[str, ...], max_len: int = MAX_ARRAY, min_len: int = 0) -> Obj:
    """numpy arrays as ONNX Runtime's CalibrationCacheEncoder writes them (a scalar or a flat list
    of ``min_len..max_len`` values)."""
    def in_range(d: dict) -> tuple[str, str] | None:
        top = _DTYPE_MAX[d["dtype"]]
        vals = d["data"] if isinstance(d["data"], list) else [d["data"]]
        if any(abs(v) > top for v in vals):
            return "data", f"holds values outside the range of {d['dtype']}"
        if d["dtype"].startswith(("int", "uint")) and any(isinstance(v, float) for v in vals):
            return "data", f"holds fractions in a {d['dtype']} array"
        return None
    return Obj({"CLS": Str(choices=("numpy.array",)), "dtype": Str(choices=dtypes),
                "data": Either(Num(), List(Num(), max_len, min_len))},
               required=("CLS", "dtype", "data"), unknown="reject", checks=[in_range], what=f"an array ({'/'.join(dtypes)})")


_FLOATS = Either(Num(-_F32, _F32), _array(("float32", "float16")))
# a range end, mean or deviation is one number per tensor (a 0-d array, or one value in a list)
_ONE_FLOAT = Either(Num(-_F32, _F32), _array(("float32", "float16"), 1, 1))
_COUNTS = Either(Int(0, 2 ** 63 - 1), _array(("int64", "int32", "uint64", "float32", "float64")))
_BINS = Either(Int(0, MAX_ARRAY), _array(("float32", "float16", "float64", "int64")))


def _low_high(d: dict) -> tuple[str, str] | None:
    lo, hi = (v if isinstance(v, (int, float)) else v["data"] for v in (d["lowest"], d["highest"]))
    lo, hi = (v[0] if isinstance(v, list) and len(v) == 1 else v for v in (lo, hi))
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
        return "lowest", f"{lo:g} is above highest {hi:g}"
    return None


TENSOR_DATA = Obj({"CLS": Str(choices=("TensorData",)), "lowest": _ONE_FLOAT, "highest": _ONE_FLOAT, "avg": _ONE_FLOAT,
                   "std": _ONE_FLOAT, "hist": _COUNTS, "hist_edges": _FLOATS, "bins": _BINS},
                  required=("lowest", "highest"), unknown="reject", checks=[_low_high])
TENSORS_DATA = Obj({
    "CLS": Str(choices=("TensorsData",)),
    "calibration_method": Either(
        Obj({"CLS": Str(choices=("CalibrationMethod",)),
             "value": Str(choices=tuple(f"CalibrationMethod.{m}" for m in ("MinMax", "Entropy", "Percentile", "Distribution")))},
            required=("CLS", "value"), unknown="reject"),
        Int(0, 3)),
    "data": Map(TENSOR_DATA, MAX_CACHE_TENSORS, key=Str(4096, min_len=1)),
    "smooth_quant": Bool(),
}, required=("CLS", "calibration_method", "data"), unknown="reject")
CACHE_FILE = Obj({
    "key": Str(64, pattern=r"[0-9a-f]{64}", what="a sha256 (64 hex digits)"),
    "method": Str(choices=METHODS),
    "samples": List(Str(4096), 1 << 20),
    "tensors": TENSORS_DATA,
}, required=("key", "method", "samples", "tensors"), unknown="reject")


def load(path: str | Path, key: str) -> CacheEntry | None:
    """The entry at ``path`` if its key is ``key``; None if absent, stale or unreadable (then the
    ranges are computed again and the file overwritten). A file with this ``key`` that breaks the
    schema (:data:`CACHE_FILE`: types, ranges, sizes) is one SchemaError line naming the field."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        d = parse_json(read_text(p, MAX_CACHE_BYTES, "calibration cache"), str(p))
    except SchemaError:   # too big, not UTF-8, not JSON: not our entry
        return None
    if not isinstance(d, dict) or d.get("key") != key:
        return None
    d = validate(CACHE_FILE, d, str(p), FIX)
    return CacheEntry(d["key"], d["method"], list(d["samples"]), d["tensors"])


def save(path: str | Path, entry: CacheEntry) -> Path:
    p = Path(path)
    text = json.dumps({"key": entry.key, "method": entry.method, "samples": entry.samples,
                       "tensors": entry.tensors})
    atomic_write_text(p, text)
    return p
