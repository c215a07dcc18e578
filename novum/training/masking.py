"""Synthetic occlusion for training (``masking`` / ``occluders`` in the config).

Two families, both on purpose unlike the occluders the evaluation uses (the generator's textured
ellipses, rotated rectangles, polygons and rendered round/box distractors in
:mod:`novum.data.occluders`, and the metaball family of ``benchmarks/occlusion_independent.py``), so
that a model is never tested on the family it was trained against:

- block mosaic (``masking``): 16 px blocks over the object replaced by flat random colours;
- patches (``occluders``): :class:`OccluderPatches`, angular rendered things (irregular prisms and
  planks, :func:`novum.data.objects.background_object`) and thick 2D strokes, filled with smooth
  colour fields, pasted over the object.

In the mosaic, each image draws the share of its object-box blocks to replace (``masking_frac``),
and the blocks get flat random colours with pixel noise.

For NOVUM the masked or covered cells are what an occluder is to the head: keypoints under them are not
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


class OccluderPatches:
    """A fixed, seeded set of RGBA occluder patches ([n, S, S, 3] premultiplied BGR, [n, S, S] alpha)
    and the paste step that puts 1-2 of them over each chosen image's object box."""

    def __init__(self, n: int = 192, size: int = 64, seed: int = 0) -> None:
        import numpy as np

        from novum.data.backgrounds import smooth_noise
        from novum.data.objects import background_object
        from novum.data.render import compile_shape, render

        rng = np.random.default_rng([seed, 777])
        rgbs, alphas = [], []
        for i in range(n):
            colour = (rng.uniform(0, 255, 3) + smooth_noise(rng, size, size, int(rng.integers(2, 8)), 3)
                      * rng.uniform(20, 80)).astype(np.float32)
            if i % 2 == 0:   # a rendered angular thing
                model = compile_shape(background_object(rng))
                pose = np.array([rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(-10, 50)), 0.0, 5.0])
                light = rng.normal(0, 0.5, 3) + np.array([0, 0, 1.0])
                rgb, a = render(model, pose, 3000.0 * size / 640 * 2.2, (size, size), light / np.linalg.norm(light),
                                ambient=rng.uniform(0.3, 0.6))
                shade = rgb.mean(-1, keepdims=True) / 128.0
                rgb = np.clip(colour * shade, 0, 255) * a[..., None]
            else:            # thick strokes: a random polyline, 1-3 of them
                import cv2
                a = np.zeros((size, size), np.float32)
                for _ in range(int(rng.integers(1, 4))):
                    pts = rng.uniform(0, size, (int(rng.integers(2, 5)), 2)).astype(np.int32)
                    cv2.polylines(a, [pts], False, 1.0, int(rng.integers(size // 10, size // 4)), cv2.LINE_AA)
                rgb = colour * a[..., None]
            rgbs.append(rgb.astype(np.float32))
            alphas.append(a.astype(np.float32))
        self.rgb = np.stack(rgbs)
        self.alpha = np.stack(alphas)

    def paste(self, images: Tensor, boxes: Tensor, prob: float, generator: torch.Generator | None = None,
              ) -> tuple[Tensor, Tensor]:
        """(images with occluders, bool [B, H, W] occluder mask); each image is occluded with ``prob``."""
        import cv2
        import numpy as np

        B, H, W, _ = images.shape
        out = images.cpu().numpy().astype(np.float32)
        mask = np.zeros((B, H, W), bool)
        u = torch.rand(B, 8, generator=generator).numpy()
        pick = torch.randint(len(self.rgb), (B, 2), generator=generator).numpy()
        for b in range(B):
            if u[b, 0] >= prob:
                continue
            y0, y1, x0, x1 = (int(v) for v in boxes[b].tolist())
            bh, bw = max(8, y1 - y0), max(8, x1 - x0)
            for k in range(1 + int(u[b, 1] < 0.4)):
                side = int(max(8, np.sqrt(bh * bw) * (0.5 + 0.9 * u[b, 2 + k])))
                rgb = cv2.resize(self.rgb[pick[b, k]], (side, side), interpolation=cv2.INTER_LINEAR)
                a = cv2.resize(self.alpha[pick[b, k]], (side, side), interpolation=cv2.INTER_LINEAR)
                cy = int(y0 + u[b, 4 + k] * bh) - side // 2
                cx = int(x0 + u[b, 6 + k] * bw) - side // 2
                ys, xs = slice(max(0, cy), min(H, cy + side)), slice(max(0, cx), min(W, cx + side))
                if ys.stop <= ys.start or xs.stop <= xs.start:
                    continue
                py, px = slice(ys.start - cy, ys.stop - cy), slice(xs.start - cx, xs.stop - cx)
                aa = a[py, px][..., None]
                out[b, ys, xs] = out[b, ys, xs] * (1 - aa) + rgb[py, px]
                mask[b, ys, xs] |= a[py, px] > 0.5
        res = torch.from_numpy(np.clip(np.round(out), 0, 255).astype(np.uint8)).to(images.device)
        return res, torch.from_numpy(mask)


def pixel_cells(mask: Tensor, feature_size: tuple[int, int], stride: int) -> Tensor:
    """Bool [B, h*w]: cells more than half covered by a pixel mask [B, H, W]."""
    h, w = feature_size
    m = mask[:, : h * stride, : w * stride].float()
    cov = m.reshape(m.shape[0], h, stride, w, stride).mean((2, 4))
    return (cov > 0.5).reshape(m.shape[0], h * w)
