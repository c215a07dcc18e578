"""Shared CLI plumbing: one-line errors, non-zero exits, Ctrl-C, missing extras."""
from __future__ import annotations

import sys
from typing import Callable

from novum.errors import NovumError
from novum.extras import missing_extra_message


def run_cli(fn: Callable[[], int | None]) -> int:
    """Run a CLI body: NovumError -> 'error: <one line>' on stderr and exit 2; a missing optional
    dependency (torch, ONNX Runtime, ...) -> the same, naming the extra; Ctrl-C -> exit 130."""
    try:
        return int(fn() or 0)
    except NovumError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        msg = missing_extra_message(e)
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
