"""A PNG contact sheet of a dataset (rows = classes) to look at what is generated."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from novum.errors import InputError
from novum.io import atomic_write_bytes


def grid(dataset, per_row: int | None = None, keypoints: bool = False) -> np.ndarray:
    """Images of a SyntheticDataset laid out one class per row (``per_row`` = samples per class)."""
    per_row = per_row or dataset.cfg.per_class
    rows = []
    for c in range(len(dataset.classes)):
        row = []
        for j in range(per_row):
            s = dataset[c * dataset.cfg.per_class + j]
            im = s.image.copy()
            if keypoints:
                for (r, col) in s.kp[s.visible]:
                    im[r, col] = (0, 255, 0)
            row.append(im)
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)


def write_grid(dataset, out: str | Path, keypoints: bool = False) -> Path:
    out = Path(out)
    ok, buf = cv2.imencode(".png", grid(dataset, keypoints=keypoints))
    if not ok:
        raise InputError("could not encode the preview grid as PNG")
    atomic_write_bytes(out, buf.tobytes())
    return out
