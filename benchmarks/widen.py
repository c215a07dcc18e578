"""Widen a trained NOVUM backbone without changing what it computes (Net2Net's "wider" step).

    python benchmarks/widen.py --model benchmarks/occlusion_h2.safetensors --out runs/w64/init.safetensors

Every channel dimension of a 2-stage (local, decoder-free) backbone doubles (``width`` and ``decoder_out`` x2; the feature
dimension, the bank and the clutter stay). Channel ``i + C`` copies channel ``i``; where a weight reads
a doubled input, the two copies split the original weight as ``(0.5 + e)`` and ``(0.5 - e)``, ``e``
random per weight (``--split``), so the sum, and so every feature, stays the same while the two copies
get different gradients and can grow apart when training continues (``--set init=...``).
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from novum.checkpoint import load_native, save_native
from novum.model import NovumModel


def widen_tensor(old: torch.Tensor, shape: torch.Size, split: float, g: torch.Generator) -> torch.Tensor:
    """``old`` tiled to ``shape`` (each dimension equal or doubled); a doubled input dimension (dim 1
    of a weight) is shared out as ``w * (0.5 + e)`` and ``w * (0.5 - e)``, ``e`` uniform in +-``split``."""
    out = old.clone()
    for d, (a, b) in enumerate(zip(old.shape, shape)):
        if b == a:
            continue
        if b != 2 * a:
            raise ValueError(f"cannot widen a dimension of {a} to {b}: only x2")
        if d == 1:     # an input dimension: the two copies share the weight
            e = (torch.rand(out.shape, generator=g) * 2 - 1) * split
            out = torch.cat([out * (0.5 + e), out * (0.5 - e)], dim=1)
        else:
            out = torch.cat([out, out], dim=d)
    return out


def widen(model: NovumModel, split: float = 0.1, seed: int = 0) -> NovumModel:
    """A NOVUM model with twice the backbone width computing the same features as ``model``. Only
    2-stage (decoder-free) backbones: the decoder concatenates channels, which plain tiling would mix up."""
    cfg = model.config
    if cfg.backbone.stages != 2:
        raise ValueError(f"only a 2-stage backbone can be widened here (this one has {cfg.backbone.stages})")
    bb = dataclasses.replace(cfg.backbone, width=2 * cfg.backbone.width, decoder_out=2 * cfg.backbone.decoder_out)
    wide = NovumModel(dataclasses.replace(cfg, backbone=bb), meshes=model.volumes.meshes)
    g = torch.Generator().manual_seed(seed)
    old = model.state_dict()
    wide.load_state_dict({k: widen_tensor(old[k], t.shape, split, g) for k, t in wide.state_dict().items()})
    return wide


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a native NOVUM .safetensors")
    ap.add_argument("--out", required=True, help="where the widened model goes")
    ap.add_argument("--split", type=float, default=0.1, help="largest e in the (0.5 +- e) share of a weight")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    model = load_native(a.model).eval()
    wide = widen(model, a.split, a.seed).eval()
    x = torch.randn(2, 3, *model.config.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        gap = float((model.backbone(x) - wide.backbone(x)).abs().max())
    save_native(wide, a.out)
    print(f"wrote {a.out}: width {model.config.backbone.width} -> {wide.config.backbone.width}, "
          f"largest feature change {gap:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
