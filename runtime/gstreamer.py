"""GStreamer sources: Jetson CSI cameras (``csi://N``) and raw pipelines (``gst:...``).

Both are read through OpenCV's GStreamer backend. JetPack's OpenCV has it; the PyPI wheels
(``opencv-python``, ``opencv-python-headless``) do not, and then these sources are a one-line
error. The CSI pipeline is the one jetson-utils and NVIDIA's camera samples use: ``nvarguscamerasrc``
(the ISP, NV12 in NVMM memory at the sensor mode's size and rate) -> ``nvvidconv`` (flip, copy
to CPU memory as BGRx) -> ``videoconvert`` (BGR, what OpenCV hands out) -> ``appsink`` that keeps
only the newest buffer (``drop=1 max-buffers=1``) and does not wait on the clock (``sync=false``),
so a model slower than the camera never sees stale frames.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from novum import opencv
from novum.errors import InputError

CSI_PREFIX = "csi://"
GST_PREFIX = "gst:"
# nvvidconv's flip-method values, under jetson-inference's --input-flip names
FLIP_METHODS = {"none": 0, "counterclockwise": 1, "rotate-180": 2, "clockwise": 3, "horizontal": 4,
                "upper-right-diagonal": 5, "vertical": 6, "upper-left-diagonal": 7}
APPSINK = "appsink drop=1 max-buffers=1 sync=false"
OPEN_TIMEOUT_S = 15.0
MISSING_HINTS = {"nvarguscamerasrc": ": CSI cameras need a Jetson with JetPack's camera stack",
                 "nvvidconv": ": CSI cameras need a Jetson with JetPack's multimedia stack"}


@dataclass
class CaptureOptions:
    """Camera settings (``--input-width/--input-height/--input-rate/--input-flip``).

    CSI cameras always use them (defaults: 1280x720 at 30 FPS, no flip, as jetson-utils); V4L2
    cameras get the ones given; files and streams take none."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    flip: str | None = None

    def given(self) -> bool:
        return any(v is not None for v in (self.width, self.height, self.fps, self.flip))


CSI_DEFAULTS = CaptureOptions(1280, 720, 30.0, "none")


def _rate(fps: float) -> str:
    f = Fraction(fps).limit_denominator(1001)
    return f"{f.numerator}/{f.denominator}"


def csi_pipeline(sensor_id: int = 0, opts: CaptureOptions | None = None) -> str:
    """The GStreamer pipeline for CSI camera ``sensor_id`` (see the module docstring)."""
    o = opts or CaptureOptions()
    d = CSI_DEFAULTS
    width, height = o.width or d.width, o.height or d.height
    fps, flip = o.fps or d.fps, o.flip or d.flip
    if flip not in FLIP_METHODS:
        raise InputError(f"--input-flip {flip!r}: one of {', '.join(FLIP_METHODS)}")
    if width <= 0 or height <= 0 or fps <= 0:
        raise InputError(f"csi://{sensor_id}: size {width}x{height} and rate {fps} must be positive")
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, "
            f"framerate=(fraction){_rate(fps)}, format=(string)NV12 ! "
            f"nvvidconv flip-method={FLIP_METHODS[flip]} ! video/x-raw, format=(string)BGRx ! "
            f"videoconvert ! video/x-raw, format=(string)BGR ! {APPSINK}")


def parse_csi(spec: str) -> int:
    """``csi://0`` -> 0."""
    rest = spec[len(CSI_PREFIX):]
    if not rest.isdigit():
        raise InputError(f"{spec}: a CSI camera is csi:// and its sensor id, e.g. csi://0")
    return int(rest)


def require_gstreamer(what: str) -> None:
    """A one-line InputError when this OpenCV cannot read GStreamer pipelines."""
    if opencv.has_gstreamer():
        return
    raise InputError(f"{what}: this OpenCV ({opencv.describe()}) is built without GStreamer, which CSI cameras "
                     f"and gst: pipelines need; on a Jetson use JetPack's OpenCV: a venv with "
                     f"--system-site-packages and no OpenCV wheel (README 'Jetson')")


