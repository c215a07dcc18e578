"""Neural object volumes: cuboid meshes (upstream algorithm), the flattened feature bank.

Bank layout (upstream ``FeatureBank.memory``): rows ``[c*max_n, c*max_n + n_c)`` hold class c's
vertex features in mesh vertex order, rows up to ``(c+1)*max_n`` are padding (random unit vectors
that still take part in the matching argmax), then ``n_clutter`` background rows.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from novum.config import ModelConfig
from novum.mesh import (cuboid_mesh, default_extents, load_off, mesh_counts, mesh_with_count, meshelize,  # noqa: F401
                        save_off, upstream_extents)


def random_unit_rows(n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Upstream bank init: uniform(-stdv, stdv), stdv = 1/sqrt(dim/3), then L2-normalised rows."""
    stdv = 1.0 / (dim / 3) ** 0.5
    rows = torch.rand(n, dim, generator=generator) * 2 * stdv - stdv
    return torch.nn.functional.normalize(rows, dim=1)


class NeuralVolumes(nn.Module):
    """Per-class cuboid meshes with one learned feature per vertex, plus the clutter bank."""

    def __init__(self, config: ModelConfig, meshes: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_list = tuple(config.n_list)
        self.max_n = int(config.max_n)
        self.classes = tuple(config.classes)
        dim = config.backbone.feature_dim
        self.register_buffer("bank", random_unit_rows(config.num_vertex_rows, dim, generator))
        self.register_buffer("clutter", random_unit_rows(config.n_clutter, dim, generator))
        if meshes is None and config.extents is not None:
            meshes = [mesh_with_count(e, n) for e, n in zip(config.extents, config.n_list)]
        self.meshes = meshes
        if meshes is not None:
            got = tuple(len(v) for v, _ in meshes)
            if got != self.n_list:
                raise ValueError(f"mesh vertex counts {got} do not match n_list {self.n_list}")

    @property
    def num_classes(self) -> int:
        return len(self.n_list)

    def class_features(self, c: int) -> torch.Tensor:
        return self.bank[c * self.max_n: c * self.max_n + self.n_list[c]]

    def valid_rows(self) -> torch.Tensor:
        """Bool [C*max_n]: True for real vertex rows, False for padding rows."""
        local = torch.arange(self.max_n).repeat(self.num_classes)
        n = torch.tensor(self.n_list).repeat_interleave(self.max_n)
        return local < n

    def memory(self) -> torch.Tensor:
        """The upstream ``memory`` tensor: [C*max_n + n_clutter, D]."""
        return torch.cat([self.bank, self.clutter], 0)

    def load_memory(self, memory: torch.Tensor) -> None:
        rows = self.bank.shape[0] + self.clutter.shape[0]
        if tuple(memory.shape) != (rows, self.bank.shape[1]):
            raise ValueError(f"memory has shape {tuple(memory.shape)}, expected ({rows}, {self.bank.shape[1]}) "
                             f"= ({self.num_classes}*{self.max_n} + {self.clutter.shape[0]}, D)")
        self.bank.copy_(memory[: self.bank.shape[0]])
        self.clutter.copy_(memory[self.bank.shape[0]:])

