"""Posed cuboid wireframes on frames, numpy + OpenCV only (the runtime imports this without torch).

The projection is the upstream camera of :mod:`novum.pose.camera` (section 5.3) written in numpy:
camera at ``C`` (spherical azimuth, elevation, distance) looking at the origin with up +y, rolled by
theta; ``u = W/2 - f X/Z``, ``v = H/2 - f Y/Z`` with the model-input focal ``config.focal`` and size
``config.input_size``. A test checks it against the torch version.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from novum.data.projection import project

# The 12 edges of a cuboid whose 8 corners are indexed by bits (x, y, z) = (i & 1, i >> 1 & 1, i >> 2 & 1).
CUBOID_EDGES: tuple[tuple[int, int], ...] = tuple(
    (i, i | b) for i in range(8) for b in (1, 2, 4) if not i & b)


def _get(config: Any, key: str):
    return config[key] if isinstance(config, dict) else getattr(config, key)


def cuboid_corners(extents) -> np.ndarray:
    """The 8 corners [8, 3] of a cuboid (x0, x1, y0, y1, z0, z1), PASCAL frame; see CUBOID_EDGES."""
    x0, x1, y0, y1, z0, z1 = (float(v) for v in extents)
    return np.array([[(x0, x1)[i & 1], (y0, y1)[i >> 1 & 1], (z0, z1)[i >> 2 & 1]] for i in range(8)], np.float64)


def project_points(points_pascal: np.ndarray, pose, focal: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """PASCAL-frame points [N, 3] -> pixels [N, 2] (u, v) and depth [N] for a pose
    (azimuth, elevation, theta, distance) seen with ``focal`` in an image of ``size`` (H, W):
    the upstream camera in numpy (:mod:`novum.data.projection`, tested against novum.pose.camera)."""
    return project(np.asarray(points_pascal, np.float64), [float(v) for v in list(pose)[:4]], focal, size)


def draw_wireframe(frame_bgr: np.ndarray, pose, config: Any, extents=None, color=(0, 255, 255),
                   thickness: int = 1, scale: float | tuple[float, float] | None = None) -> np.ndarray:
    """Draw the 12 edges of the posed class cuboid on ``frame_bgr`` (in place; returned).

    ``pose``: a :class:`~novum.pose.refine.PoseResult` (its label picks the class cuboid) or
    (azimuth, elevation, theta, distance) with ``extents`` given. ``config``: the ModelConfig or its
    dict. The frame must show the model-input framing; a frame of another size is taken as a resize
    of it unless ``scale`` (input pixels -> frame pixels, one factor or (sx, sy)) is given.
    """
    if extents is None:
        label = getattr(pose, "label", None)
        all_ext = _get(config, "extents")
        if label is None or all_ext is None:
            raise ValueError("draw_wireframe needs the class extents: pass a PoseResult and a config with extents, or extents=")
        extents = all_ext[int(label)]
    values = pose.pose if hasattr(pose, "pose") else pose
    H, W = (int(v) for v in _get(config, "input_size"))
    uv, depth = project_points(cuboid_corners(extents), values, float(_get(config, "focal")), (H, W))
    if scale is None:
        sx, sy = frame_bgr.shape[1] / W, frame_bgr.shape[0] / H
    else:
        sx, sy = (scale, scale) if np.isscalar(scale) else scale
    if not (np.isfinite(uv).all() and (depth > 0).all()):
        return frame_bgr                                   # camera inside or behind: nothing sensible to draw
    import cv2   # here, not at the top: importing novum.pose must not need OpenCV (novum-pose names what is missing)

    pts = np.round(uv * [sx, sy] * 16).astype(np.int64)   # 4 bits of sub-pixel precision
    for i, j in CUBOID_EDGES:
        cv2.line(frame_bgr, tuple(int(v) for v in pts[i]), tuple(int(v) for v in pts[j]), color, thickness,
                 cv2.LINE_AA, shift=4)
    return frame_bgr
