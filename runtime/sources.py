"""Frame sources behind one grammar (``--source``).

==========================  =======================================================
``demo``                    the bundled clip (novum/assets/demo_clip.mp4)
``0``, ``1``, ...           camera index (live)
``/dev/video0``             V4L2 device node (live)
``rtsp://...``, ``http://`` network stream (live)
``csi://0``                 Jetson CSI camera through GStreamer (live; ``novum.runtime.gstreamer``)
``gst:<pipeline>``          any GStreamer pipeline that ends in an appsink (live)
``clip.mp4``                video file: every frame, in order
``photo.jpg``               one image
``folder/``                 every image in the folder, sorted by name
``"shots/*.png"``           every image the glob matches, sorted
==========================  =======================================================

Live sources keep only the newest frame (a reader thread overwrites a one-frame slot), so a model
slower than the camera never builds up lag; the frames it skipped are counted in ``dropped``.
Files are processed frame by frame. A stream that breaks mid-way ends the iteration and leaves a
one-line reason in ``Source.error``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from novum.contracts.images import is_glob, is_image, list_images
from novum.errors import InputError
from novum.runtime.gstreamer import CSI_PREFIX, GST_PREFIX, CaptureOptions, open_csi, open_gst

STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
OPEN_TIMEOUT_MS = 10000


@dataclass
class Frame:
    index: int                 # position in the source (live: capture count, so gaps = dropped frames)
    timestamp: float | None    # seconds: media time for videos, since-open for live sources, None for images
    image: np.ndarray          # uint8 BGR [h, w, 3]
    name: str = ""             # file name for image sources


class Source:
    """Iterable of :class:`Frame`. ``live``: drops stale frames. ``stills``: unrelated pictures, not a
    video (no temporal smoothing). ``error``: why it ended early."""

    live = False
    stills = False

    def __init__(self, description: str) -> None:
        self.description = description
        self.fps: float | None = None
        self.expected_frames: int | None = None
        self.dropped = 0
        self.error: str | None = None
        self.read_count = 0

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self) -> Iterator[Frame]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoFileSource(Source):
    """Every frame of a video file, in order; a truncated or corrupt tail sets ``error``."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        super().__init__(str(path))
        if not path.is_file():
            raise InputError(f"{path}: video not found" + (" (it is a directory)" if path.is_dir() else ""))
        self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            raise InputError(f"{path}: cannot open as a video (corrupt file or unsupported codec); re-encode it, "
                             f"e.g. ffmpeg -i in -c:v mpeg4 out.mp4")
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS)) or None
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.expected_frames = n if n > 0 else None
        ok, first = self.cap.read()
        if not ok or first is None:
            self.cap.release()
            raise InputError(f"{path}: no frame could be decoded (corrupt or empty video)")
        self._first: np.ndarray | None = first

    def frames(self) -> Iterator[Frame]:
        i = 0
        while True:
            if self._first is not None:
                img, self._first = self._first, None
            else:
                ok, img = self.cap.read()
                if not ok or img is None:
                    break
            yield Frame(i, i / self.fps if self.fps else None, img)
            i += 1
            self.read_count = i
        n = self.expected_frames
        if n and n - i > max(1, n // 100):
            self.error = f"{self.description}: the video broke after frame {i} of {n} (truncated or corrupt)"

    def close(self) -> None:
        self.cap.release()


class ImageSource(Source):
    """A list of image files (one file, a folder, or a glob)."""

    stills = True

    def __init__(self, paths: list[Path], description: str) -> None:
        super().__init__(description)
        self.paths = paths
        self.expected_frames = len(paths)

    def frames(self) -> Iterator[Frame]:
        for i, p in enumerate(self.paths):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                self.error = f"{p}: cannot decode the image (corrupt or not an image)"
                return
            self.read_count = i + 1
            yield Frame(i, None, img, p.name)


class LiveSource(Source):
    """A camera or network stream read by a background thread that keeps only the newest frame."""

    live = True

    def __init__(self, cap: Any, description: str, keep_all: bool = False) -> None:
        super().__init__(description)
        self.cap = cap
        self.keep_all = keep_all
        fps = float(cap.get(cv2.CAP_PROP_FPS)) if hasattr(cap, "get") else 0.0
        self.fps = fps if fps > 0 else None
        self._cond = threading.Condition()
        self._latest: list[Frame] = []
        self._ended = False
        self._closed = False
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._reader, name="novum-capture", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        i = 0
        while not self._closed:
            ok, img = self.cap.read()
            if not ok or img is None:
                break
            f = Frame(i, time.monotonic() - self._t0, img)
            i += 1
            with self._cond:
                if self.keep_all:
                    while len(self._latest) >= 64 and not self._closed:  # bounded: wait for the consumer
                        self._cond.wait(0.1)
                    self._latest.append(f)
                else:
                    self.dropped += len(self._latest)
                    self._latest = [f]
                self._cond.notify_all()
        with self._cond:
            self.read_count = i
            if not self._closed:
                self.error = f"{self.description}: the stream ended or was lost after {i} frames"
            self._ended = True
            self._cond.notify_all()

    def frames(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._latest and not self._ended and not self._closed:
                    self._cond.wait(0.5)
                if not self._latest:
                    return
                f = self._latest.pop(0)
                self._cond.notify_all()
            yield f

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        self.cap.release()


def _open_capture(target: int | str, description: str, hint: str, camera: CaptureOptions | None = None) -> Any:
    if isinstance(target, int):
        cap = cv2.VideoCapture(target)
    else:
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS])
    if not cap.isOpened():
        cap.release()
        raise InputError(f"{description}: {hint}")
    settings = [(cv2.CAP_PROP_BUFFERSIZE, 1)]
    if camera is not None:   # what the user asked for (the driver picks the nearest mode it has)
        settings += [(p, v) for p, v in ((cv2.CAP_PROP_FRAME_WIDTH, camera.width), (cv2.CAP_PROP_FRAME_HEIGHT, camera.height),
                                         (cv2.CAP_PROP_FPS, camera.fps)) if v is not None]
    for prop, value in settings:
        try:
            cap.set(prop, value)
        except cv2.error:
            pass
    return cap


