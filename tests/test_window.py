"""The window for real: OpenCV's Qt build (opencv-python, the [desktop] extra) in child processes.

- With a set but unreachable DISPLAY the Qt build aborts any process that opens a window; novum-run
  must live on and run headless.
- Under Xvfb (a real X server), novum-run --show draws the annotated frames: the screen is read back
  and the overlay's pixels are found in the window.

The Qt build must not replace this environment's OpenCV, so it lives in a folder of its own
(``pip install --target DIR --no-deps opencv-python``) named by NOVUM_TEST_GUI_CV2 and put first on
the children's PYTHONPATH; .ci/run prepares it and installs Xvfb.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakes.runtime_assets import read_video, small_onnx
from xserver import Xvfb, gui_env, window_box

GUI_CV2 = os.environ.get("NOVUM_TEST_GUI_CV2")
needs_qt = pytest.mark.skipif(not GUI_CV2 or not (Path(GUI_CV2) / "cv2").is_dir(),
                              reason="needs OpenCV's GUI build in a folder named by NOVUM_TEST_GUI_CV2 "
                                     "(pip install --target DIR --no-deps opencv-python; .ci/run does it)")
needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt-get install xvfb)")


def unused_display() -> str:
    n = 77
    while Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
        n += 1
    return f":{n}"


def novum_run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "novum.runtime.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@needs_qt
def test_qt_build_with_unreachable_display(tmp_path):
    display = unused_display()
    env = gui_env(display, GUI_CV2)
    # the hazard is real: the Qt build aborts a process that opens a window here
    r = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.getBuildInformation().count('QT5')); "
                                              "cv2.namedWindow('x'); print('alive')"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.split()[:1] != ["0"], "NOVUM_TEST_GUI_CV2 does not hold a Qt build"
    assert r.returncode == -signal.SIGABRT and "alive" not in r.stdout, (r.returncode, r.stderr[-300:])
    # novum-run lives on, runs headless and says why
    out = tmp_path / "o.jsonl"
    r = novum_run(["--model", str(small_onnx()), "--source", "demo", "--max-frames", "3", "--jsonl", str(out),
                   "--threads", "1"], env)
    assert r.returncode == 0, r.stderr[-2000:]
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("no window:")]
    assert len(notes) == 1 and f"display {display}" in notes[0] and "SIGABRT" in notes[0], r.stderr
    assert len(out.read_text().splitlines()) == 3


LABEL_COLOURS = {"high": (80, 220, 80), "mid": (60, 200, 240), "low": (200, 200, 200)}   # runtime/overlay.py


@needs_qt
@needs_xvfb
def test_window_shows_the_annotated_frames_under_xvfb(tmp_path):
    """novum-run --show on the demo clip under Xvfb: a window opens, and what the screen shows is the
    annotated frame (the overlay's pixels, label colour included), not the bare camera frame."""
    shown, log = tmp_path / "shown.avi", tmp_path / "o.jsonl"
    n = 150                     # 2-4 s of window: the first paint can take a second on a loaded machine
    grabs: list[np.ndarray] = []
    with Xvfb(640, 480) as x:
        proc = subprocess.Popen([sys.executable, "-m", "novum.runtime.cli", "--model", str(small_onnx()),
                                 "--source", "demo", "--show", "--max-frames", str(n), "--save", str(shown),
                                 "--jsonl", str(log), "--threads", "1"],
                                env=gui_env(x.display, GUI_CV2), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 120:
            screen = x.grab()
            if screen.any():
                grabs.append(screen)
            time.sleep(0.03)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert not any(ln.startswith("no window") for ln in err.splitlines()), err
    assert grabs, "no window appeared on the X server"

    annotated = read_video(shown)                        # what novum-run drew (MJPG: lossy, same picture)
    cap = cv2.VideoCapture(str(Path(__file__).parents[1] / "novum" / "assets" / "demo_clip.mp4"))
    raw = [cap.read()[1] for _ in range(len(annotated))]
    cap.release()
    records = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert len(annotated) == len(records) == n

    # where the window is (no window manager: nothing else on the black screen), and which frame it shows;
    # grabs of another size caught the probe's own window, opened and closed before novum's
    h, w = annotated[0].shape[:2]
    boxes = [(screen, window_box(screen)) for screen in grabs]
    shown = [(screen, box) for screen, box in boxes if (box[2] - box[0], box[3] - box[1]) == (w, h)]
    assert shown, f"no window of the frames' size {w}x{h} (seen: {sorted({b for _, b in boxes})})"
    best = (1e9, None, None)
    for screen, box in shown[-10:]:
        win = screen[box[1]:box[3], box[0]:box[2]].astype(int)
        for j in range(n):
            diff = np.abs(win - annotated[j]).mean()
            if diff < best[0]:
                best = (diff, win, j)
    diff, win, k = best
    assert diff < 12, f"the window does not show an annotated frame (mean difference {diff:.1f})"
    # the overlay: where novum drew (annotated differs from the bare frame), the screen shows the drawing
    drawn = np.abs(annotated[k].astype(int) - raw[k].astype(int)).max(axis=2) > 60
    assert drawn.sum() > 200
    # the vote box (JSONL "box", 2 px in the label colour) is drawn too; the rest is the text block, top left
    outline = np.zeros_like(drawn)
    if records[k].get("box") is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in records[k]["box"])
        outline[max(y0 - 3, 0):y1 + 3, max(x0 - 3, 0):x1 + 3] = True
        outline[y0 + 3:max(y1 - 4, y0 + 3), x0 + 3:max(x1 - 4, x0 + 3)] = False
    text = drawn & ~outline
    assert text.sum() > 200
    assert text[:90, :w // 2].sum() > 0.95 * text.sum()                   # the text block sits at the top left
    assert np.abs(win - annotated[k])[drawn].mean() < 20                   # the screen shows the overlay ...
    assert np.abs(win - raw[k].astype(int))[drawn].mean() > 60             # ... not the bare frame
    conf = records[k]["confidence"]
    colour = np.array(LABEL_COLOURS["high" if conf >= 0.5 else "mid" if conf >= 0.25 else "low"])
    label_px = (np.abs(win[:40] - colour).max(axis=2) < 40).sum()           # the label line's colour, top left
    assert label_px > 15, f"the label colour {colour.tolist()} is not in the window's top left ({label_px} px)"
