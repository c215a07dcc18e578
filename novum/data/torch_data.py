"""Batching Samples for torch training (the generator itself stays torch-free)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from novum.data.sample import Sample


def collate(samples: Sequence[Sample], max_n: int) -> dict[str, torch.Tensor]:
    """Stack samples: images uint8 [B,H,W,3] BGR, labels [B], kp [B,max_n,2] padded with -1 (visible
    False), visible [B,max_n], kp_weights [B,max_n] (1 where unknown, 0 on padding), pose [B,4], box [B,4]."""
    b = len(samples)
    kp = np.full((b, max_n, 2), -1, np.int64)
    vis = np.zeros((b, max_n), bool)
    wts = np.zeros((b, max_n), np.float32)
    for i, s in enumerate(samples):
        n = len(s.kp)
        if n > max_n:
            raise ValueError(f"sample {s.name!r} has {n} keypoints, more than max_n={max_n}")
        kp[i, :n] = s.kp
        vis[i, :n] = s.visible
        wts[i, :n] = s.kp_weights if s.kp_weights is not None else 1.0
    return {
        "images": torch.from_numpy(np.stack([s.image for s in samples])),
        "labels": torch.tensor([s.label for s in samples], dtype=torch.int64),
        "kp": torch.from_numpy(kp), "visible": torch.from_numpy(vis), "kp_weights": torch.from_numpy(wts),
        "pose": torch.from_numpy(np.stack([np.asarray(s.pose, np.float32) for s in samples])),
        "box": torch.from_numpy(np.stack([np.asarray(s.box, np.int64) for s in samples])),
    }
