"""Test inputs made on the fly: upstream-layout checkpoints, small native models, frames."""
from __future__ import annotations

import numpy as np
import torch

from novum.config import PASCAL3D_N_LIST, small_config
from novum.model import NovumModel
from novum.upstream_layout import randomize_bn
from novum.upstream_layout import write_upstream_layout_checkpoint as make_upstream_checkpoint  # noqa: F401 - for the tests


def make_small_model(seed: int = 0, classes=None, input_size=(128, 160), **config) -> NovumModel:
    """A small NOVUM model with random weights and BN statistics; ``config``: more small_config arguments."""
    torch.manual_seed(seed)
    if classes is not None:
        config["classes"] = classes
    cfg = small_config(input_size=input_size, **config)
    model = NovumModel(cfg, generator=torch.Generator().manual_seed(seed)).eval()
    randomize_bn(model, seed)
    return model


def structured_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 BGR frames with objects-like structure (gradients, blobs, edges), not plain noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = np.zeros((h, w, 3), np.float32)
        for c in range(3):
            a, b = rng.uniform(-1, 1, 2)
            img[..., c] = 128 + 60 * np.sin(a * xx / 9 + b * yy / 7 + rng.uniform(0, 6))
        for _ in range(4):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(h / 10, h / 3)
            m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img[m] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 6, img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


N_LIST = PASCAL3D_N_LIST


def benchmark_module(name: str):
    """``benchmarks/<name>.py`` loaded as a module (the folder is not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
