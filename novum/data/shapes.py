"""Convex primitives (boxes, beams, frustums, lofts, ellipsoids) and decals that make up a synthetic object.

A :class:`Shape` is a list of convex :class:`Part` s. Each part is drawn as a whole (parts sorted back to
front, faces of one part back-face culled, so a convex part never needs a per-face sort); a part's
decals (windows, labels, lights) are flat polygons lying just outside one of its faces, drawn right
after it. Coordinates are the PASCAL CAD frame (x lateral, y front-back with the front at -y, z up).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DECAL_OFFSET = 0.004


@dataclass
class Part:
    verts: np.ndarray                     # float [V, 3]
    faces: list[list[int]]                # convex polygons (any winding; oriented outwards on build)
    color: np.ndarray                     # float [3] BGR 0..255
    decals: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (points [k, 3], color)


@dataclass
class Shape:
    parts: list[Part] = field(default_factory=list)

    def add(self, verts, faces, color) -> Part:
        p = Part(np.asarray(verts, dtype=np.float64), [list(f) for f in faces], np.asarray(color, dtype=np.float64))
        self.parts.append(p)
        return p

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        v = np.concatenate([p.verts for p in self.parts])
        return v.min(0), v.max(0)


def _cross(a, b) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


HEXA_FACES = [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]]


def box(shape: Shape, lo, hi, color) -> Part:
    """Axis-aligned box from corner ``lo`` to corner ``hi``."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    c = [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0), (x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)]
    return shape.add(c, HEXA_FACES, color)


def hexa(shape: Shape, bottom, top, color) -> Part:
    """Convex hexahedron from a bottom quad and a top quad given in the same cyclic order."""
    return shape.add(list(bottom) + list(top), HEXA_FACES, color)


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = axis / np.linalg.norm(axis)
    ref = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = _cross(a, ref)
    e1 /= np.linalg.norm(e1)
    return e1, _cross(a, e1)


def beam(shape: Shape, p0, p1, width: float, color, depth: float | None = None) -> Part:
    """Square (or width x depth) bar from point p0 to point p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    e1, e2 = _frame(p1 - p0)
    w, d = width / 2, (depth if depth is not None else width) / 2
    ring = [-w * e1 - d * e2, w * e1 - d * e2, w * e1 + d * e2, -w * e1 + d * e2]
    return hexa(shape, [p0 + r for r in ring], [p1 + r for r in ring], color)


def ring_points(center, axis, r1: float, r2: float, n: int, phase: float = 0.0) -> np.ndarray:
    """n points of an ellipse (radii r1 along the first, r2 along the second normal of ``axis``)."""
    e1, e2 = _frame(np.asarray(axis, float))
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.asarray(center, float) + np.outer(np.cos(t) * r1, e1) + np.outer(np.sin(t) * r2, e2)


def loft(shape: Shape, ring0: np.ndarray, ring1: np.ndarray, color, caps: bool = True) -> Part:
    """Convex solid between two polygons with the same vertex count (prism, frustum, tapered hull)."""
    n = len(ring0)
    faces = [[i, (i + 1) % n, n + (i + 1) % n, n + i] for i in range(n)]
    if caps:
        faces += [list(range(n)), list(range(n, 2 * n))]
    return shape.add(np.concatenate([ring0, ring1]), faces, color)


def frustum(shape: Shape, p0, p1, r0: float, r1: float, color, n: int = 12, squash: float = 1.0) -> Part:
    """Cylinder / truncated cone from p0 (radius r0) to p1 (radius r1); ``squash`` scales the 2nd radius."""
    axis = np.asarray(p1, float) - np.asarray(p0, float)
    return loft(shape, ring_points(p0, axis, r0, r0 * squash, n), ring_points(p1, axis, r1, r1 * squash, n), color)


def ellipsoid(shape: Shape, center, radii, color, n_lat: int = 6, n_lon: int = 10) -> Part:
    """Low-poly ellipsoid (convex)."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)[1:-1]
    lon = 2 * np.pi * np.arange(n_lon) / n_lon
    pts = [np.array([0, 0, -1.0])]
    for la in lat:
        for lo in lon:
            pts.append(np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)]))
    pts.append(np.array([0, 0, 1.0]))
    v = np.asarray(center, float) + np.asarray(pts) * np.asarray(radii, float)
    faces = [[0, 1 + (j + 1) % n_lon, 1 + j] for j in range(n_lon)]
    for i in range(len(lat) - 1):
        for j in range(n_lon):
            a, b = 1 + i * n_lon, 1 + (i + 1) * n_lon
            faces.append([a + j, a + (j + 1) % n_lon, b + (j + 1) % n_lon, b + j])
    top, last = len(pts) - 1, 1 + (len(lat) - 1) * n_lon
    faces += [[top, last + j, last + (j + 1) % n_lon] for j in range(n_lon)]
    return shape.add(v, faces, color)


def wheel_ring(shape: Shape, center, axis, radius: float, tube: float, width: float, color, n: int = 14) -> None:
    """A thin ring (bicycle wheel) as n convex bar segments."""
    pts = ring_points(center, axis, radius, radius, n)
    for i in range(n):
        beam(shape, pts[i], pts[(i + 1) % n] + (pts[(i + 1) % n] - pts[i]) * 0.08, tube, color, depth=width)


def decal_on_face(part: Part, face: int, u0: float, u1: float, v0: float, v1: float, color) -> None:
    """A sub-quad of a quad face (bilinear coordinates u along edge 0->1, v along edge 0->3)."""
    idx = part.faces[face]
    c = part.verts[idx[:4]]
    def at(u, v):
        return (1 - u) * (1 - v) * c[0] + u * (1 - v) * c[1] + u * v * c[2] + (1 - u) * v * c[3]
    pts = np.array([at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)])
    n = _cross(c[1] - c[0], c[3] - c[0])
    n /= max(np.linalg.norm(n), 1e-12)
    if np.dot(n, c.mean(0) - part.verts.mean(0)) < 0:
        n = -n
    part.decals.append((pts + n * DECAL_OFFSET, np.asarray(color, dtype=np.float64)))


def face_towards(part: Part, direction) -> int:
    """Index of the face whose outward normal is closest to ``direction``."""
    d = np.asarray(direction, float)
    centre = part.verts.mean(0)
    best, score = 0, -np.inf
    for i, f in enumerate(part.faces):
        fc = part.verts[f].mean(0) - centre
        s = np.dot(fc / max(np.linalg.norm(fc), 1e-12), d)
        if s > score:
            best, score = i, s
    return best
