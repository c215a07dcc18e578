"""Datasets for training and evaluation as packed arrays: the synthetic generator
(novum.data.synthetic), rendered once and cached as ``.npz``, or a packed file given by path."""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from novum.config import ModelConfig
from novum.errors import InputError
from novum.training.data import PackedSamples, pack_samples


def _concat(parts: list[PackedSamples]) -> PackedSamples:
    from dataclasses import fields

    return PackedSamples(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(PackedSamples)))


def _render_chunk(args) -> PackedSamples:
    cfg_dict, syn_kw, lo, hi = args
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    mc = ModelConfig.from_dict(cfg_dict)
    ds = SyntheticDataset(SyntheticConfig(**syn_kw), mc)
    return pack_samples((ds[i] for i in range(lo, hi)), mc)


def synthetic_key(model_cfg: ModelConfig, syn_kw: dict) -> str:
    """Cache key of rendered synthetic data: everything that changes the pixels, the generator's
    version included (a generator change must not reuse stale caches)."""
    from novum.data.synthetic import GENERATOR_VERSION

    blob = json.dumps({"model": [model_cfg.classes, model_cfg.input_size, model_cfg.n_list, model_cfg.extents,
                                 model_cfg.focal], "syn": syn_kw, "generator": GENERATOR_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def synthetic_packed(model_cfg: ModelConfig, split: str, per_class: int, seed: int = 0, cache_dir: str | Path | None = None,
                     workers: int | None = None, progress: bool = False, **options) -> PackedSamples:
    """Render ``per_class`` synthetic images per class of ``split`` (train/val/test; options such as
    occlusion="L2", corruption="blur" go to SyntheticConfig) and pack them; cached under
    ``cache_dir`` keyed by everything that changes the pixels. ``progress``: a bar per image."""
    syn_kw = {"per_class": int(per_class), "split": split, "seed": int(seed), **options}
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"synthetic_{split}_{synthetic_key(model_cfg, syn_kw)}.npz"
        if path.is_file():
            return PackedSamples.load(path)
    n = per_class * model_cfg.num_classes
    workers = max(1, min(workers or 1, n))
    bounds = np.linspace(0, n, min(n, workers * 8) + 1).astype(int)
    jobs = [(model_cfg.to_dict(), syn_kw, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    bar = render_bar(n, f"render {split} data", progress)
    try:
        if workers == 1:
            parts = [bar_step(bar, _render_chunk(j), j[3] - j[2]) for j in jobs]
        else:
            with ProcessPoolExecutor(workers) as ex:
                parts = [bar_step(bar, p, j[3] - j[2]) for j, p in zip(jobs, ex.map(_render_chunk, jobs))]
    finally:
        if bar is not None:
            bar.close()
    packed = _concat(parts)
    if path is not None:
        packed.save(path)
    return packed


def render_bar(total: int, desc: str, progress: bool):
    """A tqdm bar over ``total`` images (None when ``progress`` is off)."""
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, mininterval=1.0)


def bar_step(bar, value, n: int):
    if bar is not None:
        bar.update(n)
    return value


def load_packed(source: str | Path) -> PackedSamples:
    p = Path(source)
    if not p.is_file():
        raise InputError(f"{p}: training data not found; pass a packed .npz or use data.source=synthetic")
    try:
        return PackedSamples.load(p)
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{p}: not a packed dataset ({e}); make one with novum.training.datasets") from None


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))
