"""CSI cameras (csi://N) and raw GStreamer pipelines (gst:...): the pipeline strings, the camera
options, the one-line errors (no GStreamer in this OpenCV, a camera that does not start), and the
capture handed to the live source. No Jetson here: OpenCV's capture is faked where it would open one."""
from __future__ import annotations

import numpy as np
import pytest

from novum import opencv
from novum.errors import InputError
from novum.runtime.cli import main
from novum.runtime import gstreamer
from novum.runtime.gstreamer import CaptureOptions, csi_pipeline, missing_elements
from novum.runtime.sources import LiveSource, open_source

# The documented pipeline (README 'Jetson'): csi://0 with the defaults.
CSI0 = ("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, "
        "framerate=(fraction)30/1, format=(string)NV12 ! nvvidconv flip-method=0 ! video/x-raw, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=1 max-buffers=1 sync=false")

# The lines of cv2.getBuildInformation() that matter here, as JetPack's and PyPI's builds print them.
WITH_GST = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   YES (1.20.3)\n"
WITHOUT_GST = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   NO\n"


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_csi_pipeline_string():
    assert csi_pipeline(0) == CSI0
    p = csi_pipeline(1, CaptureOptions(1920, 1080, 29.97, "rotate-180"))
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), width=(int)1920, height=(int)1080, "
                        "framerate=(fraction)2997/100, format=(string)NV12 ! nvvidconv flip-method=2 ! ")
    assert p.endswith("! appsink drop=1 max-buffers=1 sync=false")
    assert "flip-method=1 " in csi_pipeline(0, CaptureOptions(flip="counterclockwise"))
    assert "width=(int)640, height=(int)720" in csi_pipeline(0, CaptureOptions(width=640))   # the rest: defaults
    with pytest.raises(InputError) as e:
        csi_pipeline(0, CaptureOptions(flip="sideways"))
    assert "rotate-180" in one_line(e)


# OpenCV 4.1 (JetPack 4) lists the parts under an empty "GUI:" / "GStreamer:" line
OLD_REPORT = ("  GUI:\n    GTK+:                        YES (ver 2.24.32)\n      GThread :                  YES (ver 2.56.4)\n"
              "  Video I/O:\n    FFMPEG:                      YES\n      avcodec:                   YES (ver 57.107.100)\n"
              "    GStreamer:                   \n      base:                      YES (ver 1.14.5)\n"
              "      app:                       YES (ver 1.14.5)\n    v4l/v4l2:                    linux/videodev2.h\n")


@pytest.mark.parametrize("value, gui, gst", [(WITH_GST + "  GUI:                           GTK3\n", "GTK3", True),
                                             (WITHOUT_GST + "  GUI:                           QT5\n", "QT5", False),
                                             (WITHOUT_GST + "  GUI:                           NONE\n", "NONE", False),
                                             (OLD_REPORT, "UNKNOWN", True),
                                             (OLD_REPORT.replace("YES (ver 1.14.5)", "NO"), "UNKNOWN", False),
                                             ("", "UNKNOWN", False)])
def test_build_information_parsing(value, gui, gst):
    assert opencv.gui_backend(value) == gui and opencv.has_gstreamer(value) is gst


def test_this_opencv_is_read_right():
    """The real build report of the OpenCV installed here (a PyPI wheel: no GStreamer; GUI per wheel)."""
    wheels = opencv.installed_wheels()
    if not wheels:
        pytest.skip("no OpenCV wheel here (a system OpenCV): nothing known to compare with")
    assert opencv.has_gstreamer() is False                    # no PyPI wheel is built with GStreamer
    assert (opencv.gui_backend() == "NONE") == all("headless" in w for w in wheels)


@pytest.fixture
def no_gstreamer(monkeypatch):
    monkeypatch.setattr(opencv, "build_information", lambda: WITHOUT_GST)


