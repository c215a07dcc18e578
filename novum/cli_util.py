"""Shared CLI plumbing: one-line errors, non-zero exits, Ctrl-C."""
from __future__ import annotations

import sys
from typing import Callable

from novum.errors import NovumError


def run_cli(fn: Callable[[], int | None]) -> int:
    """Run a CLI body: NovumError -> 'error: <one line>' on stderr and exit 2; Ctrl-C -> exit 130."""
    try:
        return int(fn() or 0)
    except NovumError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
