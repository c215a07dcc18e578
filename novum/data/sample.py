"""The sample contract every dataset here yields (synthetic generator, PASCAL3D+ loader).

Images are uint8 BGR [H, W, 3] framed as the model expects (object centred, scale of an object at
``distance`` seen with the config's focal length, zero padding); keypoints are the class cuboid's
mesh vertices projected into that image, (row, col), in the NeMo/NOVUM annotation convention.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sample:
    image: np.ndarray        # uint8 [H, W, 3] BGR
    label: int               # class index into config.classes
    kp: np.ndarray           # int [n_c, 2] (row, col) of each mesh vertex, clipped to the image ("cropped_kp_list")
    visible: np.ndarray      # bool [n_c] vertex visible (self-occlusion z-test and inside the image)
    pose: np.ndarray         # float32 [4]: azimuth, elevation, theta (radians), distance
    box: np.ndarray          # int [4]: y0, y1, x0, x1 object box in image pixels
    mask: np.ndarray | None = None        # uint8 [H, W] object mask (1 = object), if known
    occluder: np.ndarray | None = None    # uint8 [H, W] occluder mask, if any
    name: str = ""
    kp_weights: np.ndarray | None = None  # float32 [n_c] |cos(vertex normal, view direction)| (upstream), if known
