"""One convention for poses people read (JSONL, ``novum-pose --json``): degrees, unit in the key.

Internally poses are upstream's radians (:class:`novum.pose.refine.PoseResult`); what is written
out is ``azimuth_deg``, ``elevation_deg``, ``theta_deg`` (degrees), ``distance`` (object units),
``loss`` and ``seconds``. Torch-free.
"""
from __future__ import annotations

import math
from typing import Any

ANGLES = ("azimuth", "elevation", "theta")


def pose_degrees(pose: Any) -> dict[str, float]:
    """A PoseResult (or anything with those attributes) as ``{azimuth_deg, ..., distance, loss, seconds}``."""
    out = {f"{k}_deg": math.degrees(float(getattr(pose, k))) for k in ANGLES}
    for k in ("distance", "loss", "seconds"):
        if getattr(pose, k, None) is not None:
            out[k] = float(getattr(pose, k))
    return out
