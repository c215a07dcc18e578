"""The demo clip: generated objects turning in front of a background while occluders pass by.

One segment per class: an instance rotates (azimuth sweep, gently varying elevation), and during part
of the segment a textured occluder slides across the frame. Framing is the model's (object at the
image centre, focal ``3000 * H / 640``, distance 5), so the runtime's whole-frame resize to the input
size keeps it in distribution. Written with OpenCV's ``mp4v`` codec; the per-frame ground truth
(class, pose, occluder coverage) can be saved as JSON next to it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from novum.config import PASCAL3D_CLASSES, small_config
from novum.data.backgrounds import background, texture
from novum.data.objects import build_object
from novum.data.occluders import occluder_texture
from novum.data.projection import camera_position_pascal
from novum.data.render import compile_shape, render
from novum.errors import InputError
from novum.io import atomic_path, atomic_write_text

DEFAULT_CLIP_CLASSES = ("car", "aeroplane", "bicycle", "chair", "bus", "tvmonitor", "bottle")


def clip_frames(classes: Sequence[str] = DEFAULT_CLIP_CLASSES, seconds_per_class: float = 2.0, fps: float = 15.0,
                image_size: tuple[int, int] = (256, 320), seed: int = 0, all_classes: Sequence[str] = PASCAL3D_CLASSES):
    """Yield (frame uint8 BGR [H, W, 3], truth dict) for every frame of the clip."""
    classes = tuple(classes or DEFAULT_CLIP_CLASSES)
    h, w = image_size
    unknown = [c for c in classes if c not in all_classes]
    if unknown:
        raise InputError(f"unknown classes {unknown} for the clip; choose from {', '.join(all_classes)}")
    cfg = small_config(classes=tuple(all_classes), input_size=(h - h % 8, w - w % 8))
    focal = 3000.0 * h / 640.0
    n = max(2, int(round(seconds_per_class * fps)))
    for k, name in enumerate(classes):
        label = list(all_classes).index(name)
        rng = np.random.default_rng([seed, 99, k])
        model = compile_shape(build_object(name, rng, cfg.extents[label]))
        bg = background(rng, h, w, clutter=rng.uniform() < 0.5)
        tex = texture(rng, h, w)
        az0 = rng.uniform(0, 2 * np.pi)
        turn = rng.choice([-1, 1]) * rng.uniform(0.6, 1.0) * np.pi
        el0, el1 = np.deg2rad(rng.uniform(0, 25)), np.deg2rad(rng.uniform(5, 35))
        light = camera_position_pascal(az0, el0, 1.0) * 0.5 + np.array([0.3, -0.2, 1.0])
        light /= np.linalg.norm(light)
        ambient = rng.uniform(0.35, 0.55)
        occ_tex = occluder_texture(rng, h, w)
        occ_r = rng.uniform(0.18, 0.3) * h
        occ_aspect = rng.uniform(0.5, 1.2)
        occ_y = h * rng.uniform(0.3, 0.7)
        occ_dir = rng.choice([-1, 1])
        t0, t1 = rng.uniform(0.25, 0.4), rng.uniform(0.7, 0.9)   # occluder crossing window (fraction of the segment)
        for i in range(n):
            f = i / (n - 1)
            pose = np.array([(az0 + turn * f) % (2 * np.pi), el0 + (el1 - el0) * f, 0.0, 5.0])
            rgb, alpha = render(model, pose, focal, (h, w), light, ambient=ambient)
            img = bg * (1 - alpha[..., None]) + rgb * tex
            cover = 0.0
            if t0 <= f <= t1:
                g = (f - t0) / (t1 - t0)
                cx = (-occ_r + g * (w + 2 * occ_r)) if occ_dir > 0 else (w + occ_r - g * (w + 2 * occ_r))
                m = np.zeros((h, w), np.uint8)
                cv2.ellipse(m, (int(cx), int(occ_y)), (int(occ_r), int(occ_r * occ_aspect)), 20.0 * g, 0, 360, 1, -1)
                sel = m.astype(bool)
                img[sel] = occ_tex[sel]
                obj = alpha > 0.5
                cover = float((sel & obj).sum() / max(obj.sum(), 1))
            frame = np.clip(img, 0, 255).astype(np.uint8)
            yield frame, {"frame": None, "class": name, "label": label, "azimuth": float(pose[0]),
                          "elevation": float(pose[1]), "theta": 0.0, "distance": 5.0, "occluded": round(cover, 3)}


def make_clip(out: str | Path, classes: Sequence[str] = DEFAULT_CLIP_CLASSES, seconds_per_class: float = 2.0,
              fps: float = 15.0, image_size: tuple[int, int] = (256, 320), seed: int = 0,
              truth: str | Path | None = None) -> Path:
    """Render the demo clip to ``out`` (mp4v); optionally write the per-frame truth as JSON to ``truth``."""
    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".avi", ".mov"):
        raise InputError(f"{out}: the clip needs a video file name ending in .mp4")
    h, w = image_size
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = []
    with atomic_path(out, keep_suffix=True) as tmp:
        vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not vw.isOpened():
            raise InputError("OpenCV cannot write mp4v video here; install opencv-python(-headless) with FFmpeg")
        try:
            for k, (frame, info) in enumerate(clip_frames(classes, seconds_per_class, fps, image_size, seed)):
                vw.write(frame)
                info["frame"] = k
                frames.append(info)
        finally:
            vw.release()
    if truth is not None:
        atomic_write_text(truth, json.dumps({"fps": fps, "size": [h, w], "focal": 3000.0 * h / 640.0,
                                             "frames": frames}, indent=0))
    return out
