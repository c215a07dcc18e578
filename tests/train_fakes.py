"""A tiny stand-in dataset for the training/evaluation tests: coloured cuboids of the model's class
meshes, projected with the upstream camera, yielding novum.data.sample.Sample objects."""
from __future__ import annotations

import cv2
import numpy as np

from novum.config import ModelConfig, small_config
from novum.data.projection import camera_position_pascal, project, uv_to_kp
from novum.data.sample import Sample
from novum.mesh import mesh_with_count

# per face (z0, z1, y0, y1, x0, x1): outward normal
NORMALS = np.array([[0, 0, -1], [0, 0, 1], [0, -1, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0]], np.float64)


def tiny_config(classes=("box", "slab"), input_size=(64, 80)) -> ModelConfig:
    from novum.config import BackboneConfig

    extents = ((-0.25, 0.25, -0.25, 0.25, -0.25, 0.25), (-0.35, 0.35, -0.18, 0.18, -0.12, 0.12))[: len(classes)]
    cfg = small_config(classes=tuple(classes), input_size=input_size, extents=extents, vertices=60,
                       width=8, feature_dim=16)
    cfg.backbone = BackboneConfig(**{**cfg.backbone.__dict__})
    return cfg


def fake_samples(config: ModelConfig, per_class: int, seed: int = 0, occlude: float = 0.0) -> list[Sample]:
    """``per_class`` images per class; faces coloured per class so classes and vertices are learnable."""
    rng = np.random.default_rng(seed)
    H, W = config.input_size
    out = []
    for label, (ext, n) in enumerate(zip(config.extents, config.n_list)):
        verts, _ = mesh_with_count(ext, n)
        lo, hi = np.asarray(ext[0::2]), np.asarray(ext[1::2])
        on_face = _faces_of(verts, lo, hi)
        corners = np.array([[x, y, z] for z in (lo[2], hi[2]) for y in (lo[1], hi[1]) for x in (lo[0], hi[0])])
        colors = np.random.default_rng(100 + label).uniform(40, 255, (6, 3))
        for i in range(per_class):
            pose = (rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.8), rng.uniform(-0.3, 0.3), config.distance)
            img = (rng.uniform(0, 60, (H, W, 3))).astype(np.uint8)
            cam = camera_position_pascal(pose[0], pose[1], pose[3])
            front = np.array([NORMALS[f] @ (cam - corners[_face_corners(f)].mean(0)) > 0 for f in range(6)])
            cuv, cdepth = project(corners, pose, config.focal, (H, W))
            mask = np.zeros((H, W), np.uint8)
            for f in np.argsort([-cdepth[_face_corners(k)].mean() for k in range(6)]):
                if front[f]:
                    poly = np.round(cuv[_face_corners(f)]).astype(np.int32)
                    cv2.fillConvexPoly(img, poly, colors[f].tolist())
                    cv2.fillConvexPoly(mask, poly, 1)
            uv, _ = project(verts, pose, config.focal, (H, W))
            kp, inside = uv_to_kp(uv, (H, W))
            visible = (on_face & front[None]).any(1) & inside
            ys, xs = np.nonzero(mask)
            box = np.array([ys.min(), ys.max() + 1, xs.min(), xs.max() + 1]) if len(ys) else np.array([0, H, 0, W])
            if occlude > 0:
                s = int(occlude * min(H, W))
                y, x = rng.integers(0, H - s), rng.integers(0, W - s)
                img[y:y + s, x:x + s] = rng.uniform(0, 255, 3)
            out.append(Sample(img, label, kp, visible, np.asarray(pose, np.float32), box, mask, None, f"{label}_{i}"))
    return out


def _face_corners(f: int) -> list[int]:
    # corners indexed x + 2y + 4z
    quads = [[0, 1, 3, 2], [4, 5, 7, 6], [0, 1, 5, 4], [2, 3, 7, 6], [0, 2, 6, 4], [1, 3, 7, 5]]
    return quads[f]


def _faces_of(verts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Bool [V, 6]: vertex lies on face (z0, z1, y0, y1, x0, x1)."""
    cols = []
    for a in (2, 1, 0):
        cols += [np.isclose(verts[:, a], lo[a], atol=1e-5), np.isclose(verts[:, a], hi[a], atol=1e-5)]
    return np.stack(cols, 1)
