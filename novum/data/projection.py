"""The upstream camera (novum.pose.camera, docs/upstream.md 5.3) in numpy, for the generator.

Same math as :func:`novum.pose.camera.project_pascal` (tested to agree), without torch, so that data
generation stays light. Vertices are in the PASCAL CAD frame (z up); pixel (i, j) has its centre at
(u, v) = (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import numpy as np


def camera_position(azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """Camera centre in the pytorch3d view frame (y up): [d cos e sin a, d sin e, d cos e cos a]."""
    return np.array([distance * np.cos(elevation) * np.sin(azimuth), distance * np.sin(elevation),
                     distance * np.cos(elevation) * np.cos(azimuth)], dtype=np.float64)


def camera_position_pascal(azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """Camera centre in the PASCAL frame: view (x, y, z) = (X, Z, -Y)."""
    c = camera_position(azimuth, elevation, distance)
    return np.array([c[0], -c[2], c[1]])


def rotation(azimuth: float, elevation: float, theta: float) -> np.ndarray:
    """R = look_at(C) @ Rz(theta) (columns x|y|z), row-vector convention: X_view = (v - C) R."""
    c = camera_position(azimuth, elevation, 1.0)
    z = -c / np.linalg.norm(c)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= max(np.linalg.norm(x), 1e-5)
    y = np.cross(z, x)
    y /= max(np.linalg.norm(y), 1e-5)
    look = np.stack([x, y, z], 1)
    ct, st = np.cos(theta), np.sin(theta)
    rz = np.array([[ct, -st, 0.0], [st, ct, 0.0], [0.0, 0.0, 1.0]])
    return look @ rz


def to_camera(verts_pascal: np.ndarray, pose) -> np.ndarray:
    """PASCAL-frame points [..., 3] -> camera-frame points [..., 3] (Z = depth) for pose (a, e, theta, d)."""
    a, e, t, d = (float(v) for v in pose)
    v = np.asarray(verts_pascal, dtype=np.float64)
    view = np.stack([v[..., 0], v[..., 2], -v[..., 1]], -1)
    return (view - camera_position(a, e, d)) @ rotation(a, e, t)


def project_camera(x_cam: np.ndarray, focal: float, image_size: tuple[int, int]) -> np.ndarray:
    """Camera-frame points -> (u, v) = (col, row) pixel coordinates (upstream mirrored principal point)."""
    h, w = image_size
    z = x_cam[..., 2]
    return np.stack([w / 2 - focal * x_cam[..., 0] / z, h / 2 - focal * x_cam[..., 1] / z], -1)


def project(verts_pascal: np.ndarray, pose, focal: float, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """PASCAL-frame vertices -> (uv [V, 2] pixels, depth [V]); pose = (azimuth, elevation, theta, distance)."""
    xc = to_camera(verts_pascal, pose)
    return project_camera(xc, focal, image_size), xc[..., 2]


def uv_to_kp(uv: np.ndarray, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) -> int (row, col) of the pixel holding the point, clipped; and whether it was inside."""
    h, w = image_size
    rc = np.floor(uv[:, ::-1]).astype(np.int64)
    inside = (rc[:, 0] >= 0) & (rc[:, 0] < h) & (rc[:, 1] >= 0) & (rc[:, 1] < w)
    rc[:, 0] = np.clip(rc[:, 0], 0, h - 1)
    rc[:, 1] = np.clip(rc[:, 1], 0, w - 1)
    return rc, inside
