"""The upstream pose metric (section 5.7) against rotations of known angle."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from novum.pose.camera import camera_position_from_spherical_angles, campos_to_R_T
from novum.pose.metric import cal_rotation_matrix, pose_error, rotation_error, summarize


def axis_angle(axis, angle) -> np.ndarray:
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def test_rotation_matrix_is_a_rotation():
    R = cal_rotation_matrix(0.3, 0.5, 2.0, 5.0)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_known_rotation_angle():
    rng = np.random.default_rng(0)
    for _ in range(20):
        gt = cal_rotation_matrix(*rng.uniform(-1, 1, 3))
        angle = rng.uniform(0, math.pi)
        pred = gt @ axis_angle(rng.normal(size=3), angle)
        assert rotation_error(pred, gt) == pytest.approx(angle, abs=1e-6)
    assert rotation_error(gt, gt) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_changing_one_angle_gives_that_error(index):
    """Azimuth, elevation and theta changes by delta are rotations by |delta| (any base pose)."""
    base = np.array([1.2, 0.3, -0.2, 5.0])
    for delta in (math.pi / 18, -math.pi / 6, 1.0):
        pred = base.copy()
        pred[index] += delta
        assert pose_error(pred, base) == pytest.approx(abs(delta), abs=1e-6)
    # distance does not matter
    assert pose_error([1.2, 0.3, -0.2, 9.0], base) == pytest.approx(0.0, abs=1e-6)


def test_non_finite_counts_as_half_pi():
    assert rotation_error(np.full((3, 3), np.nan), np.eye(3)) == pytest.approx(math.pi / 2)
    assert pose_error([float("nan"), 0, 0, 5], [0, 0, 0, 5]) == pytest.approx(math.pi / 2)


def test_summarize():
    errs = [math.radians(d) for d in (1, 5, 12, 25, 40)] + [float("nan")]
    acc = summarize(errs)
    assert acc.n == 6
    assert acc.acc_pi18 == pytest.approx(2 / 6)          # 1 and 5 degrees
    assert acc.acc_pi6 == pytest.approx(4 / 6)           # nan -> 90 degrees, 40 fails
    assert acc.median_deg == pytest.approx((12 + 25) / 2)


def test_renderer_rotation_is_the_metric_rotation():
    """The renderer's object->view rotation is diag(-1, 1, -1) cal_rotation_matrix (same angles and
    theta sign), so errors measured on refined poses are in the ground truth's convention."""
    P = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)   # PASCAL -> view frame
    rng = np.random.default_rng(1)
    for _ in range(10):
        a, e, t = rng.uniform(0, 2 * math.pi), rng.uniform(-1.2, 1.2), rng.uniform(-1, 1)
        R, _ = campos_to_R_T(camera_position_from_spherical_angles(5.0, e, a), torch.tensor([t]))
        M = R[0].double().numpy().T @ P
        np.testing.assert_allclose(M, np.diag([-1, 1, -1]) @ cal_rotation_matrix(t, e, a), atol=1e-5)
