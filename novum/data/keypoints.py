"""NeMo/NOVUM keypoint annotations of a class cuboid: projected vertices, visibility, weights.

Visibility follows upstream (a z-buffer test of the cuboid's own triangles, occluders ignored, AND
inside the image). The cuboid is convex, so a vertex passes the z-test exactly when it lies on a
face turned towards the camera; this is what is computed here, without a rasteriser. ``kp_weights``
is |cos| between the vertex normal (mean of the normals of the faces it lies on) and the direction
to the camera.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from novum.data.projection import camera_position_pascal, project, uv_to_kp
from novum.mesh import mesh_with_count


@lru_cache(maxsize=64)
def class_mesh(extents: tuple[float, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The cuboid mesh of ``extents`` with ``n`` vertices (the model's keypoints), cached."""
    v, f = mesh_with_count(extents, n)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


def cuboid_faces(verts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the 6 cuboid faces each vertex lies on (bool [V, 6]) and the face normals [6, 3]."""
    lo, hi = verts.min(0), verts.max(0)
    tol = 1e-5 * float(np.max(hi - lo))
    on = np.zeros((len(verts), 6), bool)
    normals = np.zeros((6, 3))
    for k in range(3):
        on[:, 2 * k] = np.abs(verts[:, k] - lo[k]) < tol
        on[:, 2 * k + 1] = np.abs(verts[:, k] - hi[k]) < tol
        normals[2 * k, k], normals[2 * k + 1, k] = -1.0, 1.0
    return on, normals


def annotate(verts: np.ndarray, pose, focal: float, image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Keypoints of cuboid vertices at pose (azimuth, elevation, theta, distance).

    Returns ``kp`` int [V, 2] (row, col) clipped, ``visible`` bool [V], ``kp_weights`` float32 [V],
    ``uv`` float [V, 2] unclipped (col, row) sub-pixel positions.
    """
    verts = np.asarray(verts, dtype=np.float64)
    uv, _ = project(verts, pose, focal, image_size)
    kp, inside = uv_to_kp(uv, image_size)
    on, normals = cuboid_faces(verts)
    lo, hi = verts.min(0), verts.max(0)
    cam = camera_position_pascal(pose[0], pose[1], pose[3])
    plane = np.stack([lo, hi], 1).reshape(-1)                 # face k*2+s lies at coordinate plane[k*2+s]
    facing = np.array([(cam[i // 2] - plane[i]) * normals[i, i // 2] > 0 for i in range(6)])
    visible = np.any(on & facing[None], 1) & inside
    vn = on.astype(np.float64) @ normals
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    view = cam[None] - verts
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    weights = np.abs(np.sum(vn * view, 1)).astype(np.float32)
    return {"kp": kp, "visible": visible, "kp_weights": weights, "uv": uv}