def elements(pipeline: str) -> list[str]:
    """The element names of a gst-launch pipeline (caps filters and ``name.`` references left out)."""
    names = []
    for part in pipeline.split("!"):
        tokens = part.strip().split()
        if not tokens or "/" in tokens[0] or tokens[0].endswith(".") or "=" in tokens[0]:
            continue
        names.append(tokens[0])
    return names


def missing_elements(pipeline: str) -> list[str]:
    """The pipeline's elements that this machine's GStreamer lacks (asked of gst-inspect-1.0 when it is
    installed; [] otherwise). A missing element must be caught before OpenCV opens the pipeline: the
    rest of it would wait for frames forever."""
    exe = shutil.which("gst-inspect-1.0")
    if exe is None:
        return []
    missing = []
    for name in dict.fromkeys(elements(pipeline)):
        try:
            r = subprocess.run([exe, "--exists", name], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return []
        if r.returncode != 0:
            missing.append(name)
    return missing


def open_pipeline(pipeline: str, what: str, thing: str, hint: str) -> Any:
    """``cv2.VideoCapture`` on a GStreamer pipeline that ends in an appsink, or a one-line InputError.

    Time-bounded (:data:`OPEN_TIMEOUT_S`): a pipeline that cannot start (an element missing, a camera
    daemon that hangs) can block OpenCV's open for ever; it is left behind in a daemon thread."""
    require_gstreamer(what)
    if "appsink" not in pipeline:
        raise InputError(f"{what}: the pipeline must end in an appsink, e.g. '... ! videoconvert ! "
                         f"video/x-raw, format=BGR ! {APPSINK}'")
    missing = missing_elements(pipeline)
    if missing:
        raise InputError(f"{what}: this machine's GStreamer has no element {', '.join(missing)} "
                         f"(gst-inspect-1.0 {missing[0]}){MISSING_HINTS.get(missing[0], '')}")
    cv2 = opencv.require()
    box: dict[str, Any] = {}
    opener = threading.Thread(target=lambda: box.setdefault("cap", cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)),
                              name="novum-gst-open", daemon=True)
    opener.start()
    opener.join(OPEN_TIMEOUT_S)
    if opener.is_alive():
        raise InputError(f"{what}: {thing} did not start within {OPEN_TIMEOUT_S:g} s; {hint}")
    cap = box.get("cap")
    if cap is None or not cap.isOpened():
        if cap is not None:
            cap.release()
        raise InputError(f"{what}: {thing} did not start; {hint}")
    return cap


def open_csi(spec: str, opts: CaptureOptions | None = None) -> tuple[Any, str]:
    """Open ``csi://N``: (capture, description)."""
    sensor = parse_csi(spec)
    pipeline = csi_pipeline(sensor, opts)
    hint = (f"not a Jetson, no camera at sensor-id={sensor}, another process holds it, or nvargus-daemon is down "
            f"(sudo systemctl restart nvargus-daemon); try: gst-launch-1.0 {pipeline.replace(APPSINK, 'fakesink')}")
    return open_pipeline(pipeline, spec, "the CSI camera", hint), f"{spec} (gst: {pipeline})"


def open_gst(spec: str) -> tuple[Any, str]:
    """Open ``gst:<pipeline>``: (capture, description)."""
    pipeline = spec[len(GST_PREFIX):].strip()
    if not pipeline:
        raise InputError("gst: needs a pipeline, e.g. gst:'videotestsrc ! videoconvert ! video/x-raw, format=BGR ! "
                         f"{APPSINK}'")
    hint = f"try it with: gst-launch-1.0 {pipeline}"
    return open_pipeline(pipeline, "gst: pipeline", "the pipeline", hint), f"gst: {pipeline}"
