"""Real-looking verification frames: shaded 3-D boxes over textured backgrounds (uint8 BGR).

Random noise is a poor test input (flat score margins, no structure the backbone responds to);
these frames have what camera frames have: smooth shading, hard edges, textures, sensor noise.
Frames from disk (a folder of images) can be used instead: :func:`load_frames`.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from novum.contracts.images import list_images
from novum.errors import InputError


def render_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``n`` uint8 BGR frames [n, h, w, 3], each with one centred box object and clutter."""
    rng = np.random.default_rng(seed)
    return np.stack([_frame(rng, h, w) for _ in range(n)])


def load_frames(folder: str | Path, n: int, h: int, w: int) -> np.ndarray:
    """Up to ``n`` images from ``folder``, resized to h x w (BGR uint8)."""
    files = list_images(folder, f"--verify-images {folder}")[:n]
    out = []
    for p in files:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{p}: not a readable image")
        out.append(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def _frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    base = rng.uniform(40, 215, 3)
    gy, gx = rng.uniform(-60, 60, 2)
    for c in range(3):  # lit background with a texture
        img[..., c] = base[c] + gy * yy / h + gx * xx / w + 12 * np.sin(xx / rng.uniform(2, 9) + yy / rng.uniform(3, 11))
    for _ in range(rng.integers(3, 8)):  # clutter: rectangles and discs
        col = tuple(float(v) for v in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            p1 = (int(p0[0] + rng.uniform(-w / 3, w / 3)), int(p0[1] + rng.uniform(-h / 3, h / 3)))
            cv2.rectangle(img, p0, p1, col, -1)
        else:
            cv2.circle(img, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.uniform(h / 20, h / 6)), col, -1)
    _draw_box(img, rng, h, w)
    img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 1.0))
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_box(img: np.ndarray, rng: np.random.Generator, h: int, w: int) -> None:
    """A shaded cuboid (random size, pose, colour) seen in perspective, centred in the frame."""
    size = rng.uniform(0.4, 1.0, 3) * np.array([1.6, 0.8, 0.7])
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32) * size / 2
    az, el, th = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.6), rng.uniform(-0.2, 0.2)
    rot = _rot_z(th) @ _rot_x(-el) @ _rot_y(az)
    cam = corners @ rot.T + np.array([0, 0, 3.0])
    f = 1.1 * min(h, w)
    pts = np.stack([f * cam[:, 0] / cam[:, 2] + w / 2, f * cam[:, 1] / cam[:, 2] + h / 2], 1)
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    colour = rng.uniform(30, 230, 3)
    light = np.array([0.3, -0.6, -0.75])
    light /= np.linalg.norm(light)
    drawn = []
    for face in faces:
        p = cam[list(face)]
        normal = np.cross(p[1] - p[0], p[2] - p[0])
        normal /= np.linalg.norm(normal) + 1e-9
        centre = p.mean(0)
        if np.dot(normal, centre) >= 0:  # facing away from the camera
            normal = -normal
            if np.dot(normal, centre) >= 0:
                continue
        drawn.append((centre[2], face, 0.35 + 0.65 * max(0.0, float(-np.dot(normal, light)))))
    for _, face, shade in sorted(drawn, key=lambda d: -d[0]):  # far faces first
        poly = np.round(pts[list(face)]).astype(np.int32)
        cv2.fillConvexPoly(img, poly, tuple(float(v) for v in colour * shade))
        cv2.polylines(img, [poly], True, tuple(float(v) for v in colour * shade * 0.5), 1)


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float32)


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)
