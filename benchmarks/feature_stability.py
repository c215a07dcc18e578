"""Do visible parts keep their features when other parts are hidden? (the occlusion-robustness proxy)

    python benchmarks/feature_stability.py --model novum/assets/demo.safetensors --per-class 10

Renders the same held-out test scenes clean and occluded (the synthetic generator, same seed, so only
the occluders differ) and compares, on object cells that no occluder pixel touches:
- the median cosine between the clean and the occluded feature;
- how often the winning bank row (``vertex``) stays the same.
A control row adds mild noise (sigma 3) instead of occluders. NOVUM's premise is that a visible part
keeps its feature and its vote however much of the rest is hidden, so the occluded rows should stay
close to the control.

It also reports how the head separates object from clutter on the occluded frames:
- ``bg votes``: share of background cells (no object, no occluder) that vote for some class;
- ``occ votes``: share of occluder cells that vote;
- ``vis true``: share of visible object cells that vote for the true class;
- ``top-1``: whole-frame accuracy on these scenes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def cell_fraction(mask: np.ndarray, stride: int, h: int, w: int) -> np.ndarray:
    """Fraction of each stride x stride cell covered by ``mask`` -> [h, w]."""
    m = mask[: h * stride, : w * stride].astype(np.float32)
    return m.reshape(h, stride, w, stride).mean(axis=(1, 3))


def dilate_cells(cells: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    if radius <= 0:
        return cells
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(cells.astype(np.uint8), k) > 0


def run(model_path: str, per_class: int = 10, seed: int = 7, levels=("L1", "L2", "L3"), far: int = 4,
        threads: int = 1, batch: int = 32) -> dict:
    import torch

    from novum.checkpoint import load_model
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    torch.set_num_threads(threads)
    model = load_model(model_path).eval()
    cfg = model.config
    h, w = cfg.feature_size
    stride = cfg.stride

    def infer(images: np.ndarray):
        outs = {"features": [], "vertex": [], "scores": []}
        with torch.inference_mode():
            for i in range(0, len(images), batch):
                o = model.predict_bgr(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))
                for k in outs:
                    outs[k].append(o[k].float().numpy() if k != "vertex" else o[k].numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    def dataset(occlusion=None):
        return SyntheticDataset(SyntheticConfig(per_class=per_class, split="test", seed=seed, occlusion=occlusion),
                                cfg)

    clean = [s for s in dataset()]
    labels = np.array([s.label for s in clean])
    obj = np.stack([cell_fraction(s.mask, stride, h, w) > 0.5 for s in clean])
    ref = infer(np.stack([s.image for s in clean]))
    rng = np.random.default_rng(seed)
    rows = {}
    variants = [("control (noise 3)", None)] + [(lv, lv) for lv in levels]
    for name, lv in variants:
        if lv is None:
            imgs = np.stack([np.clip(s.image + rng.normal(0, 3, s.image.shape), 0, 255).astype(np.uint8) for s in clean])
            occ = np.zeros_like(obj)
        else:
            samples = [s for s in dataset(lv)]
            imgs = np.stack([s.image for s in samples])
            occ = np.stack([cell_fraction(s.occluder, stride, h, w) > 0 for s in samples])
        out = infer(imgs)
        visible = obj & ~occ
        far_vis = visible & ~np.stack([dilate_cells(o, far - 1) for o in occ])
        fa, fb = ref["features"], out["features"]
        cos = (fa * fb).sum(1)                                    # [N, h, w] (unit features)
        same = ref["vertex"] == out["vertex"]
        vote = out["vertex"] >= 0
        vcls = np.where(vote, out["vertex"] // cfg.max_n, -1)
        bg = ~obj & ~occ
        true_vote = vcls == labels[:, None, None]
        row = {
            "cos_visible": float(np.median(cos[visible])) if visible.any() else float("nan"),
            "same_visible": float(same[visible].mean()) if visible.any() else float("nan"),
            "cos_far": float(np.median(cos[far_vis])) if far_vis.any() else float("nan"),
            "same_far": float(same[far_vis].mean()) if far_vis.any() else float("nan"),
            "bg_votes": float(vote[bg].mean()),
            "occ_votes": float(vote[occ].mean()) if occ.any() else float("nan"),
            "vis_true": float(true_vote[visible].mean()) if visible.any() else float("nan"),
            "top1": float((out["scores"].argmax(1) == labels).mean()),
            "cells_visible": int(visible.sum()), "cells_far": int(far_vis.sum()),
        }
        rows[name] = row
    return {"model": str(model_path), "per_class": per_class, "seed": seed, "far_cells": far, "rows": rows}


def table(res: dict) -> str:
    lines = ["| | cos visible | same vertex visible | cos far | same far | bg votes | occ votes | vis true | top-1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in res["rows"].items():
        lines.append(f"| {name} | {r['cos_visible']:.3f} | {100 * r['same_visible']:.1f}% | {r['cos_far']:.3f} | "
                     f"{100 * r['same_far']:.1f}% | {100 * r['bg_votes']:.1f}% | "
                     + ("-" if r['occ_votes'] != r['occ_votes'] else f"{100 * r['occ_votes']:.1f}%")
                     + f" | {100 * r['vis_true']:.1f}% | {100 * r['top1']:.1f}% |")
    return "\n".join(lines) + "\n"


def scene_args(description: str, levels: list[str], argv: list[str] | None, far: bool = False) -> argparse.Namespace:
    """The options the scene benchmarks share (model, scenes, threads, JSON; ``far``: --far too);
    --model defaults to the bundled demo model."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", help="NOVUM checkpoint (default: the bundled demo model)")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--seed", type=int, default=7, help="test-split seed of the scenes")
    p.add_argument("--levels", nargs="+", default=levels)
    if far:
        p.add_argument("--far", type=int, default=4, help="'far' cells are at least this many cells from any occluder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.model is None:
        from novum.bundled import demo_model_path
        args.model = str(demo_model_path())
    return args


def emit(text: str, res: dict, json_path: str | None) -> None:
    print(text, end="")
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = scene_args(__doc__.split("\n")[0], ["L1", "L2", "L3"], argv, far=True)
    res = run(args.model, args.per_class, args.seed, tuple(args.levels), args.far, args.threads)
    emit(table(res), res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
