"""Feature-bank updates during training: the momentum update of the vertex rows and the clutter
ring buffer (upstream ``FeatureBank.forward``, docs/upstream.md section 6).

Both are split into a local reduction (sums and counts per class, this rank's noise features) and
an update applied identically on every rank, so that under DistributedDataParallel the reductions
can be all-reduced / all-gathered first and every rank ends with the same bank.
"""
from __future__ import annotations

import torch
from torch import Tensor


def class_sums(kp_features: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per class: the sum over this batch's images of their keypoint features (invisible vertices
    are 0) -> sums [C, max_n, D], and the image count per class -> counts [C] (float)."""
    B, max_n, D = kp_features.shape
    sums = torch.zeros(num_classes, max_n, D, dtype=kp_features.dtype, device=kp_features.device)
    sums.index_add_(0, labels, kp_features)
    counts = torch.bincount(labels, minlength=num_classes).to(kp_features.dtype)
    return sums, counts


@torch.no_grad()
def momentum_update(bank: Tensor, sums: Tensor, counts: Tensor, momentum: float = 0.9) -> None:
    """``bank_c = momentum*bank_c + (1-momentum)*mean_c`` for every class c present (mean over its
    images, upstream's divisor), then its rows L2-renormalised. In place on ``bank`` [C*max_n, D].

    Rows of a vertex seen in none of the class's images (and padding rows) are only rescaled before
    renormalisation, so they keep their direction; absent classes are untouched.
    """
    C, max_n, D = sums.shape
    view = bank.view(C, max_n, D)
    present = counts > 0
    if not bool(present.any()):
        return
    mean = sums[present] / counts[present][:, None, None]
    view[present] = torch.nn.functional.normalize(momentum * view[present] + (1.0 - momentum) * mean, dim=2)


@torch.no_grad()
def push_clutter(clutter: Tensor, features: Tensor, pointer: int) -> int:
    """Write ``features`` [K, D] into the ring ``clutter`` [n, D] starting at ``pointer``, wrapping
    around; returns the next pointer. (Upstream used fixed slots that left the last rows stale.)"""
    n = clutter.shape[0]
    k = features.shape[0]
    features = torch.nn.functional.normalize(features.to(clutter.dtype), dim=1)
    if k >= n:
        clutter.copy_(features[-n:])
        return 0
    idx = (torch.arange(k, device=clutter.device) + pointer) % n
    clutter[idx] = features
    return int((pointer + k) % n)


@torch.no_grad()
def fill_padding_with_clutter(bank: Tensor, clutter: Tensor, valid: Tensor) -> int:
    """Write clutter (background) features into the bank's padding rows; returns how many rows.

    The matching head lets padding rows compete in the per-pixel argmax and a pixel they win votes
    for no class. Upstream leaves them random; holding learned background features there turns them
    into a background sink, so clutter pixels stop voting. Training never reads padding rows (they
    are masked out of the loss and skipped by the bank update), so this only changes inference.
    """
    pad = (~valid).nonzero(as_tuple=True)[0]
    if len(pad) == 0 or clutter.shape[0] == 0:
        return 0
    src = torch.arange(len(pad), device=clutter.device) % clutter.shape[0]
    bank[pad] = torch.nn.functional.normalize(clutter[src].to(bank.dtype), dim=1)
    return int(len(pad))
