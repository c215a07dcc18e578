"""Occluders at OccludedPASCAL3D+ levels: objects and textured shapes pasted over the object.

Level L1/L2/L3 = the occluders cover 20-40 / 40-60 / 60-80 % of the object mask. The coverage is
measured and enforced: a target fraction is drawn inside the level's range and the occluders' common
scale is bisected until the measured coverage hits it. As in OccludedPASCAL3D+ (which pastes objects
cut from other images), an occluder is often a rendered object; it is never one of the target classes
(:func:`novum.data.objects.distractor`), so the true label stays the only right answer. Otherwise it
is a shape (ellipse, rotated rectangle, polygon) with a random texture.
"""
from __future__ import annotations

import cv2
import numpy as np

from novum.data.backgrounds import background, texture
from novum.data.objects import distractor, rand_color
from novum.errors import InputError

LEVELS: dict[str, tuple[float, float]] = {"L1": (0.2, 0.4), "L2": (0.4, 0.6), "L3": (0.6, 0.8)}
OBJECT_PATCH = (96, 120)    # rendered size of an object occluder before scaling


def level_range(level: str) -> tuple[float, float]:
    if level not in LEVELS:
        raise InputError(f"unknown occlusion level '{level}'; choose one of {', '.join(LEVELS)}")
    return LEVELS[level]


def object_patch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random non-class object, rendered: (premultiplied BGR float32 [h, w, 3], alpha [h, w])."""
    from novum.data.render import compile_shape, render

    half = rng.uniform(0.3, 1.0, 3) * np.array([1.0, 1.0, rng.uniform(0.6, 1.6)])
    model = compile_shape(distractor(rng, *half))
    h, w = OBJECT_PATCH
    pose = np.array([rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(-10, 40)), np.deg2rad(rng.normal(0, 8)), 5.0])
    light = np.array([rng.normal(0, 0.5), rng.normal(0, 0.5), 1.0])
    rgb, alpha = render(model, pose, 3000.0 * h / 640 * 0.9, (h, w), light / np.linalg.norm(light),
                        ambient=rng.uniform(0.3, 0.6))
    return rgb * texture(rng, h, w), alpha


def _place(h: int, w: int, spec: dict, scale: float, colour: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The occluder's alpha [H, W] (float32, 0..1) at ``scale``; with ``colour``, an object's
    premultiplied colour [H, W, 3] too."""
    m = np.zeros((h, w), np.float32)
    cx, cy = spec["centre"]
    r = spec["size"] * scale
    if spec["kind"] == "object":
        ph, pw = spec["alpha"].shape
        k = 2 * r / pw
        nh, nw = max(1, int(round(ph * k))), max(1, int(round(pw * k)))
        a = cv2.resize(spec["alpha"], (nw, nh), interpolation=cv2.INTER_LINEAR)
        y0, x0 = int(round(cy - nh / 2)), int(round(cx - nw / 2))
        ys, xs = slice(max(0, y0), min(h, y0 + nh)), slice(max(0, x0), min(w, x0 + nw))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            return m, (np.zeros((h, w, 3), np.float32) if colour else None)
        py, px = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
        m[ys, xs] = a[py, px]
        rgb = None
        if colour:
            rgb = np.zeros((h, w, 3), np.float32)
            rgb[ys, xs] = cv2.resize(spec["rgb"], (nw, nh), interpolation=cv2.INTER_LINEAR)[py, px]
        return m, rgb
    if spec["kind"] == "ellipse":
        axes = (max(1, int(r)), max(1, int(r * spec["aspect"])))
        cv2.ellipse(m, (int(cx), int(cy)), axes, spec["angle"], 0, 360, 1.0, -1)
    else:
        pts = np.asarray([cx, cy]) + spec["poly"] * r
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1.0, cv2.LINE_8, 4)
    return m, None


