"""Test inputs made on the fly: upstream-layout checkpoints, small native models, frames."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from novum.config import PASCAL3D_N_LIST, small_config, upstream_config
from novum.model import NovumModel
from novum.volumes import random_unit_rows


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial statistics so tests exercise them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def make_upstream_checkpoint(path: Path, seed: int = 0, extra_heads: bool = True) -> dict:
    """Write a file with the official release's layout: DataParallel ``module.`` keys, ``memory``
    [12*1130 + 2560, 128] with random unit padding rows, an argparse Namespace under ``args``."""
    torch.manual_seed(seed)
    cfg = upstream_config()
    model = NovumModel(cfg).eval()
    randomize_bn(model, seed)
    state = {f"module.{k}": v for k, v in model.backbone.state_dict().items()}
    if extra_heads:  # heads of the e5951fc-era ResNetExt, dropped by upstream's strict=False
        state["module.net.classifier.2.weight"] = torch.randn(512, 2048)
        state["module.net.classifier.4.weight"] = torch.randn(12, 512)
        state["module.net.pose_estimator.4.weight"] = torch.randn(126, 512)
    g = torch.Generator().manual_seed(seed + 1)
    memory = random_unit_rows(12 * 1130 + 2560, 128, g)
    ck = {"state": state, "memory": memory, "timestamp": 1664150400,
          "args": argparse.Namespace(lr=1e-4, batch_size=38, total_epochs=200, config="config/defaults.yaml")}
    torch.save(ck, path)
    return ck


def make_small_model(seed: int = 0, classes=None, input_size=(128, 160)) -> NovumModel:
    torch.manual_seed(seed)
    cfg = small_config(input_size=input_size) if classes is None else small_config(classes=classes, input_size=input_size)
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
