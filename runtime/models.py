"""Which model file to run, and on what.

Decision for native checkpoints (``.safetensors``, upstream ``.pth``), e.g. the bundled demo model:
they are exported to ONNX once and cached, then run on ONNX Runtime, so a classification run
needs no torch after the first one (``--backend torch`` runs the checkpoint directly instead).
The cache lives in ``$NOVUM_CACHE`` or ``$XDG_CACHE_HOME/novum`` (default ``~/.cache/novum``),
under ``exports/<name>-<sha256 of the checkpoint, 12 hex>[-features].onnx``; a changed
checkpoint gets a new file. An ONNX model or a TensorRT engine is run as given.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from novum.errors import InputError
from novum.runtime.backends import backend_kind

NATIVE = {".safetensors", ".pth", ".pt"}


def cache_dir() -> Path:
    if os.environ.get("NOVUM_CACHE"):
        return Path(os.environ["NOVUM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "novum"


def default_model() -> Path:
    from novum.bundled import demo_model_path

    return demo_model_path()


def cached_onnx(checkpoint: Path, features: bool = False, quiet: bool = False) -> Path:
    """The ONNX export of ``checkpoint`` from the cache, exporting it on first use (needs torch once)."""
    from novum.io import sha256_file

    digest = sha256_file(checkpoint)[:12]
    folder = cache_dir() / "exports"
    out = folder / f"{checkpoint.stem}-{digest}{'-features' if features else ''}.onnx"
    if out.is_file():
        return out
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{folder}: cannot create the export cache ({e.strerror}); set NOVUM_CACHE to a writable "
                         f"folder or run with --backend torch") from None
    if not quiet:
        print(f"exporting {checkpoint.name} to ONNX once (cached at {out})", file=sys.stderr, flush=True)
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    export_onnx(load_model(checkpoint), out, features=features, source_sha256=sha256_file(checkpoint))
    return out


def resolve(model: str | Path | None, backend: str = "auto", features: bool = False,
            quiet: bool = False) -> tuple[Path, Path | None]:
    """(file to load, native checkpoint it came from or None) for ``--model`` / ``--backend``."""
    path = Path(model).expanduser() if model else default_model()
    kind = backend_kind(path)
    if not path.is_file():
        raise InputError(f"{path}: model not found")
    native = path if path.suffix.lower() in NATIVE else None
    if backend in ("auto", "onnxruntime") and native is not None:
        return cached_onnx(native, features, quiet), native
    if backend != "auto" and backend != kind:
        raise InputError(f"{path.name} is a {kind} model; --backend {backend} cannot run it "
                         f"(use --backend auto, or export it with novum-export)")
    return path, native
