"""Pose of one image with a deployed model: classify, refine, draw (what ``novum-pose IMAGE`` runs).

The feature map comes from the model itself: torch for a checkpoint, or the runtime backend
(ONNX Runtime / TensorRT) for an export made with ``--features``; the class volumes always come
from a checkpoint (the export's own checkpoint via ``--checkpoint``). The image is framed as
novum-run frames video (centre crop to the model's aspect, resize), so it should show one object
centred at the training scale. The refiner and checkpoints are torch (imported when used, as
everywhere in the runtime).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from novum.contracts.framing import Framer
from novum.errors import InputError
from novum.io import atomic_write_bytes
from novum.pose.draw import draw_wireframe
from novum.runtime.backends import load
from novum.runtime.parts import blend_parts

EXPORT_SUFFIXES = (".onnx", ".engine", ".plan")


@dataclass
class ImagePose:
    """The result of :func:`estimate_image`."""

    class_name: str
    class_index: int
    predicted: str                # the classifier's top class (the pose uses class_name)
    pose: Any                     # PoseResult
    overlay: Path | None

    def to_dict(self) -> dict:
        from novum.pose.angles import pose_degrees

        return {"class": self.class_name, "class_index": self.class_index, "predicted": self.predicted,
                **pose_degrees(self.pose), "overlay": str(self.overlay) if self.overlay else None}


def _read_image(path: str | Path) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: image not found")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{p}: not a readable image (use PNG or JPEG)")
    return img


class _Model:
    """The classifier that gives the feature map (torch or a runtime backend) and the class volumes."""

    def __init__(self, model_path: Path, checkpoint: Path | None) -> None:
        from novum.checkpoint import load_model

        self.backend = None
        if model_path.suffix.lower() in EXPORT_SUFFIXES:
            if not model_path.is_file():
                raise InputError(f"{model_path}: model not found")
            self.backend = load(model_path)   # first: a broken file is reported as broken, whatever else is missing
            if checkpoint is None:
                self.backend.close()
                raise InputError(f"{model_path.name}: an exported model holds no class meshes; pass --checkpoint "
                                 f"model.safetensors (the checkpoint it was exported from)")
            try:
                self.torch_model = load_model(checkpoint)
            except BaseException:
                self.backend.close()
                raise
            if "features" not in self.backend.output_names:
                self.backend.close()
                raise InputError(f"{model_path.name}: the export has no 'features' output; re-export with "
                                 f"novum-export --features, or pass the .safetensors checkpoint as --model")
            meta = self.backend.metadata
            mine = self.torch_model.config
            if list(meta.get("classes", mine.classes)) != list(mine.classes) or \
                    [int(n) for n in meta.get("n_list", mine.n_list)] != list(mine.n_list):
                self.backend.close()
                raise InputError(f"{checkpoint.name} does not match {model_path.name} (classes or vertex counts "
                                 f"differ); pass the checkpoint the model was exported from")
        else:
            self.torch_model = load_model(model_path)
        self.config = self.torch_model.config
        self.volumes = self.torch_model.volumes

    def infer(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        if self.backend is not None:
            try:
                return self.backend.infer(frame[None])
            finally:
                self.backend.close()
        import torch

        with torch.no_grad():
            out = self.torch_model.predict_bgr(torch.from_numpy(np.ascontiguousarray(frame[None])))
        return {k: v.numpy() for k, v in out.items()}


def render_overlay(image: np.ndarray, config, pose, vertex: np.ndarray | None = None, lines: list[str] = (),
                   min_side: int = 480) -> np.ndarray:
    """The model-input image enlarged, part colours (if ``vertex``), the posed wireframe, text."""
    H, W = image.shape[:2]
    k = max(1, int(math.ceil(min_side / min(H, W))))
    big = cv2.resize(image, (W * k, H * k), interpolation=cv2.INTER_LINEAR)
    cfg = config.to_dict() if hasattr(config, "to_dict") else config
    if vertex is not None:
        big = blend_parts(big, vertex, cfg, alpha=0.55)
    draw_wireframe(big, pose, cfg, color=(0, 255, 255), thickness=2)
    if lines:
        scale, th = 0.5, 1
        sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, th)[0] for t in lines]
        box_w, step = max(w for w, _ in sizes) + 12, max(h for _, h in sizes) + 10
        roi = big[:step * len(lines) + 6, :box_w]
        roi[:] = (roi * 0.35).astype(np.uint8)
        for i, t in enumerate(lines):
            cv2.putText(big, t, (6, step * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), th, cv2.LINE_AA)
    return big


def write_image(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    ext = path.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise InputError(f"{path}: cannot encode an image with suffix '{ext}'; use .png or .jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.tobytes())
    return path


def estimate_image(image: str | Path, model: str | Path, checkpoint: str | Path | None = None,
                   class_name: str | None = None, explain: bool = False, out: str | Path | None = None,
                   box: tuple[int, int, int, int] | None = None, iterations: int | None = None,
                   objective: str = "nemo", clutter: bool = False, restarts: int = 1) -> ImagePose:
    """Classify ``image`` with ``model``, refine the pose of its class (or ``class_name``), and write
    an overlay of the posed cuboid wireframe (with ``explain``, over the part colours) to ``out``."""
    from novum.pose.refine import DEFAULT_ITERATIONS, PoseRefiner

    model_path = Path(model)
    ck = Path(checkpoint) if checkpoint else None
    raw = _read_image(image)
    m = _Model(model_path, ck)
    config = m.config
    frame, _ = Framer(config.input_size)(raw)       # framed as novum-run frames video
    outputs = m.infer(frame)
    scores = np.asarray(outputs["scores"])[0]
    predicted = int(np.argmax(scores))
    classes = list(config.classes)
    if class_name is not None:
        if class_name not in classes:
            raise InputError(f"unknown class '{class_name}'; the model knows: {', '.join(classes)}")
        label = classes.index(class_name)
    else:
        label = predicted
    refiner = PoseRefiner(m.volumes, config, objective=objective, clutter=clutter,
                          iterations=iterations or DEFAULT_ITERATIONS, restarts=restarts)
    result = refiner.refine(np.asarray(outputs["features"])[0], label, box=box)
    overlay = None
    if out is not None:
        lines = [f"{classes[label]}  az {math.degrees(result.azimuth) % 360:.0f}  el {math.degrees(result.elevation):.0f}"
                 f"  theta {math.degrees(result.theta):.0f}  d {result.distance:.2f}",
                 f"pose {1000 * result.seconds:.0f} ms, loss {result.loss:.3f}"]
        vertex = np.asarray(outputs["vertex"])[0] if explain else None
        overlay = write_image(out, render_overlay(frame, config, result, vertex, lines))
    return ImagePose(classes[label], label, classes[predicted], result, overlay)
