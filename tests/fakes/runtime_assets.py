"""Files the runtime tests share, made once per test process: the small model as a native
checkpoint and as ONNX (with the features output), and generated videos (mp4v / MJPG only)."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import cv2
import numpy as np

H, W = 128, 160


@functools.lru_cache(maxsize=None)
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="novum-rt-tests-"))


@functools.lru_cache(maxsize=None)
def small_native(seed: int = 0) -> Path:
    from factories import make_small_model

    from novum.checkpoint import save_native

    path = workdir() / f"small{seed}.safetensors"
    save_native(make_small_model(seed), path)
    return path


@functools.lru_cache(maxsize=None)
def small_onnx(seed: int = 0, features: bool = True) -> Path:
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    path = workdir() / f"small{seed}{'-f' if features else ''}.onnx"
    export_onnx(load_model(small_native(seed)), path, features=features, max_batch=4)
    return path


def frames(n: int, h: int = 180, w: int = 240, seed: int = 0) -> np.ndarray:
    from factories import structured_frames

    return structured_frames(n, h, w, seed)


def write_video(path: Path, imgs: np.ndarray, fps: float = 10.0) -> Path:
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    h, w = imgs.shape[1:3]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert wr.isOpened(), f"cannot write {path}"
    for f in imgs:
        wr.write(f)
    wr.release()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out
