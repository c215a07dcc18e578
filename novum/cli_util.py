"""Shared CLI plumbing: one-line errors, non-zero exits, Ctrl-C, missing extras, a missing OpenCV."""
from __future__ import annotations

import sys
from typing import Callable

from novum.errors import NovumError
from novum.extras import missing_extra_message


def run_cli(fn: Callable[[], int | None]) -> int:
    """Run a CLI body: NovumError -> 'error: <one line>' on stderr and exit 2; a missing optional
    dependency (torch, ONNX Runtime, ...) or an OpenCV that cannot be imported -> the same, naming
    the extra; Ctrl-C -> exit 130."""
    try:
        return int(fn() or 0)
    except NovumError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        msg = import_error_message(e)
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def import_error_message(err: ImportError) -> str | None:
    """The one line for a missing extra or a cv2 that cannot be imported; None for anything else
    (a broken in-tree module must stay a real error)."""
    if from_cv2(err):
        from novum.opencv import missing_message

        return missing_message(err)
    return missing_extra_message(err) if isinstance(err, ModuleNotFoundError) else None


def from_cv2(err: ImportError) -> bool:
    """Was it ``import cv2`` that failed (no OpenCV, or one whose libraries are missing: libGL, NumPy 1.x)?"""
    if err.name == "cv2":
        return True
    if "cv2" in sys.modules:        # cv2 imported fine: the error is another module's
        return False
    try:
        import cv2  # noqa: F401  (a failed import leaves nothing behind: this fails the same way again)
    except ImportError:
        return True
    return False
