"""Optional per-image input normalisation, applied inside the network (so the exported graph has it).

``none`` (default, upstream): the normalised image goes in as it is.
``image``: each channel minus its image mean, divided by the image's standard deviation (one for all
channels, so colours keep their ratios). A linear contrast change about any per-channel centre and a
brightness shift leave the result unchanged.
``local``: the same over about a ``LOCAL_WINDOW`` x ``LOCAL_WINDOW`` box around each pixel,
so the statistics a cell's input is scaled by come from about its own receptive field, not from an
occluder elsewhere in the frame.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from novum.config import INPUT_NORMS

LOCAL_WINDOW = 28          # px at the network's input (the 2-stage receptive field is about 100 px)
LOCAL_BLOCK = 4            # px: the statistics are pooled over blocks of this size, then interpolated
IMAGE_EPS = 1e-3           # in units of the normalised image (one grey level is about 0.017)
LOCAL_EPS = 1e-2           # a little over half a grey level: flat patches stay flat


def normalise_input(x: Tensor, mode: str) -> Tensor:
    """[B, 3, H, W] normalised images -> the same, contrast-normalised per ``mode``."""
    if mode == "none":
        return x
    if mode == "image":
        c = x - x.mean(dim=(2, 3), keepdim=True)
        return c / (c.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + IMAGE_EPS)
    if mode == "local":
        c = x - _box_mean(x)
        var = _box_mean(c * c).mean(dim=1, keepdim=True)   # of the centred image: no cancellation in fp16
        return c / (var.sqrt() + LOCAL_EPS)
    raise ValueError(f"input_norm must be one of {INPUT_NORMS} (got {mode!r})")


def _box_mean(x: Tensor) -> Tensor:
    """Mean over about ``LOCAL_WINDOW`` px around each pixel, cut at the border: means of
    ``LOCAL_BLOCK`` x ``LOCAL_BLOCK`` blocks, their mean over ``LOCAL_WINDOW // LOCAL_BLOCK`` blocks
    around each block (each divides by its own count inside the image), bilinear back to pixels.
    Linear in ``x``, so the contrast invariance holds exactly; a tenth of a full-resolution box's cost."""
    b = LOCAL_BLOCK
    n = LOCAL_WINDOW // b
    m = F.avg_pool2d(x, b, stride=b, ceil_mode=True)
    m = F.avg_pool2d(m, n, stride=1, padding=n // 2, count_include_pad=False)
    return F.interpolate(m, size=x.shape[2:], mode="bilinear", align_corners=False)
