"""The user cache folder: exported checkpoints, TensorRT timing caches.

``$NOVUM_CACHE`` if set, else ``$XDG_CACHE_HOME/novum``, else ``~/.cache/novum``.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The folder novum caches into (not created here)."""
    if os.environ.get("NOVUM_CACHE"):
        return Path(os.environ["NOVUM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "novum"
