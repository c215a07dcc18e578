"""Part-correspondence overlay (the paper's interpretability pictures), numpy + OpenCV only.

Each feature cell's winning vertex (the model's ``vertex`` output: bank row ``c * max_n + v``, or
-1) is coloured by that vertex's normalised position on its class cuboid, as upstream's
``viz/texture_bank.pth``: (x, y, z) in [0, 1] written as the B, G, R channels, which is what the
paper's figures show after upstream's BGR2RGB swap. Cells with no winner stay transparent.

``config`` is the ModelConfig dict (ONNX metadata ``novum_config``); the class meshes are rebuilt
from ``extents`` and ``n_list`` (:func:`novum.mesh.mesh_with_count`) once per model and cached.
"""
from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np

from novum.config import PASCAL3D_N_LIST
from novum.errors import InputError
from novum.mesh import mesh_with_count, nocs_colors, upstream_extents

_TABLES: dict[str, np.ndarray] = {}


def _as_dict(config: Any) -> dict:
    if isinstance(config, dict):
        return config
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise InputError(f"part colours need the model config as a dict, got {type(config).__name__}")




def color_table(config: Any) -> np.ndarray:
    """uint8 [C * max_n + 1, 3] BGR colour of every bank row; padding rows and the last row
    (looked up for -1) are black. Cached per model."""
    cfg = _as_dict(config)
    n_list, max_n = [int(n) for n in cfg["n_list"]], int(cfg["max_n"])
    extents = cfg.get("extents")
    key = json.dumps([n_list, max_n, extents])
    table = _TABLES.get(key)
    if table is not None:
        return table
    if extents is None:
        if tuple(n_list) != PASCAL3D_N_LIST:
            raise InputError("the model config has no class extents, so part colours cannot be built; "
                             "re-export the model from a checkpoint with cuboid meshes")
        extents = upstream_extents()    # same grid as the official meshes, so the same normalised colours
    table = np.zeros((len(n_list) * max_n + 1, 3), np.uint8)
    for c, (e, n) in enumerate(zip(extents, n_list)):
        col = nocs_colors(mesh_with_count(e, n)[0])
        table[c * max_n: c * max_n + n] = np.round(col * 255).astype(np.uint8)
    _TABLES[key] = table
    return table


def part_colors(vertex: np.ndarray, config: Any) -> np.ndarray:
    """uint8 [h, w, 3] BGR colours for a vertex map [h, w] (int, -1 = none -> black)."""
    table = color_table(config)
    v = np.asarray(vertex)
    if v.ndim != 2:
        raise InputError(f"vertex map has shape {v.shape}, expected [h, w] (one image of the 'vertex' output)")
    idx = np.where((v >= 0) & (v < len(table) - 1), v, len(table) - 1)
    return table[idx]


def blend_parts(frame_bgr: np.ndarray, vertex: np.ndarray, config: Any, alpha: float = 0.5) -> np.ndarray:
    """The frame with part colours blended over the cells that have a winning vertex (a new image;
    the map is upsampled nearest to the frame, which must show the model-input framing)."""
    H, W = frame_bgr.shape[:2]
    colors = cv2.resize(part_colors(vertex, config), (W, H), interpolation=cv2.INTER_NEAREST)
    mask = cv2.resize((np.asarray(vertex) >= 0).astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST) > 0
    out = frame_bgr.copy()
    mixed = cv2.addWeighted(frame_bgr, 1.0 - alpha, colors, alpha, 0.0)
    out[mask] = mixed[mask]
    return out
