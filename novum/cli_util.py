"""Shared CLI plumbing: one-line errors, non-zero exits, Ctrl-C, missing extras, a missing OpenCV.

Ctrl-C (SIGINT) and SIGTERM, while a CLI body runs under :func:`run_cli`:

- the first one either raises ``KeyboardInterrupt`` (exit 130 after the ``finally`` blocks ran), or,
  while a long-running stage registered a graceful stop (:func:`graceful_interrupt`, e.g. the
  novum-run pipeline), calls that stop instead of raising, so nothing is interrupted mid-write;
- every later one is ignored (a note is printed once) until the program has closed its outputs:
  a second Ctrl-C can no longer abort the cleanup that makes the outputs valid.

A signal the process ignores (a background job of a script, ``nohup``) stays ignored, as Unix
programs do. Without :func:`run_cli` (novum used as a library), :func:`graceful_interrupt` still
turns a Ctrl-C into the stop while its block runs (main thread, Python-level handlers only).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from novum.errors import NovumError
from novum.extras import missing_extra_message

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Interrupts:
    def __init__(self) -> None:
        self.count = 0
        self.graceful: Callable[[], None] | None = None

    def handler(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 1:
            if self.count == 2:   # os.write: print() is not reentrant inside a signal handler
                os.write(2, b"\ninterrupt received again: still closing the outputs cleanly, please wait\n")
            return
        if self.graceful is not None:
            self.graceful()
            return
        raise KeyboardInterrupt


_state: _Interrupts | None = None


@contextlib.contextmanager
def handle_interrupts() -> Iterator[None]:
    """Install the handler above (main thread only; restored afterwards)."""
    global _state
    if threading.current_thread() is not threading.main_thread() or _state is not None:
        yield
        return
    _state = _Interrupts()
    previous = {s: signal.signal(s, _state.handler) for s in _SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        # once interrupted, the program is on its way out: a late Ctrl-C must not raise at top level
        for s, h in previous.items():
            signal.signal(s, signal.SIG_IGN if _state.count else h)
        _state = None


@contextlib.contextmanager
def graceful_interrupt(stop: Callable[[], None]) -> Iterator[None]:
    """While the block runs, Ctrl-C / SIGTERM call ``stop()`` instead of raising KeyboardInterrupt.

    Under :func:`run_cli`, its handler does that (once; later signals are ignored). Without it
    (library use), the signals whose handler is Python code are taken over for the block on the
    main thread, then restored; ignored or default ones stay as they are."""
    st = _state
    if st is None:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, lambda signum, frame: stop())
                    for s in _SIGNALS if callable(signal.getsignal(s))}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        return
    if st.count:          # interrupted before the block started: stop at once
        stop()
    st.graceful = stop
    try:
        yield
    finally:
        st.graceful = None


def interrupted() -> bool:
    """Whether a Ctrl-C/SIGTERM has been received by the current :func:`run_cli`."""
    return bool(_state is not None and _state.count)


def run_cli(fn: Callable[[], int | None]) -> int:
    """Run a CLI body: NovumError -> 'error: <one line>' on stderr and exit 2; a missing optional
    dependency (torch, ONNX Runtime, ...) or an OpenCV that cannot be imported -> the same, naming
    the extra; Ctrl-C -> exit 130."""
    try:
        with handle_interrupts():
            try:
                return int(fn() or 0)
            except NovumError as e:
                if interrupted():
                    raise KeyboardInterrupt from None
                print(f"error: {e}", file=sys.stderr)
                return 2
            except ImportError as e:
                if interrupted():
                    raise KeyboardInterrupt from None
                msg = import_error_message(e)
                if msg is None:
                    raise
                print(f"error: {msg}", file=sys.stderr)
                return 2
            except Exception:
                # a Ctrl-C inside an extension module's import comes out as its ImportError (numpy, cv2):
                # after an interrupt, whatever broke is the interruption
                if interrupted():
                    raise KeyboardInterrupt from None
                raise
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
