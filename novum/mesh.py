"""Cuboid meshes in numpy (no torch): the upstream meshing algorithm, OFF files, class cuboids.

Importable by the torch-free runtime (part colours, wireframes).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from novum.config import PASCAL3D_CLASSES, PASCAL3D_GRIDS
from novum.errors import InputError


def grid_size(w: float, h: float, d: float, number_vertices: int) -> tuple[int, int, int]:
    """Samples per axis of meshelize's face grids: ``int(extent / edge + 1)`` with
    ``edge = sqrt(2 * total_area / (2 * number_vertices))``; the mesh has 2(xn yn + xn zn + yn zn) vertices."""
    total_area = (w * h + h * d + w * d) * 2
    edge = (total_area / (number_vertices * 2) * 2) ** 0.5
    return int(w / edge + 1), int(h / edge + 1), int(d / edge + 1)


def meshelize(x_range, y_range, z_range, number_vertices: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Upstream ``createCuboidMesh.meshelize``: 6 unwelded face grids, same vertex and face order."""
    w, h, d = x_range[1] - x_range[0], y_range[1] - y_range[0], z_range[1] - z_range[0]
    xn, yn, zn = grid_size(w, h, d, number_vertices)
    xs = x_range[0] + np.linspace(0, w, xn)
    ys = y_range[0] + np.linspace(0, h, yn)
    zs = z_range[0] + np.linspace(0, d, zn)
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


MAX_OFF_BYTES = 64 << 20          # a PASCAL3D+ CAD mesh is ~50 kB
MAX_OFF_VERTICES = 1 << 20


def load_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh as upstream does (line 2 holds "nV nF 0", faces are "3 a b c"). A mesh
    file is untrusted input: its size, counts, numbers and face indices are checked, and a bad file
    is one InputError line."""
    p = Path(path)
    fix = "pass the CAD_single folder of PASCAL3D+ (or meshes written by novum)"
    try:
        if p.stat().st_size > MAX_OFF_BYTES:
            raise InputError(f"{p}: a mesh of {p.stat().st_size} bytes, more than the {MAX_OFF_BYTES} allowed; {fix}")
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read the mesh ({' '.join(str(e).split())[:100]}); {fix}") from None
    if not lines or lines[0].strip() != "OFF":
        raise InputError(f"{p}: not an OFF mesh (first line is not 'OFF'); {fix}")
    try:
        nv, nf = (int(t) for t in lines[1].split()[:2])
        if not (0 < nv <= MAX_OFF_VERTICES and 0 <= nf <= 4 * MAX_OFF_VERTICES and len(lines) >= 2 + nv + nf):
            raise ValueError(f"counts {nv} vertices, {nf} faces for {len(lines) - 2} lines")
        verts = np.array([[float(t) for t in ln.split()[:3]] for ln in lines[2:2 + nv]], dtype=np.float64)
        faces = np.array([[int(t) for t in ln.split()[1:4]] for ln in lines[2 + nv:2 + nv + nf]],
                         dtype=np.int64).reshape(-1, 3)
    except (ValueError, IndexError) as e:
        raise InputError(f"{p}: not a valid OFF mesh ({' '.join(str(e).split())[:100]}); {fix}") from None
    if verts.shape != (nv, 3) or not np.isfinite(verts).all() or np.abs(verts).max() > 1e6:
        raise InputError(f"{p}: the OFF vertices are not {nv} finite (x, y, z) rows; {fix}")
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise InputError(f"{p}: OFF faces index vertices outside 0..{nv - 1}; {fix}")
    return verts.astype(np.float32), faces


def save_off(path: str | Path, verts: np.ndarray, faces: np.ndarray) -> None:
    out = ["OFF", f"{len(verts)} {len(faces)} 0"]
    out += [" ".join(f"{v:.6f}" for v in p) for p in verts]
    out += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    Path(path).write_text("\n".join(out) + "\n")


def mesh_with_count(extents, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The cuboid mesh of ``extents`` with exactly ``n`` vertices.

    The density is searched with :func:`grid_size` alone (no meshing); each axis count grows with
    the density, so a vertex count fixes the grid and every density that reaches it gives the same mesh.
    """
    x0, x1, y0, y1, z0, z1 = extents
    for nv in range(20, 4001):
        a, b, c = grid_size(x1 - x0, y1 - y0, z1 - z0, nv)
        if 2 * (a * b + a * c + b * c) == n:
            return cuboid_mesh(extents, nv)
    # n comes from a config in a file (n_list): a value no cuboid mesh has is that file's error
    box = ", ".join(f"{float(v):g}" for v in extents)
    raise InputError(f"no cuboid mesh of ({box}) has {n} vertices: the model config's n_list does not match its "
                     f"extents; re-export or re-save the model (or re-generate the dataset)")


def mesh_extents(verts: np.ndarray) -> tuple[float, ...]:
    """Axis-aligned range (x0, x1, y0, y1, z0, z1) of a mesh."""
    lo, hi = verts.min(0), verts.max(0)
    return tuple(float(v) for pair in zip(lo, hi) for v in pair)


def nocs_colors(verts: np.ndarray) -> np.ndarray:
    """Normalised cuboid coordinates in [0, 1] per vertex (upstream's texture_bank colours)."""
    lo, hi = verts.min(0), verts.max(0)
    return ((verts - lo) / np.maximum(hi - lo, 1e-9)).astype(np.float32)
