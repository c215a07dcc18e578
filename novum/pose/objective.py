"""Render-and-compare objectives (docs/upstream.md sections 5.5-5.6, 11).

``nemo`` (default): per pixel the dot product ``obj = <rendered, feature>`` (0 where nothing is
rendered), ``loss = 1 - mean(obj)``; with clutter, ``clu`` = the pixel's clutter score and
``loss = 1 - (mean(max(obj, clu)) - mean(clu))`` (NeMo's ``loss_fun``): a pixel that looks more like
clutter than like the rendered object costs nothing, so occluders and background do not pull the pose.
The clutter score is ``<mean clutter feature, feature>`` (NeMo) when one clutter vector is given, or
the best match over the clutter rows (``max_k <clutter_k, feature>``: the separation the matching
head's clutter sink makes) when a [K, D] clutter bank is given.

``upstream``: NOVUM's inference.py computes ``obj = sum(proj * F_crop, dim=0)`` on a
``[1, D, h, w]`` map, i.e. it sums over the singleton *batch* axis, so ``obj`` is the ``[D, h, w]``
per-channel product instead of a per-pixel dot product. Without clutter that is the NeMo loss
divided by D (same argmin; Adam is almost scale-invariant); with clutter a per-pixel cosine is
compared against per-channel products, which is semantically broken but is what upstream ran.
Kept for exact comparisons only.

Interpolation is linear, so ``<sum_i w_i f_i, F_p> = sum_i w_i <f_i, F_p>``: with the vertex x
pixel similarity ``S = feats @ F`` computed once per image, the NeMo objective of any view needs
only the fragments (covered pixel, face vertices, barycentrics), never a rendered feature map.
"""
from __future__ import annotations

import torch
from torch import Tensor

OBJECTIVES = ("nemo", "upstream")


class Objective:
    """The loss of views of one class against one feature map (restricted to an optional box)."""

    def __init__(self, feats: Tensor, fmap: Tensor, mask: Tensor, kind: str = "nemo",
                 clutter: Tensor | None = None) -> None:
        if kind not in OBJECTIVES:
            raise ValueError(f"unknown objective {kind!r}; expected one of {OBJECTIVES}")
        D, h, w = fmap.shape
        self.kind, self.size, self.D = kind, (h, w), D
        self.feats = feats                                   # [V, D]
        self.F = fmap.reshape(D, h * w)                      # [D, P]
        self.mask = mask.reshape(-1)                         # bool [P]
        self.n = int(self.mask.sum())
        self.S = feats @ self.F                              # [V, P]
        if clutter is None:
            self.clu = None
        else:   # one vector (NeMo's mean) or a bank [K, D] (best clutter match per pixel)
            self.clu = (clutter.reshape(-1, D) @ self.F).max(0).values                  # [P]

    @property
    def needs_maps(self) -> bool:
        """True only for upstream + clutter, which needs the rendered channels themselves."""
        return self.kind == "upstream" and self.clu is not None

    def pixel_obj(self, pix: Tensor, vidx: Tensor, bary: Tensor) -> Tensor:
        """<rendered, feature> at each covered pixel [K]."""
        return (bary * self.S[vidx, pix[:, None]]).sum(-1)

    def loss(self, pix: Tensor, vidx: Tensor, bary: Tensor) -> Tensor:
        """Loss of one view given its fragments (scalar tensor, differentiable through ``bary``)."""
        P = self.F.shape[1]
        if self.needs_maps:
            vals = (bary[..., None] * self.feats[vidx]).sum(1)                       # [K, D]
            r = vals.new_zeros(P, self.D).index_put((pix,), vals).t()[:, self.mask]  # [D, P']
            obj = r * self.F[:, self.mask]
            clu = self.clu[self.mask]
            return 1 - (torch.maximum(obj, clu[None]).mean() - clu.mean())
        obj_k = self.pixel_obj(pix, vidx, bary)
        if self.clu is None:
            denom = self.n * (self.D if self.kind == "upstream" else 1)
            return 1 - (obj_k * self.mask[pix]).sum() / denom
        obj = obj_k.new_zeros(P).index_put((pix,), obj_k)[self.mask]
        clu = self.clu[self.mask]
        return 1 - (torch.maximum(obj, clu).mean() - clu.mean())

    def batch_loss(self, view: Tensor, pix: Tensor, vidx: Tensor, bary: Tensor, n_views: int) -> Tensor:
        """Losses [n_views] of many views whose fragments are concatenated (``view`` = view index)."""
        if self.needs_maps:
            out = []
            for i in range(n_views):
                s = view == i
                out.append(self.loss(pix[s], vidx[s], bary[s]))
            return torch.stack(out)
        obj_k = self.pixel_obj(pix, vidx, bary)
        if self.clu is None:
            denom = self.n * (self.D if self.kind == "upstream" else 1)
            tot = obj_k.new_zeros(n_views).index_add(0, view, obj_k * self.mask[pix])
            return 1 - tot / denom
        P = self.F.shape[1]
        obj = obj_k.new_zeros(n_views, P).index_put((view, pix), obj_k)[:, self.mask]
        clu = self.clu[self.mask]
        return 1 - (torch.maximum(obj, clu[None]).mean(1) - clu.mean())
