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


def _newell(p: np.ndarray) -> np.ndarray:
    q = np.roll(p, -1, 0)
    n = np.array([np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2])),
                  np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0])),
                  np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1]))])
    return n / max(np.linalg.norm(n), 1e-12)


def compile_shape(shape: Shape) -> Compiled:
    """Flatten the parts into arrays and orient every face normal outwards."""
    verts, faces, part, decal, normal, centroid, color, pc = [], [], [], [], [], [], [], []
    base = 0
    for pi, p in enumerate(shape.parts):
        centre = p.verts.mean(0)
        pc.append(centre)
        verts.append(p.verts)
        polys = [(np.asarray(f) + base, p.verts[f], p.color, False) for f in p.faces]
        base += len(p.verts)
        for pts, col in p.decals:
            verts.append(pts)
            polys.append((np.arange(base, base + len(pts)), pts, col, True))
            base += len(pts)
        for idx, pts, col, is_decal in polys:
            n = _newell(pts)
            c = pts.mean(0)
            if np.dot(n, c - centre) < 0:
                n = -n
            faces.append(idx)
            part.append(pi)
            decal.append(is_decal)
            normal.append(n)
            centroid.append(c)
            color.append(col)
    return Compiled(np.concatenate(verts), faces, np.asarray(part), np.asarray(decal), np.asarray(normal),
                    np.asarray(centroid), np.asarray(color, dtype=np.float64), np.asarray(pc))


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
