"""What the benchmarks here share: writing OUT.md (the table as printed) and OUT.json (the numbers).

Imported by the scripts next to it (``python benchmarks/x.py`` puts this folder on ``sys.path``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(out: str | Path, text: str, data: dict[str, Any]) -> None:
    """OUT.md and OUT.json, each written to a temporary file and renamed."""
    from novum.io import atomic_write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".md"), text)
    atomic_write_text(out.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
