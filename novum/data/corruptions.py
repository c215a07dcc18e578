"""Common corruptions (ImageNet-C style, severity 1..5): gaussian noise, blur, contrast, JPEG."""
from __future__ import annotations

import cv2
import numpy as np

from novum.errors import InputError

CORRUPTIONS = ("noise", "blur", "contrast", "jpeg")
_NOISE = (8.0, 13.0, 20.0, 28.0, 40.0)        # gaussian sigma, 0..255 units
_BLUR = (0.7, 1.1, 1.6, 2.2, 3.0)             # gaussian sigma in pixels at 128 px height
_CONTRAST = (0.55, 0.42, 0.3, 0.2, 0.12)      # kept fraction of the contrast
_JPEG = (25, 18, 15, 10, 7)                   # JPEG quality


def check(kind: str | None, severity: int) -> None:
    if kind is not None and kind not in CORRUPTIONS:
        raise InputError(f"unknown corruption '{kind}'; choose one of {', '.join(CORRUPTIONS)}")
    if not 1 <= int(severity) <= 5:
        raise InputError(f"corruption severity {severity} is out of range; use 1..5")


def corrupt(image: np.ndarray, kind: str, severity: int = 3, rng: np.random.Generator | None = None) -> np.ndarray:
    """Apply one corruption to a uint8 BGR image; returns a new uint8 image of the same shape."""
    check(kind, severity)
    s = int(severity) - 1
    rng = rng if rng is not None else np.random.default_rng(0)
    img = image.astype(np.float32)
    if kind == "noise":
        out = img + rng.normal(0, _NOISE[s], img.shape).astype(np.float32)
    elif kind == "blur":
        sigma = _BLUR[s] * image.shape[0] / 128.0
        out = cv2.GaussianBlur(img, (0, 0), sigma)
    elif kind == "contrast":
        mean = img.mean(axis=(0, 1), keepdims=True)
        out = (img - mean) * _CONTRAST[s] + mean
    else:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG[s]])
        if not ok:
            raise InputError("JPEG encoding failed; check the image is uint8 BGR")
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
