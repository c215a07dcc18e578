"""The upstream pose metric (docs/upstream.md section 5.7), numpy only.

``cal_rotation_matrix(theta, e, a, d) = Rz(theta) @ Rx(-(pi/2 - e)) @ Rz(-a)`` (the rotation part of
upstream's ``get_transformation_matrix``); the error between two poses is the rotation angle of
``R_pred^T R_gt``: ``arccos((tr - 1) / 2)``, equal to upstream's ``||logm(.)||_F / sqrt(2)``; a
non-finite matrix counts as pi/2. Accuracy is the share of errors below pi/6 and pi/18.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _rz(t: float) -> np.ndarray:
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rx(t: float) -> np.ndarray:
    c, s = math.cos(t), math.sin(t)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def cal_rotation_matrix(theta: float, elevation: float, azimuth: float, distance: float = 5.0) -> np.ndarray:
    """Upstream ``cal_rotation_matrix``: the object-to-camera rotation of a PASCAL3D+ pose.

    ``distance`` does not change the rotation (upstream only guards it against 0)."""
    return _rz(theta) @ _rx(-(math.pi / 2 - elevation)) @ _rz(-azimuth)


def rotation_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Angle in radians of ``pred^T gt`` (3x3 rotations); pi/2 if either is not finite."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if not (np.isfinite(pred).all() and np.isfinite(gt).all()):
        return math.pi / 2
    c = (np.trace(pred.T @ gt) - 1.0) / 2.0
    return float(math.acos(min(1.0, max(-1.0, c))))


def pose_error(pred, gt) -> float:
    """Rotation error between two poses given as (azimuth, elevation, theta[, distance]) radians."""
    pa, pe, pt = (float(v) for v in list(pred)[:3])
    ga, ge, gt_ = (float(v) for v in list(gt)[:3])
    if not all(math.isfinite(v) for v in (pa, pe, pt)):
        return math.pi / 2
    return rotation_error(cal_rotation_matrix(pt, pe, pa), cal_rotation_matrix(gt_, ge, ga))


@dataclass
class PoseAccuracy:
    n: int
    acc_pi6: float        # share of errors < pi/6
    acc_pi18: float       # share of errors < pi/18
    median_deg: float     # median error in degrees

    def row(self) -> str:
        return f"{100 * self.acc_pi6:5.1f} | {100 * self.acc_pi18:5.1f} | {self.median_deg:6.1f}"


def summarize(errors) -> PoseAccuracy:
    """Upstream ``display_results`` for the pose part: accuracy at pi/6, pi/18, median degrees."""
    e = np.nan_to_num(np.asarray(list(errors), dtype=np.float64), nan=math.pi / 2)
    if e.size == 0:
        return PoseAccuracy(0, float("nan"), float("nan"), float("nan"))
    return PoseAccuracy(int(e.size), float(np.mean(e < math.pi / 6)), float(np.mean(e < math.pi / 18)),
                        float(np.degrees(np.median(e))))
