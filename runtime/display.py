"""Can ``novum-run`` open a window here? A child process is asked, never this one.

OpenCV's Qt build aborts the whole process (SIGABRT, which no ``try`` can catch) when
``cv2.namedWindow`` cannot reach the display that ``DISPLAY`` names: ssh without X forwarding, a
stale ``DISPLAY``. The headless build has no GUI at all. So before the first window, a short-lived
child process opens and closes one (:func:`probe`); whatever happens to it, this process lives on.
The answer is cached per process (per ``DISPLAY``/``WAYLAND_DISPLAY``), and the probe is
time-bounded (:data:`PROBE_TIMEOUT_S`: a display behind a dead network link may never answer).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from novum import opencv
from novum.errors import NovumError

WINDOW = "novum"
PROBE_TIMEOUT_S = 15.0
# one window without the Qt toolbar and status bar, sized to the first frame (pixels 1:1; the user may
# resize it). Not WINDOW_AUTOSIZE: with WINDOW_GUI_NORMAL, the Qt build then at times never paints the
# window (about 1 run in 4 under Xvfb on a loaded machine: mapped, the right size, and black).
WINDOW_FLAGS = ("WINDOW_NORMAL", "WINDOW_GUI_NORMAL")

# Run by ``python -c`` in the child: the same cv2 as this process (its folder goes first on sys.path).
PROBE_CODE = f"""\
import sys
sys.path.insert(0, sys.argv[1])
import cv2
cv2.namedWindow("novum-probe", {" | ".join("cv2." + f for f in WINDOW_FLAGS)})
cv2.waitKey(1)
cv2.destroyAllWindows()
cv2.waitKey(1)
print("window ok", flush=True)
"""


@dataclass(frozen=True)
class Display:
    """The probe's answer: ``ok``, else why not (``reason``) and what to do (``fix``), one phrase each."""

    ok: bool
    reason: str = ""
    fix: str = ""


_cache: dict[tuple[str | None, str | None], Display] = {}


def probe(timeout: float = PROBE_TIMEOUT_S) -> Display:
    """Whether a window can be opened here (cached per process and display)."""
    key = (os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY"))
    if key not in _cache:
        _cache[key] = _probe(key, timeout)
    return _cache[key]


def _probe(key: tuple[str | None, str | None], timeout: float) -> Display:
    if sys.platform.startswith("linux") and not any(key):
        return Display(False, "DISPLAY and WAYLAND_DISPLAY are unset",
                       "run it in a desktop session (or ssh -X)")
    if opencv.gui_backend() == "NONE":
        return Display(False, f"{opencv.describe()} has no GUI",
                       "pip uninstall -y opencv-python-headless && pip install opencv-python "
                       "(the [desktop] extra)")
    name = key[0] or key[1] or "the screen"
    fix = "check DISPLAY (ssh -X forwards one; unset it to run headless)"
    cmd = [sys.executable, "-c", PROBE_CODE, opencv.location()]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Display(False, f"display {name} did not answer within {timeout:g} s", fix)
    except OSError as e:
        return Display(False, f"the window probe could not start ({e})", fix)
    if r.returncode == 0 and "window ok" in r.stdout:
        return Display(True)
    died = (f"killed by {signal.Signals(-r.returncode).name}" if r.returncode < 0 and -r.returncode in
            signal.valid_signals() else f"exit status {r.returncode}")
    lines = [ln.strip() for ln in (r.stderr or "").splitlines() if ln.strip()]
    said = next((ln for ln in lines if "display" in ln.lower()), lines[-1] if lines else "")
    detail = f"{said[:160]}; " if said else ""
    return Display(False, f"cannot open a window on display {name} ({detail}the probe process: {died})", fix)


def open_window(width: int, height: int) -> None:
    """Create novum's window at ``width`` x ``height`` (call once, before the first ``imshow``, and only
    after :func:`probe`)."""
    cv2 = opencv.require()
    flags = 0
    for f in WINDOW_FLAGS:
        flags |= getattr(cv2, f)
    try:
        cv2.namedWindow(WINDOW, flags)
        cv2.resizeWindow(WINDOW, int(width), int(height))
    except cv2.error as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise NovumError(f"cannot open the window ({msg}); run with --no-show or --save out.mp4") from None


def close_window() -> None:
    cv2 = opencv.require()
    try:
        cv2.destroyAllWindows()
        cv2.waitKey(1)
    except cv2.error:
        pass
