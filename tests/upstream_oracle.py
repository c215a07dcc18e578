"""A direct transcription of upstream's classification loop (src/inference.py, spec section 4).

Kept verbatim in structure (one image, crop, one big matrix, per-class masked sums) so the
block-wise head can be checked against it.
"""
from __future__ import annotations

import numpy as np
import torch


def upstream_scores(F: torch.Tensor, memory: torch.Tensor, n_list, max_n: int, box=None) -> np.ndarray:
    """F [1, 128, h, w] unit features; memory [C*max_n + clutter, 128]; box [y0, y1, x0, x1] pixels."""
    if box is not None:
        y0, y1, x0, x1 = (int(v) for v in box)
        F = F[..., y0 // 8: y1 // 8, x0 // 8: x1 // 8]
    C = len(n_list)
    B = memory[0: C * max_n]
    S = B @ F.reshape(F.shape[1], -1)
    S = S / 2 + 0.5
    val, idx = torch.max(S, dim=0)
    score = np.zeros(C)
    for c in range(C):
        keep = (idx >= c * max_n) & (idx < c * max_n + n_list[c])
        score[c] = (torch.sum(val[keep]) / B.shape[0]).item()
    return score


def upstream_softmax(score: np.ndarray) -> np.ndarray:
    return np.exp(score) / np.sum(np.exp(score))
