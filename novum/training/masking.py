"""Block-mosaic masking: the synthetic occlusion NOVUM's training may use (``masking`` in the config).

A masked image has a random share of the 16 x 16 px blocks over its object box replaced by flat
random colours with pixel noise: a blocky mosaic, on purpose unlike the occluders the evaluation
uses (the generator's textured ellipses, rotated rectangles, polygons and rendered objects, and the
held-out metaball family of ``benchmarks/occlusion_independent.py``), so that a model is never
tested on the family it was trained against.

For NOVUM the masked cells are what an occluder is to the head: keypoints under them are not
visible (no vertex target) and their features are drawn as clutter, so the features of the parts
that stay visible must keep matching their vertices while the occluder matches clutter.
"""
from __future__ import annotations

import torch
from torch import Tensor

BLOCK = 16   # px: 2 x 2 feature cells at stride 8


def block_masks(boxes: Tensor, image_size: tuple[int, int], prob: float, frac: tuple[float, float],
                generator: torch.Generator | None = None) -> Tensor:
    """Bool [B, H/BLOCK, W/BLOCK]: blocks to mask. Each image is masked with probability ``prob``;
    then each block that overlaps its object box [y0, y1, x0, x1] is masked with a probability drawn
    in ``frac`` for that image."""
    B = boxes.shape[0]
    H, W = image_size
    gh, gw = -(-H // BLOCK), -(-W // BLOCK)
    b = boxes.to(torch.int64).cpu()
    rows = torch.arange(gh)[None, :] * BLOCK
    cols = torch.arange(gw)[None, :] * BLOCK
    in_r = (rows + BLOCK > b[:, 0:1]) & (rows < b[:, 1:2])                   # [B, gh]
    in_c = (cols + BLOCK > b[:, 2:3]) & (cols < b[:, 3:4])                   # [B, gw]
    over = in_r[:, :, None] & in_c[:, None, :]
    u = torch.rand(B, 2, generator=generator)
    p = frac[0] + (frac[1] - frac[0]) * u[:, 1]
    pick = torch.rand(B, gh, gw, generator=generator) < p[:, None, None]
    return over & pick & (u[:, 0] < prob)[:, None, None]


def apply_mosaic(images: Tensor, blocks: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """uint8 [B, H, W, 3] images with the masked blocks filled (a new tensor)."""
    B, H, W, _ = images.shape
    if not bool(blocks.any()):
        return images
    colour = torch.rand(B, blocks.shape[1], blocks.shape[2], 3, generator=generator) * 255
    fill = colour.repeat_interleave(BLOCK, 1).repeat_interleave(BLOCK, 2)[:, :H, :W]
    fill = fill + torch.randn(B, H, W, 3, generator=generator) * 12
    m = blocks.repeat_interleave(BLOCK, 1).repeat_interleave(BLOCK, 2)[:, :H, :W].to(images.device)
    out = torch.where(m[..., None], fill.round().clamp(0, 255).to(images.dtype).to(images.device), images)
    return out


def cell_mask(blocks: Tensor, feature_size: tuple[int, int], stride: int) -> Tensor:
    """Bool [B, h*w]: feature cells inside masked blocks."""
    k = BLOCK // stride
    h, w = feature_size
    cells = blocks.repeat_interleave(k, 1).repeat_interleave(k, 2)[:, :h, :w]
    return cells.reshape(blocks.shape[0], h * w)


def hidden_keypoints(kp: Tensor, cells: Tensor, feature_size: tuple[int, int], stride: int) -> Tensor:
    """Bool [B, max_n]: keypoints (row, col) [B, max_n, 2] that fall in a masked cell."""
    h, w = feature_size
    r = torch.div(kp[..., 0], stride, rounding_mode="floor").clamp(0, h - 1)
    c = torch.div(kp[..., 1], stride, rounding_mode="floor").clamp(0, w - 1)
    return torch.gather(cells, 1, (r * w + c).long())
