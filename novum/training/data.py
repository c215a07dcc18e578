"""Training/evaluation data held in memory as packed arrays, built once from Sample objects.

``PackedSamples`` stores uint8 images plus per-vertex keypoints padded to ``max_n`` (padding rows
are never visible, so they are never gathered), and per feature cell whether noise (background)
features may be drawn there. ``batch`` turns indices into tensors, with cheap photometric
augmentation (brightness, contrast, per-channel gain) from a seeded generator.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from novum.config import ModelConfig
from novum.data.sample import Sample
from novum.errors import InputError
from novum.io import atomic_path


@dataclass
class PackedSamples:
    images: np.ndarray      # uint8 [N, H, W, 3] BGR
    labels: np.ndarray      # int64 [N]
    kp: np.ndarray          # int16 [N, max_n, 2] (row, col); padding rows 0
    visible: np.ndarray     # bool [N, max_n]; False on padding rows
    boxes: np.ndarray       # int32 [N, 4] y0, y1, x0, x1
    background: np.ndarray  # bool [N, h*w] cells free of object and keypoints

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx) -> "PackedSamples":
        return PackedSamples(*(getattr(self, f.name)[idx] for f in fields(self)))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{f.name: getattr(self, f.name) for f in fields(self)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PackedSamples":
        with np.load(path, allow_pickle=False) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})

    def batch(self, idx, device: str | torch.device = "cpu", augment: bool = False,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Tensors for the samples ``idx``: images uint8 [B,H,W,3] (augmented if asked), labels,
        kp, visible, boxes, background."""
        idx = np.asarray(idx)
        images = torch.from_numpy(self.images[idx])
        if augment:
            images = photometric(images, generator)
        out = {"images": images, "labels": torch.from_numpy(self.labels[idx]).long(),
               "kp": torch.from_numpy(self.kp[idx].astype(np.int64)),
               "visible": torch.from_numpy(self.visible[idx]),
               "boxes": torch.from_numpy(self.boxes[idx].astype(np.int64)),
               "background": torch.from_numpy(self.background[idx])}
        return {k: v.to(device) for k, v in out.items()}


def photometric(images: Tensor, generator: torch.Generator | None = None, strength: float = 1.0) -> Tensor:
    """Random brightness (+-25), contrast (x0.7..1.3) and channel gain (x0.9..1.1) per image, uint8 in/out."""
    B = images.shape[0]
    x = images.float()
    u = torch.rand(B, 5, generator=generator)
    contrast = 1 + strength * (u[:, 0] * 0.6 - 0.3)
    bright = strength * (u[:, 1] * 50 - 25)
    gain = 1 + strength * (u[:, 2:5] * 0.2 - 0.1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(B, 1, 1, 1) + mean + bright.view(B, 1, 1, 1)
    x = x * gain.view(B, 1, 1, 3)
    return x.round().clamp(0, 255).to(torch.uint8)


def background_cells(sample: Sample, feature_size: tuple[int, int], stride: int) -> np.ndarray:
    """Bool [h*w]: cells holding no object pixel (mask, else the box) and no keypoint."""
    h, w = feature_size
    if sample.mask is not None:
        m = np.asarray(sample.mask)[: h * stride, : w * stride] > 0
        obj = m.reshape(h, stride, w, stride).any(axis=(1, 3))
    else:
        obj = np.zeros((h, w), bool)
        y0, y1, x0, x1 = (int(v) for v in sample.box)
        obj[max(0, y0 // stride): max(0, -(-y1 // stride)), max(0, x0 // stride): max(0, -(-x1 // stride))] = True
    kp = np.asarray(sample.kp).reshape(-1, 2).astype(np.int64)
    r = np.clip(kp[:, 0] // stride, 0, h - 1)
    c = np.clip(kp[:, 1] // stride, 0, w - 1)
    obj[r, c] = True
    return ~obj.reshape(-1)


def pack_samples(samples: Iterable[Sample], config: ModelConfig) -> PackedSamples:
    """Validate and pack samples for ``config`` (image size, class count, vertex counts)."""
    H, W = config.input_size
    max_n = config.max_n
    h, w = config.feature_size
    images, labels, kps, vis, boxes, bgs = [], [], [], [], [], []
    for i, s in enumerate(samples):
        img = np.asarray(s.image)
        if img.shape != (H, W, 3) or img.dtype != np.uint8:
            raise InputError(f"sample {i} ({s.name or 'unnamed'}): image {img.shape} {img.dtype}, the model needs "
                             f"uint8 ({H}, {W}, 3); generate the data at the model's input size")
        if not 0 <= int(s.label) < config.num_classes:
            raise InputError(f"sample {i}: label {s.label} outside the model's {config.num_classes} classes")
        n = config.n_list[int(s.label)]
        kp = np.asarray(s.kp).reshape(-1, 2)
        if kp.shape[0] != n:
            raise InputError(f"sample {i}: {kp.shape[0]} keypoints but class {config.classes[int(s.label)]} has "
                             f"{n} vertices; generate the data with the model's meshes (same vertex count)")
        k = np.zeros((max_n, 2), np.int16)
        k[:n] = np.clip(kp, -32768, 32767)
        v = np.zeros(max_n, bool)
        v[:n] = np.asarray(s.visible).reshape(-1).astype(bool)
        images.append(img)
        labels.append(int(s.label))
        kps.append(k)
        vis.append(v)
        boxes.append(np.asarray(s.box, np.int32).reshape(4))
        bgs.append(background_cells(s, (h, w), config.stride))
    if not images:
        raise InputError("no samples to pack: the dataset is empty")
    return PackedSamples(np.stack(images), np.asarray(labels, np.int64), np.stack(kps), np.stack(vis),
                         np.stack(boxes), np.stack(bgs))
