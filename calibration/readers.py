"""Calibration and held-out frames, exactly as the runtime feeds the exported model.

Every reader returns a :class:`FrameSet`: uint8 BGR frames [N, H, W, 3] at the model's input size
and one name per frame (recorded in the INT8 model's metadata). Frames from disk go through the
runtime's own :class:`novum.contracts.framing.Framer` (centred crop of the model's aspect ratio,
resize, zero padding), so calibration sees what ``novum-run`` feeds the model. Which frames are
taken is a pure function of the source and the seed.

``--calib`` grammar (:func:`calibration_frames`):

- ``demo`` or ``synthetic``: frames of novum's synthetic dataset (``novum.data.synthetic``) for the
  model's classes, input size and focal, ``train`` split, classes in turn (balanced). The held-out
  frames come from the ``test`` split, which has labels, so the accuracy gate reports accuracy too.
- a folder (or a glob): images, ``n`` of them drawn with the seed; the held-out frames are other
  images of the same folder.
- a video file: ``n`` frames drawn with the seed; the held-out frames are other frames of the clip.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

import cv2

from novum.config import ModelConfig
from novum.contracts.framing import Framer
from novum.contracts.images import is_glob, is_image, list_images
from novum.data.synthetic import SyntheticConfig, SyntheticDataset
from novum.errors import InputError
from novum.runtime.sources import VideoFileSource

SYNTHETIC_SPECS = ("demo", "synthetic")


@dataclass
class FrameSet:
    """Framed uint8 BGR frames [N, H, W, 3], their names, and labels when the source has them."""

    frames: np.ndarray
    names: list[str]
    source: str
    seed: int
    labels: np.ndarray | None = None
    kind: str = ""                       # "synthetic" | "folder" | "video"
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    def sha256(self) -> str:
        """Hash of the names and the pixels: changes whenever the data change."""
        h = hashlib.sha256()
        for n in self.names:
            h.update(n.encode() + b"\0")
        h.update(np.ascontiguousarray(self.frames).tobytes())
        return h.hexdigest()


class OrtCalibrationReader:
    """ONNX Runtime ``CalibrationDataReader``: ``{input_name: frames[i:i+batch]}`` until exhausted."""

    def __init__(self, frames: np.ndarray, input_name: str = "images", batch: int = 1) -> None:
        self.frames = frames
        self.input_name = input_name
        self.batch = max(1, int(batch))
        self.served = 0                  # frames handed out (tests use it to see that calibration ran)
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.frames):
            return None
        x = self.frames[self._i:self._i + self.batch]
        self._i += len(x)
        self.served += len(x)
        return {self.input_name: np.ascontiguousarray(x)}

    def remaining(self) -> int:
        """Frames not handed out yet."""
        return len(self.frames) - self._i

    def rewind(self) -> None:
        self._i = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (d := self.get_next()) is not None:
            yield d

    def __len__(self) -> int:
        return math.ceil(len(self.frames) / self.batch)


def calibration_frames(spec: str | Path, config: ModelConfig, n: int, seed: int = 0,
                       holdout: int = 0) -> tuple[FrameSet, FrameSet | None]:
    """Calibration frames of ``spec`` (see the module docstring) and ``holdout`` held-out frames.

    The held-out frames never overlap the calibration frames. Returns (calibration, held-out or None).
    """
    if n < 1:
        raise InputError(f"--calib-samples must be >= 1, got {n}")
    s = str(spec).strip()
    if s in SYNTHETIC_SPECS:
        calib = synthetic_frames(config, n, seed, split="train")
        held = synthetic_frames(config, holdout, seed, split="test") if holdout > 0 else None
        return calib, held
    if is_glob(s):
        return image_frames(list_images(s, f"--calib {s}"), config.input_size, n, seed, holdout, source=s)
    p = Path(s).expanduser()
    if p.is_dir():
        return folder_frames(p, config.input_size, n, seed, holdout)
    if not p.exists():
        raise InputError(f"--calib {s}: not found; pass a folder of images, a video, or 'demo' (synthetic frames)")
    if is_image(p):
        raise InputError(f"--calib {s}: one image is too little to calibrate on; pass a folder of images or a video")
    return video_frames(p, config.input_size, n, seed, holdout)


def synthetic_frames(config: ModelConfig, n: int, seed: int = 0, split: str = "train",
                     occlusion: str | None = None) -> FrameSet:
    """``n`` synthetic frames for ``config`` (classes in turn: sample k has class k % C), with labels."""
    C = config.num_classes
    per_class = max(1, math.ceil(n / C))
    ds = SyntheticDataset(SyntheticConfig(per_class=per_class, split=split, seed=seed, occlusion=occlusion,
                                          image_size=tuple(config.input_size)), config)
    frames, names, labels = [], [], []
    for k in range(n):
        s = ds[(k % C) * per_class + k // C]
        frames.append(s.image)
        names.append(s.name)
        labels.append(s.label)
    H, W = config.input_size
    arr = np.stack(frames) if frames else np.zeros((0, H, W, 3), np.uint8)
    tag = f", occlusion {occlusion}" if occlusion else ""
    return FrameSet(arr, names, f"{len(names)} synthetic {split}-split frames{tag}", seed, np.asarray(labels, np.int64),
                    "synthetic")


def folder_frames(folder: str | Path, input_size: tuple[int, int], n: int, seed: int = 0,
                  holdout: int = 0) -> tuple[FrameSet, FrameSet | None]:
    """``n`` images of ``folder`` (drawn with ``seed``) and up to ``holdout`` other ones, framed."""
    files = list_images(folder, f"--calib {folder}")
    return image_frames(files, input_size, n, seed, holdout, source=str(folder))


def image_frames(files: list[Path], input_size: tuple[int, int], n: int, seed: int, holdout: int,
                 source: str) -> tuple[FrameSet, FrameSet | None]:
    pick, rest = _draw(len(files), n, holdout, seed)
    framer = Framer(input_size)

    def read(idx: list[int], what: str) -> FrameSet:
        frames = []
        for i in idx:
            img = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"{files[i]}: cannot decode the image (corrupt or not an image); remove it from --calib")
            frames.append(framer(img)[0])
        return FrameSet(np.stack(frames), [files[i].name for i in idx], f"{what} of {source}", seed, kind="folder")

    calib = read(pick, f"{len(pick)} images")
    return calib, (read(rest, f"{len(rest)} held-out images") if rest else None)


def video_frames(path: str | Path, input_size: tuple[int, int], n: int, seed: int = 0,
                 holdout: int = 0) -> tuple[FrameSet, FrameSet | None]:
    """``n`` frames of the video drawn with ``seed`` and up to ``holdout`` other ones, framed."""
    path = Path(path)
    framer = Framer(input_size)
    with VideoFileSource(path) as src:
        total = src.expected_frames
        if not total:  # container without a frame count: count by decoding
            total = sum(1 for _ in src)
    pick, rest = _draw(total, n, holdout, seed)
    want = {i: "c" for i in pick} | {i: "h" for i in rest}
    got: dict[int, np.ndarray] = {}
    with VideoFileSource(path) as src:
        for f in src:
            if f.index in want:
                got[f.index] = framer(f.image)[0]
            if len(got) == len(want):
                break
    missing = [i for i in want if i not in got]
    if missing:
        raise InputError(f"--calib {path}: frame {missing[0]} of {total} could not be decoded (truncated video?); "
                         f"re-encode it or pass a folder of images")

    def subset(idx: list[int], what: str) -> FrameSet:
        return FrameSet(np.stack([got[i] for i in idx]), [f"{path.name}#{i}" for i in idx],
                        f"{what} of {path.name}", seed, kind="video")

    calib = subset(pick, f"{len(pick)} frames")
    return calib, (subset(rest, f"{len(rest)} held-out frames") if rest else None)


def _draw(total: int, n: int, holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """Disjoint sorted index lists: ``n`` calibration picks and up to ``holdout`` of the rest."""
    if total < n:
        raise InputError(f"--calib-samples {n}: the source has only {total} frames; lower --calib-samples "
                         f"or pass more data")
    order = np.random.default_rng(seed).permutation(total)
    pick = sorted(int(i) for i in order[:n])
    rest = sorted(int(i) for i in order[n:n + max(0, holdout)])
    return pick, rest
