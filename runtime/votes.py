"""Where the votes are: the object as NOVUM sees it, from the ``vertex`` output (numpy + OpenCV).

A feature cell votes for class ``vertex // max_n`` when ``vertex >= 0`` (a cell whose best match is
clutter, i.e. a padding row, votes for no class). The vote box is the box around the cells that vote
for the predicted class: their largest 8-connected group, together with the groups within one cell
of it, so a few stray votes elsewhere in the frame do not stretch the box.
"""
from __future__ import annotations

import cv2
import numpy as np


def class_cells(vertex: np.ndarray, class_index: int, max_n: int) -> np.ndarray:
    """Bool [h, w]: cells voting for ``class_index``."""
    v = np.asarray(vertex)
    return (v >= 0) & (v // max_n == class_index)


def vote_box(vertex: np.ndarray, class_index: int, max_n: int, stride: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) in model-input pixels (end exclusive) around the cells voting for
    ``class_index``, or None when no cell votes for it."""
    cells = class_cells(vertex, class_index, max_n).astype(np.uint8)
    if not cells.any():
        return None
    near = cv2.dilate(cells, np.ones((3, 3), np.uint8))            # groups within one cell merge
    n, labels, stats, _ = cv2.connectedComponentsWithStats(near, connectivity=8)
    votes = np.bincount(labels[cells > 0], minlength=n)
    votes[0] = 0
    keep = (labels == int(np.argmax(votes))) & (cells > 0)
    ys, xs = np.nonzero(keep)
    return int(xs.min()) * stride, int(ys.min()) * stride, (int(xs.max()) + 1) * stride, (int(ys.max()) + 1) * stride