class FakeCapture:
    """cv2.VideoCapture as a GStreamer pipeline would give it (records how it was opened)."""

    opened: list = []

    def __init__(self, target, api=None, *params):
        self.target, self.api, self.props = target, api, {}
        self.n = 0
        FakeCapture.opened.append(self)

    def isOpened(self):
        return "nvarguscamerasrc sensor-id=9" not in str(self.target)     # sensor 9: no camera there

    def read(self):
        self.n += 1
        return (True, np.full((72, 128, 3), self.n, np.uint8)) if self.n <= 5 else (False, None)

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def release(self):
        pass


@pytest.fixture
def fake_gstreamer(monkeypatch):
    """An OpenCV with GStreamer on a machine with every element (a Jetson), its captures faked."""
    import cv2

    monkeypatch.setattr(opencv, "build_information", lambda: WITH_GST)
    monkeypatch.setattr(gstreamer, "missing_elements", lambda pipeline: [])
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    FakeCapture.opened = []
    return cv2


def test_csi_without_gstreamer_is_one_line(no_gstreamer):
    for spec in ("csi://0", "gst:videotestsrc ! appsink"):
        with pytest.raises(InputError) as e:
            open_source(spec)
        msg = one_line(e)
        assert "built without GStreamer" in msg and "JetPack's OpenCV" in msg and "--system-site-packages" in msg