def open_source(spec: str | int | Path, keep_all: bool = False, capture: CaptureOptions | None = None) -> Source:
    """Parse ``--source`` (see the module docstring) and open it; a bad source is a one-line InputError.
    ``capture``: the camera's size, rate and (CSI) flip; an error for sources that are not cameras."""
    s = str(spec).strip()
    if not s:
        raise InputError("empty --source; pass a camera index, a video, an image, a folder, a glob, a URL or 'demo'")
    camera = capture if capture is not None and capture.given() else None
    if camera is not None:
        if not (s.isdigit() or s.startswith("/dev/video") or s.startswith(CSI_PREFIX)):
            raise InputError(f"--input-width/--input-height/--input-rate/--input-flip set a camera; --source {s} is not one")
        if camera.flip is not None and not s.startswith(CSI_PREFIX):
            raise InputError(f"--input-flip applies to csi:// cameras only, not to --source {s}")
    if s == "demo":
        from novum.bundled import demo_clip_path

        return VideoFileSource(demo_clip_path())
    if s.startswith(CSI_PREFIX):
        cap, description = open_csi(s, camera)
        return LiveSource(cap, description, keep_all)
    if s.startswith(GST_PREFIX):
        cap, description = open_gst(s)
        return LiveSource(cap, description, keep_all)
    if s.isdigit():
        cap = _open_capture(int(s), f"camera {s}",
                            f"no camera at index {s} (nothing at /dev/video{s}); pass --source path/to/video.mp4 or --source demo",
                            camera)
        return LiveSource(cap, f"camera {s}", keep_all)
    if s.startswith("/dev/video"):
        if not Path(s).exists():
            raise InputError(f"{s}: no such camera device; list cameras with 'ls /dev/video*' or pass --source demo")
        cap = _open_capture(s, s, "the camera device exists but cannot be opened (busy, or no permission: add yourself to group 'video')",
                            camera)
        return LiveSource(cap, s, keep_all)
    if s.lower().startswith(STREAM_PREFIXES):
        cap = _open_capture(s, s, f"cannot open the stream (unreachable, wrong URL or codec; waited {OPEN_TIMEOUT_MS // 1000} s)")
        return LiveSource(cap, s, keep_all)
    if is_glob(s):
        return ImageSource(list_images(s), s)
    p = Path(s).expanduser()
    if p.is_dir():
        return ImageSource(list_images(p), str(p))
    if not p.exists():
        raise InputError(f"{p}: source not found; pass a camera index, a video, an image, a folder, a glob, a URL or 'demo'")
    if is_image(p):
        return ImageSource([p], str(p))
    return VideoFileSource(p)
