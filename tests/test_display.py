"""The window decision: a probe in a child process (an aborting or hanging child cannot take
novum-run down), cached per process; a headless run says so in one line, and --show fails in one."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from fakes.runtime_assets import frames, small_onnx, write_video
from novum import opencv
from novum.runtime import display
from novum.runtime.cli import main

QT_INFO = "  GUI:                           QT5\n    QT:                          YES (ver 5.15.19 )\n"
ABORT = ("import os, sys\n"
         "sys.stderr.write('qt.qpa.xcb: could not connect to display :77\\n')\n"
         "sys.stderr.flush()\n"
         "os.abort()\n")


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    monkeypatch.setattr(display, "_cache", {})


@pytest.fixture
def qt_display(monkeypatch):
    """A Qt build of OpenCV and a set DISPLAY (the probe's child code is each test's own)."""
    monkeypatch.setattr(opencv, "build_information", lambda: QT_INFO)
    monkeypatch.setenv("DISPLAY", ":77")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "v.avi", frames(4, 96, 128, seed=3))


def test_no_display_is_decided_without_a_child(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("no probe process without a display"))
    d = display.probe()
    assert not d.ok and "DISPLAY and WAYLAND_DISPLAY are unset" in d.reason


def test_headless_build_has_no_gui(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(opencv, "build_information", lambda: "  GUI:                           NONE\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("no probe process for a build without GUI"))
    d = display.probe()
    assert not d.ok and "has no GUI" in d.reason and "opencv-python" in d.fix


def test_an_aborting_probe_leaves_this_process_alive(qt_display, monkeypatch):
    """What the Qt build does with an unreachable DISPLAY (SIGABRT) happens to the child only."""
    monkeypatch.setattr(display, "PROBE_CODE", ABORT)
    d = display.probe()
    assert not d.ok and "\n" not in d.reason
    assert "display :77" in d.reason and "could not connect" in d.reason and "SIGABRT" in d.reason


def test_a_hanging_probe_is_cut_off(qt_display, monkeypatch):
    monkeypatch.setattr(display, "PROBE_CODE", "import time\ntime.sleep(60)\n")
    t0 = time.monotonic()
    d = display.probe(timeout=1.0)
    assert time.monotonic() - t0 < 20
    assert not d.ok and "did not answer within 1 s" in d.reason


def test_probe_runs_once_per_process_and_display(qt_display, monkeypatch):
    calls = []
    real = subprocess.run

    def counting(cmd, **kw):
        calls.append(cmd)
        return real(cmd, **kw)

    monkeypatch.setattr(subprocess, "run", counting)
    monkeypatch.setattr(display, "PROBE_CODE", "print('window ok')\n")
    assert display.probe().ok and display.probe().ok and len(calls) == 1
    monkeypatch.setenv("DISPLAY", ":78")                 # another display: asked again
    assert display.probe().ok and len(calls) == 2
    import cv2

    assert calls[0][1] == "-c" and Path(calls[0][3]) in Path(cv2.__file__).resolve().parents   # where cv2 is


def test_probe_child_uses_the_same_cv2(qt_display, monkeypatch):
    import cv2

    monkeypatch.setattr(display, "PROBE_CODE", "import sys\nsys.path.insert(0, sys.argv[1])\nimport cv2\n"
                                               "print('window ok' if cv2.__file__ == %r else cv2.__file__)\n"
                        % cv2.__file__)
    assert display.probe().ok


def stderr_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.strip().splitlines() if ln]


def test_unreachable_display_runs_headless_and_says_so(qt_display, monkeypatch, video, tmp_path, capsys):
    """novum-run with a Qt OpenCV and DISPLAY=:77: the probe aborts, the run does not (simulated here;
    tests/test_window.py does it with the real Qt build)."""
    monkeypatch.setattr(display, "PROBE_CODE", ABORT)
    rc = main(["--model", str(small_onnx()), "--source", str(video), "--jsonl", str(tmp_path / "o.jsonl"),
               "--threads", "1"])
    err = stderr_lines(capsys)
    assert rc == 0
    note = [ln for ln in err if ln.startswith("no window:")]
    assert len(note) == 1 and "display :77" in note[0] and "running headless, writing" in note[0]
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 4


def test_nothing_to_see_is_said_with_the_fix(monkeypatch, video, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["--model", str(small_onnx()), "--source", str(video), "--threads", "1"]) == 0
    err = stderr_lines(capsys)
    note = [ln for ln in err if ln.startswith("no window:")]
    assert len(note) == 1 and "nothing will be seen" in note[0] and "--save out.mp4" in note[0]
    assert "desktop session" in note[0]
    assert main(["--model", str(small_onnx()), "--source", str(video), "--threads", "1", "--quiet"]) == 0
    assert len(stderr_lines(capsys)) == 1                 # --quiet: the summary line only
    assert main(["--model", str(small_onnx()), "--source", str(video), "--threads", "1", "--no-show"]) == 0
    assert not any("no window" in ln for ln in stderr_lines(capsys))   # no window was asked for: nothing to say


def test_headless_build_note_names_the_desktop_extra(monkeypatch, video, capsys):
    """A display, but the headless OpenCV: the note says so and gives the switch, once."""
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(opencv, "build_information", lambda: "  GUI:                           NONE\n")
    assert main(["--model", str(small_onnx()), "--source", str(video), "--threads", "1"]) == 0
    note = [ln for ln in stderr_lines(capsys) if ln.startswith("no window:")]
    assert len(note) == 1 and "has no GUI" in note[0] and "nothing will be seen" in note[0], note
    assert note[0].count("for a window") == 1 and note[0].endswith(
        "or for a window: pip uninstall -y opencv-python-headless && pip install opencv-python (the [desktop] extra)")


def test_show_without_a_window_is_a_one_line_error(qt_display, monkeypatch, video, capsys):
    monkeypatch.setattr(display, "PROBE_CODE", ABORT)
    rc = main(["--model", str(small_onnx()), "--source", str(video), "--show", "--quiet"])
    err = stderr_lines(capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: --show: cannot open a window on display :77")
    assert "--save out.mp4" in err[0]


def test_two_opencv_wheels_are_named(monkeypatch, video, tmp_path, capsys):
    monkeypatch.setattr(opencv, "installed_wheels", lambda: ["opencv-python", "opencv-python-headless"])
    assert main(["--model", str(small_onnx()), "--source", str(video), "--no-show", "--jsonl",
                 str(tmp_path / "o.jsonl")]) == 0
    warn = [ln for ln in stderr_lines(capsys) if ln.startswith("warning:")]
    assert len(warn) == 1 and "pip uninstall -y opencv-python opencv-python-headless" in warn[0]