def test_novum_run_csi_without_gstreamer(no_gstreamer, capsys):
    rc = main(["--source", "csi://0", "--no-show", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: csi://0: this OpenCV (OpenCV ")
    assert "built without GStreamer" in err[0]


def test_csi_opens_the_pipeline_through_gstreamer(fake_gstreamer):
    cv2 = fake_gstreamer
    src = open_source("csi://0", capture=CaptureOptions(fps=15))
    try:
        assert isinstance(src, LiveSource) and src.live
        cap = FakeCapture.opened[-1]
        assert cap.api == cv2.CAP_GSTREAMER and cap.target == CSI0.replace("30/1", "15/1")
        assert src.description.startswith("csi://0 (gst: nvarguscamerasrc sensor-id=0")
        got = [f.image[0, 0, 0] for f in src]
        assert got and got[-1] == 5                  # newest frames, in order
    finally:
        src.close()


def test_csi_camera_that_does_not_start(fake_gstreamer):
    with pytest.raises(InputError) as e:
        open_source("csi://9")
    msg = one_line(e)
    assert msg.startswith("csi://9: the CSI camera did not start") and "nvargus-daemon" in msg
    assert "gst-launch-1.0 nvarguscamerasrc sensor-id=9" in msg and msg.endswith("! fakesink")


def test_gst_pipeline_source(fake_gstreamer):
    cv2 = fake_gstreamer
    pipeline = "videotestsrc ! videoconvert ! video/x-raw, format=BGR ! appsink drop=1 max-buffers=1"
    src = open_source("gst:" + pipeline)
    try:
        cap = FakeCapture.opened[-1]
        assert cap.target == pipeline and cap.api == cv2.CAP_GSTREAMER and src.live
    finally:
        src.close()
    for bad, why in (("gst:", "needs a pipeline"), ("gst:videotestsrc ! autovideosink", "must end in an appsink")):
        with pytest.raises(InputError) as e:
            open_source(bad)
        assert why in one_line(e)


def test_csi_spec_and_camera_options_are_checked(fake_gstreamer, tmp_path):
    for spec, opts, why in (("csi://front", None, "e.g. csi://0"),
                            ("demo", CaptureOptions(width=640), "set a camera; --source demo is not one"),
                            ("0", CaptureOptions(flip="rotate-180"), "--input-flip applies to csi:// cameras only"),
                            ("csi://0", CaptureOptions(width=-5), "must be positive")):
        with pytest.raises(InputError) as e:
            open_source(spec, capture=opts)
        assert why in one_line(e), (spec, str(e.value))


def test_camera_index_gets_the_size_and_rate_asked_for(fake_gstreamer):
    cv2 = fake_gstreamer
    src = open_source("0", capture=CaptureOptions(640, 480, 60))
    try:
        props = FakeCapture.opened[-1].props
        assert (props[cv2.CAP_PROP_FRAME_WIDTH], props[cv2.CAP_PROP_FRAME_HEIGHT], props[cv2.CAP_PROP_FPS]) == (640, 480, 60)
    finally:
        src.close()
    src = open_source("0")                                   # nothing asked: nothing set but the buffer
    src.close()
    assert set(FakeCapture.opened[-1].props) == {cv2.CAP_PROP_BUFFERSIZE}


def test_novum_run_csi_options_reach_the_pipeline(fake_gstreamer, tmp_path, capsys):
    from fakes.runtime_assets import small_onnx

    rc = main(["--model", str(small_onnx()), "--source", "csi://1", "--input-width", "640", "--input-height", "480",
               "--input-rate", "15", "--input-flip", "rotate-180", "--no-show", "--quiet", "--every-frame",
               "--jsonl", str(tmp_path / "o.jsonl")])
    target = FakeCapture.opened[-1].target
    assert "sensor-id=1 ! video/x-raw(memory:NVMM), width=(int)640, height=(int)480, framerate=(fraction)15/1" in target
    assert "flip-method=2" in target
    err = capsys.readouterr().err
    # the fake camera gives 5 frames, then the stream ends (a broken stream for a live source: exit 2)
    assert rc == 2 and "the stream ended or was lost after 5 frames" in err
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 5


def test_pipeline_elements():
    from novum.runtime.gstreamer import elements

    assert elements(CSI0) == ["nvarguscamerasrc", "nvvidconv", "videoconvert", "appsink"]
    assert elements('rtspsrc location=rtsp://cam/x latency=0 ! rtph264depay ! h264parse ! avdec_h264 ! '
                    '"video/x-raw,format=I420" ! videoconvert ! appsink') == \
        ["rtspsrc", "rtph264depay", "h264parse", "avdec_h264", "videoconvert", "appsink"]


def test_missing_element_is_named_before_opening(fake_gstreamer, monkeypatch):
    """Elsewhere than on a Jetson (a desktop OpenCV with GStreamer), csi://0 lacks nvarguscamerasrc; OpenCV
    would then wait for ever on the rest of the pipeline, so the element is looked up first."""
    import shutil
    import subprocess

    real_run = subprocess.run
    asked = []

    def gst_inspect(cmd, **kw):
        if cmd[0] != "/usr/bin/gst-inspect-1.0":
            return real_run(cmd, **kw)
        asked.append(cmd[2])
        return subprocess.CompletedProcess(cmd, 1 if cmd[2].startswith("nv") else 0, b"", b"")

    monkeypatch.setattr(gstreamer, "missing_elements", missing_elements)   # the real lookup, over a fake tool
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/gst-inspect-1.0" if name == "gst-inspect-1.0" else None)
    monkeypatch.setattr(subprocess, "run", gst_inspect)
    with pytest.raises(InputError) as e:
        open_source("csi://0")
    msg = one_line(e)
    assert "has no element nvarguscamerasrc, nvvidconv" in msg and "need a Jetson" in msg
    assert asked == ["nvarguscamerasrc", "nvvidconv", "videoconvert", "appsink"] and not FakeCapture.opened
    monkeypatch.setattr(shutil, "which", lambda name: None)          # no gst-inspect-1.0: nothing to ask
    assert gstreamer.missing_elements(CSI0) == []


def test_a_pipeline_that_never_starts_is_cut_off(fake_gstreamer, monkeypatch):
    import threading
    import time

    release = threading.Event()

    class Stuck(FakeCapture):
        def __init__(self, *a):
            release.wait(30)                  # a camera daemon that never answers
            super().__init__(*a)

    monkeypatch.setattr(fake_gstreamer, "VideoCapture", Stuck)
    monkeypatch.setattr(gstreamer, "OPEN_TIMEOUT_S", 0.5)
    t0 = time.monotonic()
    try:
        with pytest.raises(InputError) as e:
            open_source("csi://0")
    finally:
        release.set()
    assert time.monotonic() - t0 < 10
    msg = one_line(e)
    assert "did not start within 0.5 s" in msg
    assert "nvargus-daemon" in msg
