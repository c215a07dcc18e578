"""Fast CPU rendering of a :class:`~novum.data.shapes.Shape`: painter's algorithm over convex parts.

Parts are sorted back to front by the distance of their centre to the camera; inside a part the faces
facing away are culled (a convex part's front faces never overlap), decals follow their part. Each
face is one ``cv2.fillConvexPoly`` call with sub-pixel coordinates, Lambert shading, at ``ss`` x
supersampling, then area-averaged down: the result is a premultiplied colour and a coverage alpha.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from novum.data.projection import camera_position_pascal, project
from novum.data.shapes import Shape

SHIFT = 4


@dataclass
class Compiled:
    verts: np.ndarray          # [N, 3]
    faces: list[np.ndarray]    # vertex indices of each face
    part: np.ndarray           # [F] part index
    decal: np.ndarray          # [F] bool
    normal: np.ndarray         # [F, 3] outward unit normals
    centroid: np.ndarray       # [F, 3]
    color: np.ndarray          # [F, 3] base colour BGR
    part_centroid: np.ndarray  # [P, 3]


def compile_shape(shape: Shape) -> Compiled:
    """Flatten the parts into arrays and orient every face normal outwards (vectorised Newell normals)."""
    verts, faces, part, decal, color, pc = [], [], [], [], [], []
    base = 0
    for pi, p in enumerate(shape.parts):
        pc.append(p.verts.mean(0))
        verts.append(p.verts)
        for f in p.faces:
            faces.append(np.asarray(f, dtype=np.int64) + base)
        part += [pi] * len(p.faces)
        decal += [False] * len(p.faces)
        color += [p.color] * len(p.faces)
        base += len(p.verts)
        for pts, col in p.decals:
            verts.append(pts)
            faces.append(np.arange(base, base + len(pts)))
            part.append(pi)
            decal.append(True)
            color.append(col)
            base += len(pts)
    v = np.concatenate(verts)
    counts = np.array([len(f) for f in faces])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    flat = np.concatenate(faces)
    pos = np.arange(len(flat)) - np.repeat(starts, counts)
    nxt = flat[np.repeat(starts, counts) + (pos + 1) % np.repeat(counts, counts)]
    p, q = v[flat], v[nxt]
    d, s = p - q, p + q
    terms = np.stack([d[:, 1] * s[:, 2], d[:, 2] * s[:, 0], d[:, 0] * s[:, 1]], 1)
    n = np.add.reduceat(terms, starts, axis=0)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    centroid = np.add.reduceat(p, starts, axis=0) / counts[:, None]
    part_arr = np.asarray(part)
    pc_arr = np.asarray(pc)
    flip = np.einsum("fk,fk->f", n, centroid - pc_arr[part_arr]) < 0
    n[flip] *= -1
    return Compiled(v, faces, part_arr, np.asarray(decal), n, centroid, np.asarray(color, dtype=np.float64), pc_arr)


def render(model: Compiled, pose, focal: float, image_size: tuple[int, int], light: np.ndarray,
           ambient: float = 0.45, ss: int = 2, face_jitter: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render at pose (azimuth, elevation, theta, distance): premultiplied BGR float32 [H, W, 3], alpha [H, W]."""
    h, w = image_size
    uv, depth = project(model.verts, pose, focal, image_size)
    if np.any(depth <= 1e-3):
        raise ValueError("object crosses the camera plane; increase the distance")
    pts = np.round((uv * ss - 0.5) * (1 << SHIFT)).astype(np.int32)
    cam = camera_position_pascal(pose[0], pose[1], pose[3])
    front = np.einsum("fk,fk->f", model.normal, cam - model.centroid) > 0
    shade = ambient + (1 - ambient) * np.clip(model.normal @ light, 0, 1)
    if face_jitter is not None:
        shade = shade * face_jitter
    cols = np.clip(model.color * shade[:, None], 0, 255)
    part_dist = np.linalg.norm(model.part_centroid - cam, axis=1)
    order = np.lexsort((model.decal, -part_dist[model.part]))
    canvas = np.zeros((h * ss, w * ss, 4), np.uint8)
    colours = np.concatenate([cols, np.full((len(cols), 1), 255.0)], 1).tolist()
    faces = model.faces
    for f in order[front[order]]:
        cv2.fillConvexPoly(canvas, pts[faces[f]], colours[f], cv2.LINE_8, SHIFT)
    small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA) if ss > 1 else canvas
    small = small.astype(np.float32)
    alpha = small[..., 3] / 255.0
    return small[..., :3], alpha
