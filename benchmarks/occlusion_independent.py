"""Occlusion accuracy with occluders that are NOT the generator's (a held-out occluder family).

    python benchmarks/occlusion_independent.py --model novum/assets/demo.safetensors \
        --baseline benchmarks/demo_baseline.safetensors --per-class 50 --seed 11

``novum.data.occluders`` (used by training-time tools and ``novum-eval``) pastes textured ellipses,
rectangles, polygons and rendered distractor objects. This script is written independently of it,
so that a model tuned against those occluders is checked against others: each occluder here is a
"metaball" blob (a thresholded sum of random Gaussian bumps, so its outline is organic and often
non-convex) filled with one of four textures the generator does not draw (plaid, concentric rings,
speckle, a hue ramp), with a soft dark rim. The blobs' common scale is bisected until they cover a
fraction of the object mask drawn inside the level's range (L1/L2/L3 = 20-40 / 40-60 / 60-80 %),
measured on the mask, as OccludedPASCAL3D+ defines its levels.

Prints the whole-frame top-1 of every model per level, on the synthetic ``test`` split's scenes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LEVELS = {"L1": (0.2, 0.4), "L2": (0.4, 0.6), "L3": (0.6, 0.8)}


def blob(h: int, w: int, centre: tuple[float, float], size: float,
         bumps: np.ndarray) -> np.ndarray:
    """Bool [h, w]: a metaball of ``bumps`` [k, 3] (dx, dy, radius, in units of ``size``) around ``centre``."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w), np.float32)
    for dx, dy, r in bumps:
        cx, cy, rr = centre[0] + dx * size, centre[1] + dy * size, max(1.0, r * size)
        field += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rr * rr))
    return field > 0.6


def fill(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Float32 BGR [h, w, 3]: one of the held-out textures."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = int(rng.integers(4))
    c0 = rng.uniform(0, 255, 3).astype(np.float32)
    c1 = rng.uniform(0, 255, 3).astype(np.float32)
    if kind == 0:    # plaid: two crossing soft stripe sets
        p = rng.uniform(5, 14)
        t = 0.5 + 0.25 * (np.sin(2 * np.pi * xx / p) + np.sin(2 * np.pi * yy / (p * rng.uniform(0.6, 1.6))))
    elif kind == 1:  # concentric rings around a random point
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = 0.5 + 0.5 * np.sin(np.hypot(xx - cx, yy - cy) / rng.uniform(1.5, 4.0))
    elif kind == 2:  # speckle: salt-and-pepper dots over a flat colour
        t = (rng.uniform(0, 1, (h, w)) < rng.uniform(0.1, 0.4)).astype(np.float32)
    else:            # hue ramp: a smooth sweep between the two colours
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    return c0 + t[..., None] * (c1 - c0)


def occlude(image: np.ndarray, obj: np.ndarray, level: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Paste 1-3 textured metaballs over ``image`` covering a fraction of ``obj`` inside ``level``'s range."""
    lo, hi = LEVELS[level]
    h, w = obj.shape
    ys, xs = np.nonzero(obj)
    target = rng.uniform(lo + 0.02, hi - 0.02)
    size0 = np.sqrt(len(ys))
    for _ in range(10):
        k = int(rng.integers(1, 4))
        blobs = []
        for _ in range(k):
            i = int(rng.integers(len(ys)))
            bumps = np.stack([rng.normal(0, 0.5, 6), rng.normal(0, 0.5, 6), rng.uniform(0.15, 0.45, 6)], 1)
            blobs.append(((float(xs[i]), float(ys[i])), bumps))

        def cover(scale: float) -> tuple[np.ndarray, float]:
            m = np.zeros((h, w), bool)
            for c, b in blobs:
                m |= blob(h, w, c, size0 * scale, b)
            return m, float((m & obj).sum()) / float(obj.sum())

        a, b = 0.0, 0.5
        while cover(b)[1] < target and b < 16:
            b *= 2
        for _ in range(12):
            mid = (a + b) / 2
            a, b = (mid, b) if cover(mid)[1] < target else (a, mid)
        m, f = cover(b)
        if lo <= f <= hi:
            break
    out = image.astype(np.float32).copy()
    tex = fill(h, w, rng)
    import cv2
    rim = cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~m
    out[m] = tex[m]
    out[rim] *= 0.4
    return np.clip(out, 0, 255).astype(np.uint8), f


def build_split(model_cfg, level: str, per_class: int, seed: int):
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    ds = SyntheticDataset(SyntheticConfig(per_class=per_class, split="test", seed=seed), model_cfg)
    images, labels, cover = [], [], []
    for i in range(len(ds)):
        s = ds[i]
        rng = np.random.default_rng([seed, 4242, list(LEVELS).index(level), i])
        img, f = occlude(s.image, s.mask.astype(bool), level, rng)
        images.append(img)
        labels.append(s.label)
        cover.append(f)
    return np.stack(images), np.array(labels), np.array(cover)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", default=[], help="NOVUM model(s) (any format novum-eval reads)")
    p.add_argument("--baseline", action="append", default=[], help="baseline classifier(s)")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--levels", nargs="+", default=list(LEVELS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--save-examples", help="write a PNG strip of occluded examples here")
    args = p.parse_args(argv)
    from novum.eval import column_names, open_predictor

    preds = [open_predictor(m, n, threads=args.threads)
             for m, n in zip(args.model, column_names(args.model, "NOVUM", name_one=True))]
    preds += [open_predictor(b, n, threads=args.threads)
              for b, n in zip(args.baseline, column_names(args.baseline, "baseline", name_one=True))]
    if not preds:
        p.error("pass --model and/or --baseline")
    res: dict = {"per_class": args.per_class, "seed": args.seed, "accuracy": {q.name: {} for q in preds}, "coverage": {}}
    for level in args.levels:
        images, labels, cover = build_split(preds[0].config, level, args.per_class, args.seed)
        res["coverage"][level] = [float(cover.min()), float(np.median(cover)), float(cover.max())]
        if args.save_examples and level == args.levels[-1]:
            import cv2
            cv2.imwrite(args.save_examples, np.concatenate(list(images[::max(1, len(images) // 8)][:8]), 1))
        for q in preds:
            sc = np.concatenate([q.scores(images[i:i + 32], None) for i in range(0, len(images), 32)])
            res["accuracy"][q.name][level] = float((sc.argmax(1) == labels).mean())
    for q in preds:
        q.close()
    names = list(res["accuracy"])
    print("| level | coverage (min/median/max) | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for level in args.levels:
        c = res["coverage"][level]
        print(f"| {level} | {c[0]:.2f} / {c[1]:.2f} / {c[2]:.2f} | "
              + " | ".join(f"{100 * res['accuracy'][n][level]:.1f}" for n in names) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