def _random_spec(rng: np.random.Generator, obj: np.ndarray) -> dict:
    ys, xs = np.nonzero(obj)
    i = rng.integers(len(ys))
    size = np.sqrt(len(ys)) * rng.uniform(0.3, 0.6)
    kind = ["object", "object", "ellipse", "rect", "poly"][rng.integers(5)]
    spec = {"kind": kind, "centre": (float(xs[i]) + rng.normal(0, size * 0.3), float(ys[i]) + rng.normal(0, size * 0.3)),
            "size": size, "aspect": rng.uniform(0.3, 1.0), "angle": rng.uniform(0, 180)}
    if kind == "object":
        spec["rgb"], spec["alpha"] = object_patch(rng)
        spec["size"] = size * 1.5
    elif kind == "rect":
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


def _coverage(obj: np.ndarray, specs: list[dict], scale: float) -> tuple[np.ndarray, float]:
    h, w = obj.shape
    m = np.zeros((h, w), bool)
    for sp in specs:
        m |= _place(h, w, sp, scale)[0] > 0.5
    return m, float((m & obj).sum()) / float(obj.sum())


def plan_occluders(obj: np.ndarray, level: str, rng: np.random.Generator, tries: int = 8) -> tuple[list[dict], float, float]:
    """Occluders (specs) and their common scale covering a fraction of ``obj`` inside the level's range."""
    lo, hi = level_range(level)
    if obj.sum() < 1:
        raise InputError("cannot occlude an empty object mask")
    target = rng.uniform(lo + 0.02, hi - 0.02)
    best: tuple[list[dict], float, float] = ([], 0.0, -1.0)
    for _ in range(tries):
        specs = [_random_spec(rng, obj) for _ in range(int(rng.integers(1, 3)))]
        a, b = 0.0, 1.0
        while _coverage(obj, specs, b)[1] < target and b < 64:
            b *= 2
        for _ in range(14):
            mid = (a + b) / 2
            if _coverage(obj, specs, mid)[1] < target:
                a = mid
            else:
                b = mid
        f = _coverage(obj, specs, b)[1]
        if lo <= f <= hi:
            return specs, b, f
        if abs(f - target) < abs(best[2] - target):
            best = (specs, b, f)
    # fallback: a textured band sliding in from the left; coverage grows monotonically with its width
    h, w = obj.shape
    xs = np.nonzero(obj)[1]
    for x in range(int(xs.min()), int(xs.max()) + 2):
        poly = np.array([[-1.0, -1.0], [x, -1.0], [x, h + 1.0], [-1.0, h + 1.0]])
        spec = {"kind": "poly", "centre": (0.0, 0.0), "size": 1.0, "poly": poly}
        f = _coverage(obj, [spec], 1.0)[1]
        if f >= target:
            return [spec], 1.0, f
    return best


def occluder_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """What a shape occluder looks like: a textured colour or a piece of another background."""
    if rng.uniform() < 0.4:
        return background(rng, h, w, clutter=True)
    img = np.broadcast_to(rand_color(rng, sat=(0, 1), val=(0.1, 1)), (h, w, 3)).astype(np.float32)
    img = img * texture(rng, h, w)
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    return np.clip(img * (1 + rng.uniform(-0.3, 0.3) * yy), 0, 255)


def occlude(image: np.ndarray, obj: np.ndarray, level: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Paste occluders over ``image`` (float or uint8 BGR).

    Returns (image, occluder mask uint8 [H, W], coverage of ``obj``)."""
    h, w = obj.shape
    obj = obj.astype(bool)
    specs, scale, _ = plan_occluders(obj, level, rng)
    out = image.astype(np.float32, copy=True)
    full = np.zeros((h, w), bool)
    for sp in specs:
        a, rgb = _place(h, w, sp, scale, colour=sp["kind"] == "object")
        sel = a > 0.5
        full |= sel
        if rgb is not None:
            # un-premultiply: inside the mask the occluder is opaque (hard edges, like a pasted cut-out)
            col = rgb / np.maximum(a, 1e-3)[..., None]
            out[sel] = col[sel]
        else:
            tex = occluder_texture(rng, h, w)
            out[sel] = tex[sel]
    frac = float((full & obj).sum()) / float(obj.sum())
    return np.clip(out, 0, 255).astype(image.dtype), full.astype(np.uint8), frac
