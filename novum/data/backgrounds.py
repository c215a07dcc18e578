"""Random backgrounds and surface textures (gradients, smooth noise, stripes, horizons, clutter)."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from novum.data.objects import rand_color


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Value noise in [-1, 1]: a random grid of about ``cells`` cells across, bicubically upsampled."""
    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    g = rng.uniform(-1, 1, (gh, gw, channels)).astype(np.float32)
    out = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(h, w, channels), -1, 1)


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multiplicative surface pattern [H, W, 1] around 1 (noise, stripes, checks or none)."""
    kind = rng.integers(4)
    strength = rng.uniform(0.05, 0.3)
    if kind == 0:
        return np.ones((h, w, 1), np.float32)
    if kind == 1:
        p = smooth_noise(rng, h, w, int(rng.integers(4, 24)))
    else:
        yy, xx = _grid(h, w)
        a = rng.uniform(0, np.pi)
        period = rng.uniform(4, 16)
        t = (np.cos(a) * xx + np.sin(a) * yy) / period
        p = np.sign(np.sin(2 * np.pi * t)) if kind == 2 else np.sin(2 * np.pi * t) * np.sin(2 * np.pi * (np.cos(a) * yy - np.sin(a) * xx) / period)
        p = p[..., None].astype(np.float32)
    return 1 + strength * p


def background(rng: np.random.Generator, h: int, w: int, clutter: bool | None = None) -> np.ndarray:
    """A float32 BGR background [H, W, 3] in 0..255."""
    yy, xx = _grid(h, w)
    kind = rng.integers(4)
    c0 = rand_color(rng, sat=(0, 0.8), val=(0.1, 1.0)).astype(np.float32)
    c1 = rand_color(rng, sat=(0, 0.8), val=(0.1, 1.0)).astype(np.float32)
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * (xx - w / 2) + np.sin(a) * (yy - h / 2)) / max(h, w) + 0.5
        img = c0 + np.clip(t, 0, 1)[..., None] * (c1 - c0)
    elif kind == 1:  # smooth colour noise
        n = smooth_noise(rng, h, w, int(rng.integers(3, 16)), 3)
        img = (c0 + c1) / 2 + n * rng.uniform(30, 90)
    elif kind == 2:  # horizon: sky over ground, tilted
        row = h * rng.uniform(0.3, 0.8) + (xx - w / 2) * np.tan(rng.uniform(-0.3, 0.3))
        sky = c0 + (yy / h)[..., None] * rng.uniform(-40, 40, 3)
        img = np.where((yy < row)[..., None], sky, c1 + smooth_noise(rng, h, w, 12, 1) * 25)
    else:  # pattern
        img = c0 + (c1 - c0) * (0.5 + 0.5 * (texture(rng, h, w) - 1) / 0.3)
    img = np.ascontiguousarray(np.clip(img, 0, 255), dtype=np.float32)
    if clutter if clutter is not None else rng.uniform() < 0.6:
        draw_clutter(img, rng, int(rng.integers(3, 15)))
    return img


def draw_clutter(img: np.ndarray, rng: np.random.Generator, n: int) -> None:
    """Random rectangles, ellipses, lines and polygons drawn in place (background clutter)."""
    h, w = img.shape[:2]
    s = max(h, w)
    for _ in range(n):
        col = rand_color(rng, sat=(0, 1), val=(0.05, 1)).tolist()
        k = rng.integers(4)
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        r = int(rng.uniform(0.03, 0.25) * s)
        if k == 0:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + int(rng.uniform(0.2, 1.5) * r)), col, -1)
        elif k == 1:
            cv2.ellipse(img, (cx, cy), (r, max(1, int(r * rng.uniform(0.2, 1)))), rng.uniform(0, 180), 0, 360, col, -1)
        elif k == 2:
            cv2.line(img, (cx, cy), (int(rng.uniform(0, w)), int(rng.uniform(0, h))), col, int(rng.integers(1, 5)))
        else:
            pts = (np.array([cx, cy]) + rng.normal(0, r, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(img, [cv2.convexHull(pts)], col)
