"""Does another whole-frame score rule make a model more robust? (inference only, no training)

    python benchmarks/score_rules.py --model novum/assets/demo.safetensors --seed 0 --per-class 50

For every test split (clean, L1-L3, corruptions) it computes, per feature cell, each class's best
similarity over its real bank rows, the best over the padding rows (which trained models fill with
clutter features) and the best over padding and clutter rows, then scores the frame with several
rules, all GEMMs plus reductions:
- ``head``: the shipped head: a cell votes its best similarity for the class of its winning row
  when a real row beats every padding row;
- ``clutter gate``: the same, but a real row must beat every clutter row too;
- ``vote all``: every cell votes for its best real row;
- ``soft T``: sum over cells of the softmax over (classes, clutter) at temperature T;
- ``top-k f``: mean of the class's k = f * cells best similarities (the best-matching parts);
- ``top-k margin f``: the same on the similarity minus the cell's clutter similarity.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def cell_maxima(model, images: np.ndarray, batch: int = 25):
    """Per-class best real-row similarity [N, C, P], best padding-row similarity [N, P] (-inf when the
    bank has none) and best padding-or-clutter similarity [N, P]."""
    import torch

    mc, vol = model.config, model.volumes
    bank, clutter, valid = vol.bank.float(), vol.clutter.float(), vol.valid_rows()[None, :, None]
    vals, pads, clut = [], [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            f = model.features(model.preprocess(torch.from_numpy(images[i:i + batch])))
            f = f.reshape(f.shape[0], f.shape[1], -1)
            s = torch.matmul(bank, f) / 2 + 0.5                                     # [B, C*max_n, P]
            vals.append(s.masked_fill(~valid, -np.inf).reshape(len(f), mc.num_classes, mc.max_n, -1).amax(2))
            pads.append(s.masked_fill(valid, -np.inf).amax(1))
            clut.append(torch.maximum(pads[-1], (torch.matmul(clutter, f) / 2 + 0.5).amax(1)))
    return torch.cat(vals).numpy(), torch.cat(pads).numpy(), torch.cat(clut).numpy()


def rule_scores(v: np.ndarray, padding: np.ndarray, clutter: np.ndarray) -> dict[str, np.ndarray]:
    """Scores [N, C] of every rule from ``cell_maxima``'s output."""
    N, C, P = v.shape
    best, cls = v.max(1), v.argmax(1)
    onehot = cls[:, None, :] == np.arange(C)[None, :, None]
    out = {"head": (onehot * (best * (best >= padding))[:, None]).sum(-1),
           "clutter gate": (onehot * (best * (best >= clutter))[:, None]).sum(-1),
           "vote all": (onehot * best[:, None]).sum(-1)}
    for t in (0.02, 0.05):
        z = np.concatenate([v, clutter[:, None]], 1) / t
        z = np.exp(z - z.max(1, keepdims=True))
        out[f"soft T={t}"] = (z[:, :C] / z.sum(1, keepdims=True)).sum(-1)
    for frac in (0.05, 0.1, 0.2, 0.4):
        k = max(1, int(round(frac * P)))
        out[f"top-k {frac}"] = np.sort(v, -1)[..., -k:].mean(-1)
        out[f"top-k margin {frac}"] = np.sort(v - clutter[:, None], -1)[..., -k:].mean(-1)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--cache", default=None, help="rendered splits cache folder (novum-eval's --cache)")
    p.add_argument("--json")
    a = p.parse_args(argv)
    import torch

    from novum.checkpoint import load_model
    from novum.eval import SPLITS, default_cache, synthetic_splits

    torch.set_num_threads(1)
    model = load_model(a.model).eval()
    splits = synthetic_splits(model.config, SPLITS, a.per_class, a.seed, 3, a.cache or default_cache())
    res = {}
    for name, sp in splits.items():
        scores = rule_scores(*cell_maxima(model, sp.images))
        res[name] = {k: float((s.argmax(1) == sp.labels).mean()) for k, s in scores.items()}
    rules = list(next(iter(res.values())))
    print("| rule | " + " | ".join(res) + " |")
    print("|---|" + "---:|" * len(res))
    for r in rules:
        print(f"| {r} | " + " | ".join(f"{100 * res[s][r]:.1f}" for s in res) + " |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"model": a.model, "seed": a.seed, "per_class": a.per_class, "top1": res}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
