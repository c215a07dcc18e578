"""A real X server for window tests (Xvfb), and screenshots of it without xwd or ImageMagick:
``Xvfb -fbdir`` keeps its screen in an XWD file, read here with numpy.

As a script it takes a screenshot of a command's window (how docs/images/novum-run-window.png
was made)::

    NOVUM_GUI_CV2=DIR python tests/xserver.py --out shot.png --after 4 -- novum-run --source demo --show

``DIR`` holds a GUI OpenCV (``pip install --target DIR --no-deps opencv-python``), put first on the
command's ``PYTHONPATH``; without it the command's own OpenCV is used.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class Xvfb:
    """``with Xvfb() as x:`` a private X display (``x.display``, e.g. ``:5``); ``x.grab()`` -> BGR screen."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        self.size = (width, height)
        self.display = ""
        self._dir = Path(tempfile.mkdtemp(prefix="novum-xvfb-"))
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "Xvfb":
        exe = shutil.which("Xvfb")
        if exe is None:
            raise RuntimeError("Xvfb is not installed (apt-get install xvfb)")
        w, h = self.size
        # -displayfd: Xvfb picks a free display number and writes it to stdout once it accepts clients
        self._proc = subprocess.Popen([exe, "-displayfd", "1", "-screen", "0", f"{w}x{h}x24", "-fbdir", str(self._dir),
                                       "-nolisten", "tcp", "-nocursor"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.__exit__()
            raise RuntimeError(f"Xvfb did not start (said {line!r})")
        self.display = f":{line}"
        return self

    def grab(self) -> np.ndarray:
        """The whole screen now, uint8 BGR [h, w, 3]."""
        data = (self._dir / "Xvfb_screen0").read_bytes()
        (header_size, _version, pixmap_format, _depth, width, height, _xoff, byte_order, _unit, _bit_order, _pad,
         bits_per_pixel, bytes_per_line, _vclass, red, green, blue, _bits_rgb, _cmap, ncolors) = \
            struct.unpack(">20I", data[:80])
        if (pixmap_format, bits_per_pixel, byte_order, red, green, blue) != (2, 32, 0, 0xFF0000, 0xFF00, 0xFF):
            raise RuntimeError("unexpected XWD layout (expected 32-bit little-endian ZPixmap, 8-bit RGB)")
        offset = header_size + 12 * ncolors       # the colour map (12 bytes an entry) precedes the pixels
        pixels = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=offset)
        return pixels.reshape(height, bytes_per_line // 4, 4)[:, :width, :3].copy()   # bytes B, G, R, pad

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def gui_env(display: str, gui_cv2: str | None) -> dict[str, str]:
    """The environment for a child that should use ``display`` and the GUI OpenCV in ``gui_cv2``."""
    env = dict(os.environ, DISPLAY=display)
    env.pop("WAYLAND_DISPLAY", None)
    if gui_cv2:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (gui_cv2, env.get("PYTHONPATH")) if p)
    return env


def window_box(screen: np.ndarray, background: int = 0) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of what differs from the empty (black) screen, or None."""
    ys, xs = np.nonzero((screen != background).any(axis=2))
    return None if len(ys) == 0 else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def main(argv: list[str] | None = None) -> int:
    import argparse

    import cv2

    p = argparse.ArgumentParser(description="screenshot of a command's window under Xvfb")
    p.add_argument("--out", required=True, help="PNG of the window (cropped to it)")
    p.add_argument("--after", type=float, default=4.0, help="seconds after the window first appears")
    p.add_argument("--size", type=int, nargs=2, default=(640, 480))
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    with Xvfb(*a.size) as x:
        proc = subprocess.Popen(cmd, env=gui_env(x.display, os.environ.get("NOVUM_GUI_CV2")))
        first = None
        shot = None
        while proc.poll() is None:
            screen = x.grab()
            if window_box(screen) is not None:
                first = first or time.monotonic()
                shot = screen
                if time.monotonic() - first >= a.after:
                    break
            time.sleep(0.05)
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
    if shot is None:
        print("no window appeared", file=sys.stderr)
        return 1
    x0, y0, x1, y1 = window_box(shot)
    cv2.imwrite(a.out, shot[y0:y1, x0:x1])
    print(f"{a.out}: window {x1 - x0}x{y1 - y0} at ({x0}, {y0})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
