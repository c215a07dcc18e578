"""The NOVUM contrastive objective (docs/upstream.md section 6), without upstream's defects.

For every visible vertex k of an image of class y, with ``x_k`` the unit feature at its cell:

``logits = x_k @ memory.T / T + M`` over all ``C*max_n + n_clutter`` memory rows, target row ``y*max_n + k``;
``M`` = -inf for same-class vertices whose 2D keypoints lie within ``thr`` pixels of vertex k (k itself
kept) and for every padding row, ``log(clutter_weight)`` for clutter rows (upstream subtracts
``-log(0.005)``), 0 for the other classes' vertex rows (they stay negatives).
``loss = mean CE over visible vertices + noise_weight * mean(noise @ vertex_rows.T)``.

With ``clutter_loss`` > 0 a third term teaches the features to tell object from clutter, as the
head's clutter sink needs at inference (a pixel whose best match is a clutter row votes for no class):
for every sampled background feature ``n``, ``-log(sum_clutter exp(n.c/T) / sum_all exp(n.r/T))``
over the clutter rows and the real vertex rows, i.e. a background cell must match clutter better than
any object vertex. Upstream has no such term (``clutter_loss`` = 0 reproduces its objective).

With ``class_loss`` > 0 a class-level term is added for the same visible vertices: all real rows of
the image's class are positives, ``-log(sum_class exp(x.r/T) / sum_all exp(x.r/T))`` (clutter rows
weighted as above). The head votes with the winning row's class, so what a cell must get right is
its class, not its exact vertex; the vertex term keeps the finer correspondence pose needs.

With ``consistency`` > 0 (:func:`view_consistency`) each image is seen twice, clean and with a
synthetic occluder, and the features of object cells the occluder leaves visible are pulled towards
the clean view's (``1 - cos``, the clean side detached): a visible part keeps its feature, and so its
vote, whatever hides the rest. Both views also get the terms above.

With ``vote_loss`` > 0 (:func:`vote_term`) the whole-image decision the head makes is trained too:
every cell casts a soft vote, a softmax over its best match in each class and its best clutter match
(``/T``), the class shares are the cells' mean votes for each class, renormalised over the classes, and
the term is their cross-entropy with the image's label. Cells that match clutter vote for no class,
as the padding (clutter) rows make them do in the head.

Differences from upstream, on purpose: the mask is built fresh per batch (upstream's persistent
``zeros`` buffer kept stale blocks), padded keypoints are never gathered (upstream gathered at -1),
and the background term averages over real vertex rows only (padding rows are fixed random vectors).
Features come from the bias-free projection, the same path inference uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LossOutput:
    loss: Tensor            # scalar, differentiable
    contrast: Tensor        # scalar, the InfoNCE part (detached)
    background: Tensor      # scalar, the noise term before its weight (detached)
    clutter: Tensor         # scalar, the clutter-vs-object term before its weight (detached; 0 when off)
    kp_features: Tensor     # [B, max_n, D] detached features at the keypoint cells (0 where not visible)
    noise_features: Tensor  # [B, n_noise, D] detached background features
    accuracy: float         # with_accuracy: share of (the first 256) visible vertices whose own row wins, else nan


def cell_index(kp: Tensor, feature_size: tuple[int, int], stride: int) -> Tensor:
    """Flat feature-cell index (row//stride)*w + col//stride of (row, col) keypoints [..., 2], clamped."""
    h, w = feature_size
    r = torch.div(kp[..., 0], stride, rounding_mode="floor").clamp(0, h - 1)
    c = torch.div(kp[..., 1], stride, rounding_mode="floor").clamp(0, w - 1)
    return (r * w + c).long()


def gather_cells(features: Tensor, idx: Tensor) -> Tensor:
    """Features [B, D, h, w] at flat cells idx [B, K] -> [B, K, D]."""
    B, D = features.shape[:2]
    f = features.reshape(B, D, -1)
    return torch.gather(f, 2, idx[:, None, :].expand(B, D, idx.shape[1])).transpose(1, 2)


def sample_noise_cells(background: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` distinct cells per image, drawn among background cells (bool [B, h*w]); images with
    fewer background cells fall back to any cell (tiny weight elsewhere)."""
    weights = background.float() + 1e-6
    return torch.multinomial(weights, n, replacement=False, generator=generator)


def subsample_visible(visible: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Keep at most ``k`` randomly chosen True entries per row of ``visible`` [B, n]."""
    r = torch.rand(visible.shape, generator=generator).to(visible.device)
    r = torch.where(visible, r, torch.full_like(r, 2.0))
    kth = torch.sort(r, dim=1).values[:, min(k, visible.shape[1]) - 1: min(k, visible.shape[1])]
    return visible & (r <= kth)


def near_same_class(kp: Tensor, n_real: Tensor, thr: float) -> Tensor:
    """Bool [B, max_n, max_n]: vertex j lies within ``thr`` px of vertex k (j != k, both real vertices)."""
    B, max_n, _ = kp.shape
    p = kp.float()
    d2 = ((p[:, :, None, :] - p[:, None, :, :]) ** 2).sum(-1)
    real = torch.arange(max_n, device=kp.device)[None] < n_real[:, None]          # [B, max_n]
    near = (d2 < thr * thr) & real[:, :, None] & real[:, None, :]
    near &= ~torch.eye(max_n, dtype=torch.bool, device=kp.device)[None]
    return near


def base_mask(n_list: tuple[int, ...], max_n: int, n_clutter: int, clutter_weight: float,
              device: torch.device | str = "cpu") -> Tensor:
    """Additive logit mask [C*max_n + n_clutter] shared by every vertex: -inf on padding rows,
    log(clutter_weight) on clutter rows, 0 on real vertex rows."""
    n_tab = torch.tensor(n_list, device=device)
    rows = len(n_list) * max_n
    local = torch.arange(max_n, device=device)
    padding = (local[None, :] >= n_tab[:, None]).reshape(rows)
    base = torch.zeros(rows + n_clutter, device=device)
    base[:rows][padding] = float("-inf")
    base[rows:] = math.log(clutter_weight)
    return base


def logit_mask(kp: Tensor, labels: Tensor, select: Tensor, n_list: tuple[int, ...], max_n: int,
               n_clutter: int, thr: float, clutter_weight: float = 0.005) -> Tensor:
    """Additive mask [N, C*max_n + n_clutter] for the N selected (image, vertex) pairs (``select``
    bool [B, max_n], row-major order): -inf = excluded, log(clutter_weight) on clutter rows."""
    device = kp.device
    n_tab = torch.tensor(n_list, device=device)
    local = torch.arange(max_n, device=device)
    base = base_mask(n_list, max_n, n_clutter, clutter_weight, device)
    near = near_same_class(kp, n_tab[labels], thr)                                  # [B, max_n, max_n]
    b_idx, _ = select.nonzero(as_tuple=True)
    near_sel = near[select]                                                         # [N, max_n]
    mask = base.expand(near_sel.shape[0], -1).clone()
    cols = labels[b_idx][:, None] * max_n + local[None, :]                          # [N, max_n]
    block = torch.gather(mask, 1, cols).masked_fill(near_sel, float("-inf"))
    mask.scatter_(1, cols, block)
    return mask


def novum_loss(features: Tensor, kp: Tensor, visible: Tensor, labels: Tensor, background: Tensor,
               memory: Tensor, n_list: tuple[int, ...], max_n: int, stride: int, thr: float,
               temperature: float = 0.07, clutter_weight: float = 0.005, noise_weight: float = 0.1,
               n_noise: int = 5, generator: torch.Generator | None = None,
               with_accuracy: bool = False, max_vertices: int | None = None,
               clutter_loss: float = 0.0, occluded: Tensor | None = None, class_loss: float = 0.0) -> LossOutput:
    """The training objective on a batch of unit feature maps [B, D, h, w] (see module docstring).

    ``memory`` is ``[C*max_n + n_clutter, D]`` as it was before this batch's bank update (no grad);
    ``kp`` int [B, max_n, 2] (row, col) padded with anything, ``visible`` bool [B, max_n] (False on
    padding), ``background`` bool [B, h*w] cells where noise features may be drawn. ``occluded``
    bool [B, h*w] (synthetic masking, :mod:`novum.training.masking`): ``n_noise`` more cells per
    image are drawn there and count as clutter in the clutter term (not in the clutter bank).
    """
    B, D, h, w = features.shape
    C = len(n_list)
    rows = C * max_n
    n_clutter = memory.shape[0] - rows
    idx = cell_index(kp, (h, w), stride)                                  # [B, max_n]
    x = gather_cells(features, idx)                                       # [B, max_n, D]
    noise_idx = sample_noise_cells(background, n_noise, generator)
    noise = gather_cells(features, noise_idx.to(features.device))         # [B, n_noise, D]
    memory = memory.detach()

    sel = visible.bool()
    if max_vertices is not None:
        sel = subsample_visible(sel, max_vertices, generator)
    xs = x[sel]                                                           # [N, D]
    mask = logit_mask(kp, labels, sel, n_list, max_n, n_clutter, thr, clutter_weight)
    logits = torch.addmm(mask, xs, memory.T, alpha=1.0 / temperature)   # xs @ memory.T / T + mask
    b_idx, k_idx = sel.nonzero(as_tuple=True)
    target = labels[b_idx] * max_n + k_idx
    if xs.shape[0]:
        contrast = torch.nn.functional.cross_entropy(logits, target)
        if class_loss > 0:
            base = base_mask(n_list, max_n, n_clutter, clutter_weight, memory.device)
            raw = torch.addmm(base.expand(xs.shape[0], -1), xs, memory.T, alpha=1.0 / temperature)
            own = torch.full_like(raw, float("-inf"))
            cols = labels[b_idx][:, None] * max_n + torch.arange(max_n, device=raw.device)[None]
            real = torch.arange(max_n, device=raw.device)[None] < torch.tensor(n_list, device=raw.device)[labels[b_idx]][:, None]
            own.scatter_(1, cols, torch.gather(raw, 1, cols).masked_fill(~real, float("-inf")))
            contrast = contrast + class_loss * (torch.logsumexp(raw, 1) - torch.logsumexp(own, 1)).mean()
        acc = float((logits[:256].detach().argmax(1) == target[:256]).float().mean()) if with_accuracy else float("nan")
    else:  # no visible vertex in the batch: only the background term trains
        contrast = features.sum() * 0.0
        acc = float("nan")
    n_tab = torch.tensor(n_list, device=memory.device)
    valid = (torch.arange(max_n, device=memory.device)[None] < n_tab[:, None]).reshape(rows)
    nf = noise.reshape(-1, D)
    if occluded is not None and clutter_loss > 0 and bool(occluded.any()):
        occ_idx = sample_noise_cells(occluded, n_noise, generator).to(features.device)
        real = torch.gather(occluded.to(features.device), 1, occ_idx)          # images without masked cells drop out
        nf = torch.cat([nf, gather_cells(features, occ_idx)[real]], 0)
    vertex_sim = nf @ memory[:rows][valid].T
    background_term = vertex_sim[: B * noise.shape[1]].mean()
    loss = contrast + noise_weight * background_term
    clutter_term = torch.zeros((), device=features.device)
    if clutter_loss > 0 and n_clutter > 0:
        clutter_sim = nf @ memory[rows:].T
        every = torch.cat([vertex_sim, clutter_sim], 1) / temperature
        clutter_term = (torch.logsumexp(every, 1) - torch.logsumexp(clutter_sim / temperature, 1)).mean()
        loss = loss + clutter_loss * clutter_term
    kp_feat = (x * visible.bool()[..., None]).detach()
    return LossOutput(loss, contrast.detach(), background_term.detach(), clutter_term.detach(), kp_feat,
                      noise.detach(), acc)


def view_consistency(clean: Tensor, occluded_view: Tensor, keep: Tensor) -> Tensor:
    """Mean ``1 - cos`` between the occluded view's features and the clean view's (detached), over the
    cells ``keep`` (bool [B, h*w]: object cells no occluder covers); features [B, D, h, w]."""
    B, D = clean.shape[:2]
    cos = torch.nn.functional.cosine_similarity(occluded_view.reshape(B, D, -1), clean.detach().reshape(B, D, -1), dim=1)
    k = keep.to(cos.device)
    if not bool(k.any()):
        return occluded_view.sum() * 0.0
    return (1.0 - cos)[k].mean()


def vote_term(features: Tensor, memory: Tensor, n_list: tuple[int, ...], max_n: int, labels: Tensor,
              temperature: float) -> Tensor:
    """Cross-entropy of the image label against soft whole-image vote shares (see module docstring);
    features [B, D, h, w] (grad), memory [C*max_n + n_clutter, D] (no grad)."""
    B, D = features.shape[:2]
    C = len(n_list)
    rows = C * max_n
    f = features.reshape(B, D, -1)
    memory = memory.detach()
    with torch.no_grad():   # each class's best real row per cell, block by block (as the head does)
        win = []
        for c in range(C):
            s = torch.matmul(memory[c * max_n:c * max_n + n_list[c]], f)           # [B, n_c, P]
            win.append(s.argmax(1) + c * max_n)
        win = torch.stack(win, 1)                                                # [B, C, P] row indices
    # the similarity to the winning rows, with the gradient to the features: [B, C, P]
    per_class = (memory[win] * f.transpose(1, 2)[:, None]).sum(-1)
    if memory.shape[0] > rows:
        sink = torch.matmul(memory[rows:], f).amax(1, keepdim=True)              # [B, 1, P]
        per_class = torch.cat([per_class, sink], 1)
    votes = torch.softmax(per_class / temperature, 1)[:, :C].mean(2)           # [B, C]
    share = votes / votes.sum(1, keepdim=True).clamp_min(1e-12)
    return torch.nn.functional.nll_loss(torch.log(share.clamp_min(1e-12)), labels)
