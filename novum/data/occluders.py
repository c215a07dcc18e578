"""Occluders at OccludedPASCAL3D+ levels: textured shapes pasted over the object.

Level L1/L2/L3 = the occluders cover 20-40 / 40-60 / 60-80 % of the object mask. The coverage is
measured and enforced: a target fraction is drawn inside the level's range and the occluders' common
scale is bisected until the measured coverage hits it.
"""
from __future__ import annotations

import cv2
import numpy as np

from novum.data.backgrounds import background, texture
from novum.data.objects import rand_color
from novum.errors import InputError

LEVELS: dict[str, tuple[float, float]] = {"L1": (0.2, 0.4), "L2": (0.4, 0.6), "L3": (0.6, 0.8)}


def level_range(level: str) -> tuple[float, float]:
    if level not in LEVELS:
        raise InputError(f"unknown occlusion level '{level}'; choose one of {', '.join(LEVELS)}")
    return LEVELS[level]


def _shape_mask(h: int, w: int, spec: dict, scale: float) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cx, cy = spec["centre"]
    r = spec["size"] * scale
    if spec["kind"] == "ellipse":
        axes = (max(1, int(r)), max(1, int(r * spec["aspect"])))
        cv2.ellipse(m, (int(cx), int(cy)), axes, spec["angle"], 0, 360, 1, -1)
    else:
        pts = np.asarray([cx, cy]) + spec["poly"] * r
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return m


def _random_spec(rng: np.random.Generator, obj: np.ndarray) -> dict:
    ys, xs = np.nonzero(obj)
    i = rng.integers(len(ys))
    size = np.sqrt(len(ys)) * rng.uniform(0.3, 0.6)
    kind = ["ellipse", "rect", "poly"][rng.integers(3)]
    spec = {"kind": kind, "centre": (float(xs[i]) + rng.normal(0, size * 0.3), float(ys[i]) + rng.normal(0, size * 0.3)),
            "size": size, "aspect": rng.uniform(0.3, 1.0), "angle": rng.uniform(0, 180)}
    if kind == "rect":
        a, asp = rng.uniform(0, np.pi), rng.uniform(0.25, 1.0)
        c, s = np.cos(a), np.sin(a)
        base = np.array([[-1, -asp], [1, -asp], [1, asp], [-1, asp]])
        spec["poly"] = base @ np.array([[c, s], [-s, c]])
    elif kind == "poly":
        k = int(rng.integers(5, 9))
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.5, 1.2, k)
        spec["poly"] = np.stack([np.cos(t) * rad, np.sin(t) * rad], 1)
    return spec


def occluder_mask(obj: np.ndarray, level: str, rng: np.random.Generator, tries: int = 8) -> tuple[np.ndarray, float]:
    """A binary occluder mask covering a fraction of ``obj`` (bool mask) inside the level's range."""
    lo, hi = level_range(level)
    h, w = obj.shape
    area = float(obj.sum())
    if area < 1:
        raise InputError("cannot occlude an empty object mask")
    target = rng.uniform(lo + 0.02, hi - 0.02)
    best = (None, -1.0)
    for _ in range(tries):
        specs = [_random_spec(rng, obj) for _ in range(int(rng.integers(1, 3)))]

        def cover(scale: float) -> tuple[np.ndarray, float]:
            m = np.zeros((h, w), np.uint8)
            for sp in specs:
                m |= _shape_mask(h, w, sp, scale)
            return m, float((m.astype(bool) & obj).sum()) / area

        a, b = 0.0, 1.0
        while cover(b)[1] < target and b < 64:
            b *= 2
        for _ in range(14):
            mid = (a + b) / 2
            if cover(mid)[1] < target:
                a = mid
            else:
                b = mid
        m, f = cover(b)
        if lo <= f <= hi:
            return m, f
        if abs(f - target) < abs(best[1] - target):
            best = (m, f)
    # fallback: a band sliding in from one side, coverage grows monotonically with its width
    ys, xs = np.nonzero(obj)
    x0, x1 = xs.min(), xs.max() + 1
    for x in range(x0, x1 + 1):
        m = np.zeros((h, w), np.uint8)
        m[:, :x] = 1
        f = float((m.astype(bool) & obj).sum()) / area
        if f >= target:
            return m, f
    return best[0], best[1]  # unreachable for non-empty masks


def occluder_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """What the occluder looks like: a textured colour or a piece of another background."""
    if rng.uniform() < 0.4:
        return background(rng, h, w, clutter=True)
    img = np.broadcast_to(rand_color(rng, sat=(0, 1), val=(0.1, 1)), (h, w, 3)).astype(np.float32)
    img = img * texture(rng, h, w)
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    return np.clip(img * (1 + rng.uniform(-0.3, 0.3) * yy), 0, 255)


def occlude(image: np.ndarray, obj: np.ndarray, level: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Paste occluders over ``image`` (float or uint8 BGR); returns (image, occluder mask uint8, coverage)."""
    h, w = obj.shape
    m, frac = occluder_mask(obj.astype(bool), level, rng)
    tex = occluder_texture(rng, h, w)
    out = image.copy()
    sel = m.astype(bool)
    out[sel] = tex[sel].astype(out.dtype)
    return out, m, frac
