"""Outputs that stay valid whatever happens: the annotated video and the JSONL log.

- :class:`VideoSink` encodes into a hidden temporary file next to the target and renames it onto
  the target when closed, also after Ctrl-C or a broken source (the container is finalised by
  ``release()`` first), so the target is never a half-written file.
- :class:`JsonlSink` writes one complete line per frame and flushes it at once; ``close()``
  fsyncs. After Ctrl-C every line already in the file is a complete JSON record. The file is
  opened at the first record: a run that fails before any frame leaves no empty file behind (and
  an earlier file of that name untouched).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from novum.errors import InputError

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class VideoSink:
    def __init__(self, path: str | Path, fps: float | None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise InputError(f"{self.path}: unsupported video type; use one of {', '.join(sorted(FOURCC))}")
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path.parent}: output folder does not exist")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            self.size = (w - w % 2, h - h % 2)   # mpeg4 wants even sizes
            fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise InputError(f"{self.path}: OpenCV cannot write this video (codec {FOURCC[self.path.suffix.lower()]})")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if self.frames:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class JsonlSink:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path.parent}: output folder does not exist")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder; pass a file name for --jsonl")
        self.f = None
        self.records = 0

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        if self.f is None:
            self.f = open(self.path, "w", encoding="utf-8")
        self.f.write(line)
        self.f.flush()
        self.records += 1

    def close(self) -> None:
        if self.f is None or self.f.closed:
            return
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
