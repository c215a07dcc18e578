"""Where do a NOVUM model's votes come from on occluded frames, and does neighbour agreement help?

    python benchmarks/vote_sources.py --model novum/assets/demo.safetensors --per-class 10

Held-out test scenes (synthetic generator, seed 7 by default) at each level. Per region (visible
object cells, occluder cells, background cells) it reports the share of cells that vote for some
class and for the true class. Then whole-frame top-1 under the head's rule (a cell votes for the
class of its winning row when that beats the best padding row, weighted by the similarity) and under
"neighbour agreement" rules: a cell's vote counts only when k of its 8 neighbours vote for the same
class (``class k``) and also with a winning vertex close on the cuboid (``geometry k``: within 0.35
of the class's largest extent). An occluder recognised as a stray part should get no support from
its neighbours; a visible part should.
"""
from __future__ import annotations

import sys

import numpy as np
from feature_stability import cell_fraction, emit, scene_args


def neighbour_support(win: np.ndarray, pos: np.ndarray, vote: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per cell [N, h, w]: how many of the 8 neighbours vote for the same class, and how many of those
    also win a vertex within ``radius`` (normalised cuboid units) of this cell's."""
    h, w = win.shape[1:]
    same_cls = np.zeros(win.shape)
    same_geo = np.zeros(win.shape)
    pw = np.pad(win, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    pp = np.pad(pos, ((0, 0), (1, 1), (1, 1), (0, 0)))
    pv = np.pad(vote, ((0, 0), (1, 1), (1, 1)))              # outside the frame: no vote
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            sw = pw[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            sp = pp[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            sv = pv[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            same = (sw == win) & sv & vote
            same_cls += same
            same_geo += same & (np.linalg.norm(sp - pos, axis=-1) < radius)
    return same_cls, same_geo


def run(model_path: str, per_class: int = 10, seed: int = 7, levels=("clean", "L1", "L2", "L3"),
        threads: int = 1, batch: int = 40) -> dict:
    import torch

    from novum.checkpoint import load_model
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    torch.set_num_threads(threads)
    model = load_model(model_path).eval()
    cfg = model.config
    h, w = cfg.feature_size
    C, max_n = len(cfg.n_list), cfg.max_n
    vol = model.volumes
    pos = np.zeros((C, max_n, 3), np.float32)
    for c, (v, _) in enumerate(vol.meshes):
        pos[c, :len(v)] = v / np.ptp(v, 0).max()
    res: dict = {"model": str(model_path), "per_class": per_class, "seed": seed, "levels": {}}
    for lv in levels:
        samples = list(SyntheticDataset(SyntheticConfig(per_class=per_class, split="test", seed=seed,
                                                        occlusion=None if lv == "clean" else lv), cfg))
        labels = np.array([s.label for s in samples])
        obj = np.stack([cell_fraction(s.mask, cfg.stride, h, w) > 0.5 for s in samples])
        occ = np.stack([cell_fraction(s.occluder, cfg.stride, h, w) > 0 if s.occluder is not None
                        else np.zeros((h, w), bool) for s in samples])
        images = np.stack([s.image for s in samples])
        row, best = [], []
        with torch.inference_mode():   # the head itself: winning bank row (-1 = a padding row won) and its score
            for i in range(0, len(images), batch):
                o = model.predict_bgr(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))
                row.append(o["vertex"].numpy())
                best.append(o["vertex_score"].float().numpy())
        row, best = np.concatenate(row), np.concatenate(best)                 # [N, h, w]
        vote = row >= 0
        win, vert = np.where(vote, row // max_n, -1), np.where(vote, row % max_n, 0)
        same_cls, same_geo = neighbour_support(win, pos[win, vert], vote, 0.35)
        onehot = win[:, None] == np.arange(C)[None, :, None, None]
        rules = {"head": vote, "class 2": vote & (same_cls >= 2), "geometry 1": vote & (same_geo >= 1),
                 "geometry 2": vote & (same_geo >= 2), "geometry 3": vote & (same_geo >= 3)}
        top1 = {k: float(((onehot * (m * best)[:, None]).sum((2, 3)).argmax(1) == labels).mean())
                for k, m in rules.items()}
        true = vote & (win == labels[:, None, None])
        regions = {"visible": obj & ~occ, "occluder": occ, "background": ~obj & ~occ}
        sources = {r: {"votes": float(vote[m].mean()), "true": float(true[m].mean())}
                   for r, m in regions.items() if m.any()}
        res["levels"][lv] = {"top1": top1, "sources": sources}
    return res


def tables(res: dict) -> str:
    levels = list(res["levels"])
    out = ["| region | " + " | ".join(f"{lv}: votes / true" for lv in levels) + " |",
           "|---|" + "---:|" * len(levels)]
    for r in ("visible", "occluder", "background"):
        cells = [res["levels"][lv]["sources"].get(r) for lv in levels]
        out.append(f"| {r} | " + " | ".join("-" if c is None else f"{100 * c['votes']:.1f} / {100 * c['true']:.1f}"
                                           for c in cells) + " |")
    out += ["", "| rule | " + " | ".join(levels) + " |", "|---|" + "---:|" * len(levels)]
    for rule in res["levels"][levels[0]]["top1"]:
        out.append(f"| {rule} | " + " | ".join(f"{100 * res['levels'][lv]['top1'][rule]:.1f}" for lv in levels) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = scene_args(__doc__.split("\n")[0], ["clean", "L1", "L2", "L3"], argv)
    res = run(args.model, args.per_class, args.seed, tuple(args.levels), args.threads)
    emit(tables(res), res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
