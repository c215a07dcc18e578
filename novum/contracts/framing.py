"""Framing: turn a camera/video frame into the model's input the way the model was trained.

Training crops (upstream's, docs/upstream.md section 2, and the synthetic generator's) put the
object centre at the crop centre at a fixed scale, with zero padding outside the image. Live
video has no annotation, so:

- default: the largest centred box of the model's aspect ratio (H:W) is cropped and resized
  (right when the camera frames the object as training did: centred, filling the frame alike);
- ``roi=(x, y, w, h)``: **the object's box** in frame pixels. It is framed the way training framed
  objects, from the model's ``framing`` record (``ModelConfig.framing``, measured by :mod:`novum.data.framing`): a crop of the model's
  aspect ratio in which the box's dominant side fills ``object_fill`` of the crop (context margin
  and scale as in training), centred on the box (shifted by the recorded ``centre_offset``); parts
  outside the frame are zero, as upstream; then resized. Without a record the crop is the tightest
  one holding the box (``object_fill`` 1.0), which is NOT how any model here was trained.

cv2/numpy only. The :class:`Crop` remembers where the input came from, to draw back onto the frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from novum.errors import InputError


@dataclass(frozen=True)
class Crop:
    """A box of the model's aspect ratio in frame pixels (may reach outside the frame)."""

    x0: float
    y0: float
    w: float
    h: float

    @property
    def scale(self) -> float:
        """Input pixels per frame pixel is ``1 / scale``."""
        return self.w

    def to_frame(self, pts_xy: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
        """Map input-pixel (x, y) points to frame pixels."""
        H, W = input_size
        p = np.asarray(pts_xy, dtype=np.float64)
        return np.stack([self.x0 + p[..., 0] * self.w / W, self.y0 + p[..., 1] * self.h / H], -1)

    def rect(self) -> tuple[int, int, int, int]:
        return int(round(self.x0)), int(round(self.y0)), int(round(self.x0 + self.w)), int(round(self.y0 + self.h))


class Framer:
    """Frames -> model inputs of ``input_size`` (H, W); see the module docstring."""

    def __init__(self, input_size: tuple[int, int], roi: tuple[float, float, float, float] | None = None,
                 framing: dict | None = None) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if roi is not None:
            roi = tuple(float(v) for v in roi)  # type: ignore[assignment]
            if len(roi) != 4 or roi[2] <= 0 or roi[3] <= 0:
                raise InputError(f"--roi needs x y w h with w, h > 0, got {list(roi)}")
        self.roi = roi
        framing = framing or {}
        self.object_fill = float(framing.get("object_fill", 1.0))
        if not 0.05 <= self.object_fill <= 1.0:
            raise InputError(f"the model's framing record has object_fill {self.object_fill}, outside 0.05..1; "
                             f"re-export the model with novum-export")
        ox, oy = framing.get("centre_offset", (0.0, 0.0))
        self.centre_offset = (float(ox), float(oy))

    @property
    def aspect(self) -> float:
        """W / H of the model input."""
        return self.input_size[1] / self.input_size[0]

    def crop_for(self, frame_hw: tuple[int, int]) -> Crop:
        fh, fw = frame_hw
        a = self.aspect
        if self.roi is None:
            w = min(fw, fh * a)
            h = w / a
            return Crop((fw - w) / 2, (fh - h) / 2, w, h)
        x, y, rw, rh = self.roi
        if x >= fw or y >= fh or x + rw <= 0 or y + rh <= 0:
            raise InputError(f"--roi {x:g} {y:g} {rw:g} {rh:g} lies outside the {fw}x{fh} frame")
        h = max(rh, rw / a) / self.object_fill     # the box's dominant side fills object_fill of the crop
        w = h * a
        cx = x + rw / 2 - self.centre_offset[0] * w
        cy = y + rh / 2 - self.centre_offset[1] * h
        return Crop(cx - w / 2, cy - h / 2, w, h)

    def roi_inside(self, frame_hw: tuple[int, int]) -> float:
        """The fraction of the ``roi`` box's area inside a frame of ``frame_hw`` (1.0 without a roi)."""
        if self.roi is None:
            return 1.0
        fh, fw = frame_hw
        x, y, rw, rh = self.roi
        iw = max(0.0, min(x + rw, fw) - max(x, 0.0))
        ih = max(0.0, min(y + rh, fh) - max(y, 0.0))
        return iw * ih / (rw * rh)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, Crop]:
        """uint8 BGR frame [h, w, 3] -> (model input [H, W, 3], the crop used)."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        crop = self.crop_for(frame.shape[:2])
        x0, y0, x1, y1 = crop.rect()
        fh, fw = frame.shape[:2]
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
        patch = frame[iy0:iy1, ix0:ix1]
        if (ix0, iy0, ix1, iy1) != (x0, y0, x1, y1):  # zero padding outside the frame, as upstream
            patch = cv2.copyMakeBorder(patch, iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1, cv2.BORDER_CONSTANT, value=0)
        H, W = self.input_size
        interp = cv2.INTER_AREA if patch.shape[1] > W else cv2.INTER_LINEAR
        out = cv2.resize(patch, (W, H), interpolation=interp)
        return np.ascontiguousarray(out), crop

    def paste(self, frame: np.ndarray, image: np.ndarray, crop: Crop) -> np.ndarray:
        """Put an input-sized image (e.g. a part-colour overlay) back over the crop area of ``frame``."""
        x0, y0, x1, y1 = crop.rect()
        fh, fw = frame.shape[:2]
        big = cv2.resize(image, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
        if ix1 > ix0 and iy1 > iy0:
            frame[iy0:iy1, ix0:ix1] = big[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        return frame
