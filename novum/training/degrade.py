"""Photometric degradation for training (``degrade`` in the config), a family held out of the tests.

The evaluation's corruptions (:mod:`novum.data.corruptions`) are additive gaussian noise, gaussian
blur, linear contrast loss and JPEG. Training may degrade images with four other kinds, in the way
ImageNet-C keeps "extra" corruptions apart from its test set, so a corrupted test split still measures
what a model does with a corruption it has not seen:

- ``speckle``: multiplicative noise, ``x * (1 + n)``, n ~ N(0, s), s in [0.08, 0.3];
- ``motion``: a line kernel 3-9 px long at a random angle (a smear, not a gaussian);
- ``pixelate``: area downscale by 2-4 then nearest-neighbour upscale (blocks, not DCT ringing);
- ``gamma``: a power curve (gamma 0.45-2.2) with partial desaturation (a non-linear tone change).

Each chosen image gets one kind at a random strength. All draws come from the torch generator, so
a run is reproducible and resumable.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

KINDS = ("speckle", "motion", "pixelate", "gamma")


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2.0
    dx, dy = np.cos(angle) * c, np.sin(angle) * c
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    return k / k.sum()


def degrade_image(img: np.ndarray, kind: str, u: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """One uint8 HxWx3 image degraded by ``kind``; ``u`` holds three uniform [0, 1) draws (strength,
    shape); ``noise`` a standard-normal HxWx3 field for ``speckle``."""
    x = img.astype(np.float32)
    if kind == "speckle":
        out = x * (1.0 + (0.08 + 0.22 * u[0]) * noise)
    elif kind == "motion":
        length = 3 + 2 * int(u[0] * 4)                    # 3, 5, 7, 9
        out = cv2.filter2D(x, -1, _motion_kernel(length, float(u[1]) * np.pi), borderType=cv2.BORDER_REFLECT)
    elif kind == "pixelate":
        f = 2.0 + 2.0 * float(u[0])
        h, w = img.shape[:2]
        small = cv2.resize(x, (max(1, int(w / f)), max(1, int(h / f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    elif kind == "gamma":
        g = float(np.exp(np.log(0.45) + (np.log(2.2) - np.log(0.45)) * u[0]))
        out = 255.0 * (x / 255.0) ** g
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * (1.0 - 0.6 * float(u[1]))
    else:
        raise ValueError(f"unknown degradation '{kind}'; choose one of {', '.join(KINDS)}")
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def degrade(images: Tensor, prob: float, generator: torch.Generator | None = None) -> Tensor:
    """uint8 [B, H, W, 3] images, each degraded with probability ``prob`` by one random kind (a new
    tensor; the input is not changed). ``prob`` 0 returns the input itself."""
    if prob <= 0:
        return images
    B = images.shape[0]
    pick = torch.rand(B, generator=generator) < prob
    kind = torch.randint(len(KINDS), (B,), generator=generator)
    u = torch.rand(B, 3, generator=generator).numpy()
    if not bool(pick.any()):
        return images
    out = images.clone()
    src = images.cpu().numpy()
    for i in torch.nonzero(pick).flatten().tolist():
        k = KINDS[int(kind[i])]
        noise = torch.randn(src.shape[1:], generator=generator).numpy() if k == "speckle" else None
        out[i] = torch.from_numpy(degrade_image(src[i], k, u[i], noise)).to(out.device)
    return out
