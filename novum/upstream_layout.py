"""Random-weight checkpoints in the official NOVUM release's file layout.

For trying the upstream import path and the deployment of the release's architecture without the
release itself (the tests, ``benchmarks/gpu_acceptance.py``): a ``.pth`` with DataParallel
``module.`` keys, ``memory`` [12*1130 + 2560, 128] (class bank with its padding rows, then the
clutter bank), an argparse Namespace under ``args`` and the old classifier / pose heads that
upstream drops (README, "Upstream checkpoints").
BatchNorm layers get non-trivial statistics, so a random network behaves like a trained one
numerically (activations stay in range through 50 layers).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from novum.config import upstream_config
from novum.model import NovumModel
from novum.volumes import random_unit_rows


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial statistics so a random network exercises them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def write_upstream_layout_checkpoint(path: str | Path, seed: int = 0, extra_heads: bool = True) -> dict:
    """Write a random-weight ``.pth`` with the official release's layout; returns what was saved."""
    torch.manual_seed(seed)
    model = NovumModel(upstream_config()).eval()
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, path)
    return ck
