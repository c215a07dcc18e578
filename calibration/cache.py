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


def load(path: str | Path, key: str) -> CacheEntry | None:
    """The entry at ``path`` if its key is ``key``; None if absent, stale or unreadable."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
        if d.get("key") != key or "tensors" not in d:
            return None
        return CacheEntry(d["key"], d["method"], list(d["samples"]), d["tensors"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(path: str | Path, entry: CacheEntry) -> Path:
    p = Path(path)
    text = json.dumps({"key": entry.key, "method": entry.method, "samples": entry.samples,
                       "tensors": entry.tensors})
    atomic_write_text(p, text)
    return p
