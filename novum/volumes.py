"""Neural object volumes: cuboid meshes (upstream algorithm), the flattened feature bank.

Bank layout (upstream ``FeatureBank.memory``): rows ``[c*max_n, c*max_n + n_c)`` hold class c's
vertex features in mesh vertex order, rows up to ``(c+1)*max_n`` are padding (random unit vectors
that still take part in the matching argmax), then ``n_clutter`` background rows.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from novum.config import PASCAL3D_CLASSES, PASCAL3D_GRIDS, ModelConfig


def meshelize(x_range, y_range, z_range, number_vertices: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Upstream ``createCuboidMesh.meshelize``: 6 unwelded face grids, same vertex and face order."""
    w, h, d = x_range[1] - x_range[0], y_range[1] - y_range[0], z_range[1] - z_range[0]
    total_area = (w * h + h * d + w * d) * 2
    edge = (total_area / (number_vertices * 2) * 2) ** 0.5
    xs = x_range[0] + np.linspace(0, w, int(w / edge + 1))
    ys = y_range[0] + np.linspace(0, h, int(h / edge + 1))
    zs = z_range[0] + np.linspace(0, d, int(d / edge + 1))
    xn, yn, zn = xs.size, ys.size, zs.size

    verts: list[tuple[float, float, float]] = []
    faces: list[tuple[int, int, int]] = []

    def grid(outer: int, inner: int, point) -> None:
        base = len(verts)
        for n in range(outer):
            for m in range(inner):
                verts.append(point(n, m))
        for m in range(outer - 1):
            for n in range(inner - 1):
                a = base + m * inner + n
                faces.append((a, a + 1, a + inner))
                faces.append((a + inner + 1, a + 1, a + inner))

    grid(yn, xn, lambda n, m: (xs[m], ys[n], zs[0]))
    grid(yn, xn, lambda n, m: (xs[m], ys[n], zs[-1]))
    grid(zn, xn, lambda n, m: (xs[m], ys[0], zs[n]))
    grid(zn, xn, lambda n, m: (xs[m], ys[-1], zs[n]))
    grid(zn, yn, lambda n, m: (xs[0], ys[m], zs[n]))
    grid(zn, yn, lambda n, m: (xs[-1], ys[m], zs[n]))
    return np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def cuboid_mesh(extents, number_vertices: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Mesh of a cuboid given as ``(x0, x1, y0, y1, z0, z1)``; float32 vertices, int64 faces."""
    x0, x1, y0, y1, z0, z1 = extents
    v, f = meshelize((x0, x1), (y0, y1), (z0, z1), number_vertices)
    return v.astype(np.float32), f


def mesh_counts(extents, number_vertices: int = 1000) -> int:
    return len(cuboid_mesh(extents, number_vertices)[0])


def cuboid_range(vertices: np.ndarray, linear_coverage: float = 0.99) -> tuple[float, ...]:
    """Upstream CAD -> cuboid range: per axis the shortest window covering 99% of the vertices."""
    k = int(vertices.shape[0] * linear_coverage)
    out: list[float] = []
    for i in range(vertices.shape[1]):
        v = np.sort(vertices[:, i])
        j = int(np.argmin(v[k:] - v[:-k]))
        out += [float(v[j]), float(v[j + k])]
    return tuple(out)


def _extents_for_grid(grid: tuple[int, int, int], longest: float = 1.0) -> tuple[float, ...]:
    """Cuboid extents (centred, longest side ``longest``) whose 1000-vertex mesh has this grid.

    The official release's real extents come from PASCAL3D+ CAD models that cannot be shipped;
    these reproduce the exact vertex counts and grid of each class, so the bank layout and
    vertex order match, while the geometry is an approximation (load ``CAD_single`` for exact).
    """
    n = np.asarray(grid, dtype=np.float64)
    for f in itertools.product(np.linspace(0.05, 0.95, 19), repeat=3):
        dims = n - 1 + np.asarray(f)
        e = np.sqrt(2 * (dims[0] * dims[1] + dims[1] * dims[2] + dims[0] * dims[2]) / 1000)
        if all(int(d / e + 1) == g for d, g in zip(dims, grid)):
            dims = dims / dims.max() * longest
            ext = tuple(float(v) for d in dims for v in (-d / 2, d / 2))
            if tuple(meshelize(ext[0:2], ext[2:4], ext[4:6])[0].shape[:1]) == (2 * (grid[0] * grid[1] + grid[0] * grid[2] + grid[1] * grid[2]),):
                return ext
    raise ValueError(f"no cuboid found for grid {grid}")


_UPSTREAM_EXTENTS: tuple[tuple[float, ...], ...] | None = None


def upstream_extents() -> tuple[tuple[float, ...], ...]:
    """Per-class cuboids reproducing the official vertex counts (see :func:`_extents_for_grid`)."""
    global _UPSTREAM_EXTENTS
    if _UPSTREAM_EXTENTS is None:
        _UPSTREAM_EXTENTS = tuple(_extents_for_grid(g) for g in PASCAL3D_GRIDS)
    return _UPSTREAM_EXTENTS


def default_extents(name: str) -> tuple[float, ...]:
    """Cuboid of a PASCAL3D+ class (upstream proportions), a unit cube for other names."""
    if name in PASCAL3D_CLASSES:
        return upstream_extents()[PASCAL3D_CLASSES.index(name)]
    return (-0.5, 0.5, -0.5, 0.5, -0.5, 0.5)


def load_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh as upstream does (line 2 holds "nV nF 0", faces are "3 a b c")."""
    lines = Path(path).read_text().splitlines()
    if not lines or lines[0].strip() != "OFF":
        raise ValueError(f"{path}: not an OFF mesh (first line is not 'OFF')")
    nv, nf = (int(t) for t in lines[1].split()[:2])
    verts = np.array([[float(t) for t in ln.split()] for ln in lines[2:2 + nv]], dtype=np.float32)
    faces = np.array([[int(t) for t in ln.split()[1:4]] for ln in lines[2 + nv:2 + nv + nf]], dtype=np.int64)
    return verts, faces


def save_off(path: str | Path, verts: np.ndarray, faces: np.ndarray) -> None:
    out = ["OFF", f"{len(verts)} {len(faces)} 0"]
    out += [" ".join(f"{v:.6f}" for v in p) for p in verts]
    out += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    Path(path).write_text("\n".join(out) + "\n")


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
            meshes = [cuboid_mesh(e) for e in config.extents]
            if config.n_list != tuple(len(v) for v, _ in meshes):
                # small models mesh with fewer vertices; find the count that reproduces n_list
                meshes = [_mesh_with_count(e, n) for e, n in zip(config.extents, config.n_list)]
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


def _mesh_with_count(extents, n: int) -> tuple[np.ndarray, np.ndarray]:
    for nv in range(20, 4001):
        v, f = cuboid_mesh(extents, nv)
        if len(v) == n:
            return v, f
    raise ValueError(f"no mesh density gives {n} vertices for cuboid {extents}")
