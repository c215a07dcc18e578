"""The matching head: the one place the NOVUM classification math lives.

Upstream (docs/upstream.md section 4), per image and pixel:
``S = bank @ F / 2 + 0.5`` over ALL C*max_n bank rows (padding rows included, clutter rows not),
``val, idx = max(S)``; class c's score is the sum of ``val`` over pixels whose winning row is one of
class c's real (non-padding) rows, divided by the number of bank rows C*max_n.

Here the same result is computed class block by class block: each block's per-pixel maximum is
taken right after its [max_n x pixels] product, so the full [C*max_n x pixels] matrix never exists
(1/C of its memory). The per-block maxima are then reduced over blocks with first-max tie-breaking,
which gives the same winner as the global argmax. Every op here exports to ONNX (MatMul,
ReduceMax, ArgMax, Gather, Equal), so the exported graph computes exactly this.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class HeadOutput:
    scores: Tensor        # [B, C] float32: upstream class scores (before any softmax)
    vertex: Tensor        # [B, h, w] int32: winning bank row c*max_n + v, or -1 (padding row / outside box)
    vertex_score: Tensor  # [B, h, w] float32: the winning similarity (cos/2 + 0.5)


def box_mask(boxes: Tensor, h: int, w: int, stride: int = 8) -> Tensor:
    """[B, h, w] bool mask of the feature cells upstream keeps for a box [y0, y1, x0, x1] (pixels):
    rows ``y0//stride : y1//stride``, cols ``x0//stride : x1//stride``."""
    b = boxes.to(torch.int64)
    rows = torch.arange(h, device=boxes.device)
    cols = torch.arange(w, device=boxes.device)
    y0, y1, x0, x1 = (torch.div(b[:, i], stride, rounding_mode="floor") for i in range(4))
    r = (rows[None] >= y0[:, None]) & (rows[None] < y1[:, None])
    c = (cols[None] >= x0[:, None]) & (cols[None] < x1[:, None])
    return r[:, :, None] & c[:, None, :]


def block_maxima(features: Tensor, bank: Tensor, num_classes: int, max_n: int) -> tuple[Tensor, Tensor]:
    """Per class block: max over the block's rows of ``bank_c @ F / 2 + 0.5`` and its local argmax.

    features [B, D, P] (P pixels), bank [C*max_n, D] -> values, local indices, each [B, C, P].
    """
    vals, idxs = [], []
    for c in range(num_classes):
        s = torch.matmul(bank[c * max_n:(c + 1) * max_n], features)  # [B, max_n, P]
        s = s / 2 + 0.5
        v, i = torch.max(s, dim=1)
        vals.append(v)
        idxs.append(i)
    return torch.stack(vals, 1), torch.stack(idxs, 1)


def match(features: Tensor, bank: Tensor, n_list: tuple[int, ...] | list[int], max_n: int,
          boxes: Tensor | None = None, stride: int = 8) -> HeadOutput:
    """Score every class for a batch of unit feature maps [B, D, h, w] (see module docstring)."""
    B, D, h, w = features.shape
    C = len(n_list)
    f = features.reshape(B, D, h * w)
    vals, idxs = block_maxima(f, bank, C, max_n)                  # [B, C, P]
    best_val, best_cls = torch.max(vals, dim=1)                    # first max wins ties, as a global argmax
    local = torch.gather(idxs, 1, best_cls[:, None]).squeeze(1)    # [B, P]
    n = torch.tensor(list(n_list), dtype=local.dtype, device=local.device)
    valid = local < n[best_cls]                                    # padding rows vote for no class
    if boxes is not None:
        valid = valid & box_mask(boxes, h, w, stride).reshape(B, h * w)
    onehot = best_cls[:, None, :] == torch.arange(C, device=f.device)[None, :, None]   # [B, C, P]
    weight = (onehot & valid[:, None, :]).to(best_val.dtype)
    scores = (weight * best_val[:, None, :]).sum(-1) / float(C * max_n)
    vertex = torch.where(valid, best_cls * max_n + local, torch.full_like(local, -1))
    return HeadOutput(scores.float(), vertex.to(torch.int32).reshape(B, h, w),
                      best_val.float().reshape(B, h, w))


def match_dense(features: Tensor, bank: Tensor, n_list, max_n: int, boxes: Tensor | None = None,
                stride: int = 8) -> HeadOutput:
    """The same result from one [C*max_n x pixels] matrix: the reference the block-wise head is
    tested and benchmarked against (memory grows with C*max_n*h*w)."""
    B, D, h, w = features.shape
    C = len(n_list)
    s = torch.matmul(bank, features.reshape(B, D, h * w)) / 2 + 0.5    # [B, C*max_n, P]
    val, idx = torch.max(s, dim=1)
    cls, local = idx // max_n, idx % max_n
    valid = local < torch.tensor(list(n_list), device=idx.device)[cls]
    if boxes is not None:
        valid = valid & box_mask(boxes, h, w, stride).reshape(B, h * w)
    scores = torch.zeros(B, C, dtype=val.dtype, device=val.device)
    scores.scatter_add_(1, cls * valid, val * valid)
    vertex = torch.where(valid, idx, torch.full_like(idx, -1))
    return HeadOutput(scores / float(C * max_n), vertex.to(torch.int32).reshape(B, h, w), val.reshape(B, h, w))


class MatchingHead(nn.Module):
    """nn.Module wrapper around :func:`match` with the bank layout fixed."""

    def __init__(self, n_list: tuple[int, ...], max_n: int, stride: int = 8) -> None:
        super().__init__()
        self.n_list = tuple(n_list)
        self.max_n = int(max_n)
        self.stride = stride

    def forward(self, features: Tensor, bank: Tensor, boxes: Tensor | None = None) -> HeadOutput:
        return match(features, bank, self.n_list, self.max_n, boxes, self.stride)
