"""Synthetic posed dataset: geometry (keypoints on the object), visibility, occlusion levels,
corruptions, determinism, split disjointness."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from novum.config import small_config
from novum.data.corruptions import CORRUPTIONS
from novum.data.keypoints import annotate
from novum.data.occluders import LEVELS
from novum.data.projection import project
from novum.data.render import compile_shape, render
from novum.data.shapes import Shape, box
from novum.data.synthetic import SyntheticConfig, SyntheticDataset
from novum.pose.camera import project_pascal

CFG = small_config()
PER = 3


@pytest.fixture(scope="module")
def clean():
    ds = SyntheticDataset(SyntheticConfig(per_class=PER, split="test", seed=1), CFG)
    return ds, [ds[i] for i in range(len(ds))]


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def test_sample_contract(clean):
    ds, samples = clean
    h, w = CFG.input_size
    assert len(ds) == PER * len(CFG.classes)
    for i, s in enumerate(samples):
        assert s.label == i // PER and s.name.startswith(CFG.classes[s.label])
        assert s.image.dtype == np.uint8 and s.image.shape == (h, w, 3)
        n = CFG.n_list[s.label]
        assert s.kp.shape == (n, 2) and np.issubdtype(s.kp.dtype, np.integer)
        assert s.kp[:, 0].min() >= 0 and s.kp[:, 0].max() < h and s.kp[:, 1].min() >= 0 and s.kp[:, 1].max() < w
        assert s.visible.dtype == bool and s.visible.shape == (n,) and 0.2 < s.visible.mean() < 0.9
        assert s.kp_weights.shape == (n,) and 0 <= s.kp_weights.min() and s.kp_weights.max() <= 1
        a, e, t, d = s.pose
        assert s.pose.dtype == np.float32 and 0 <= a < 2 * np.pi
        assert np.deg2rad(-21) <= e <= np.deg2rad(61) and abs(t) <= np.deg2rad(10.01) and 4.5 < d < 5.5
        y0, y1, x0, x1 = s.box
        assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w
        ys, xs = np.nonzero(s.mask)
        assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == tuple(s.box)
        assert s.occluder is None


def test_projection_matches_the_upstream_camera():
    rng = np.random.default_rng(0)
    v = rng.uniform(-0.5, 0.5, (50, 3))
    for _ in range(5):
        pose = (rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.8), rng.uniform(-0.2, 0.2), rng.uniform(4, 6))
        uv, depth = project(v, pose, 600.0, (128, 160))
        uvt, dt = project_pascal(torch.tensor(v, dtype=torch.float32), *pose, 600.0, (128, 160))
        np.testing.assert_allclose(uv, uvt.double().numpy(), atol=2e-3)
        np.testing.assert_allclose(depth, dt.double().numpy(), atol=1e-4)


def test_renderer_and_keypoints_agree_on_a_plain_cuboid():
    """The class cuboid rendered as a solid: every visible vertex lands on its mask (pixel conventions)."""
    rng = np.random.default_rng(3)
    for c in (0, 5, 10):
        ext = CFG.extents[c]
        shape = Shape()
        box(shape, ext[0::2], ext[1::2], (200, 200, 200))
        model = compile_shape(shape)
        mesh = SyntheticDataset(SyntheticConfig(per_class=1), CFG).mesh(c)[0]
        for _ in range(4):
            pose = np.array([rng.uniform(0, 2 * np.pi), rng.uniform(-0.2, 0.7), rng.uniform(-0.17, 0.17), 5.0])
            _, alpha = render(model, pose, CFG.focal, CFG.input_size, np.array([0, 0, 1.0]))
            mask = cv2.dilate((alpha > 0.5).astype(np.uint8), _disk(1))
            ann = annotate(mesh, pose, CFG.focal, CFG.input_size)
            kp = ann["kp"][ann["visible"]]
            assert mask[kp[:, 0], kp[:, 1]].mean() >= 0.99


def _segment_hits(cam, pts, tri, eps=1e-3):
    """Whether the segment cam -> pts[i] crosses triangle j before reaching pts[i] (Moller-Trumbore)."""
    d = pts - cam
    v0, v1, v2 = tri[:, 0], tri[:, 1], tri[:, 2]
    e1, e2 = v1 - v0, v2 - v0
    p = np.cross(d[:, None], e2[None])
    det = np.einsum("ijk,jk->ij", p, e1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1 / np.where(ok, det, 1), 0)
    s = cam - v0
    u = np.einsum("ijk,jk->ij", p, s) * inv
    q = np.cross(s, e1)
    v = np.einsum("ik,jk->ij", d, q) * inv
    t = np.einsum("jk,jk->j", e2, q)[None] * inv
    return ok & (u > 1e-9) & (v > 1e-9) & (u + v < 1 - 1e-9) & (t > 0) & (t < 1 - eps)


def test_visibility_is_the_self_occlusion_z_test():
    """Analytic visibility equals a ray test against the cuboid's own triangles (upstream definition)."""
    from novum.data.projection import camera_position_pascal

    ds = SyntheticDataset(SyntheticConfig(per_class=1), CFG)
    rng = np.random.default_rng(5)
    for c in (1, 6, 11):
        verts, faces = (np.asarray(a) for a in ds.mesh(c))
        tri = verts[faces].astype(np.float64)
        for _ in range(3):
            pose = np.array([rng.uniform(0, 2 * np.pi), rng.uniform(-0.2, 0.7), 0.05, 5.0])
            ann = annotate(verts, pose, CFG.focal, CFG.input_size)
            cam = camera_position_pascal(pose[0], pose[1], pose[3])
            hidden = _segment_hits(cam, verts.astype(np.float64), tri).any(1)
            uv, _ = project(verts, pose, CFG.focal, CFG.input_size)
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < CFG.input_size[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < CFG.input_size[0])
            np.testing.assert_array_equal(ann["visible"], ~hidden & inside)


def test_keypoints_project_onto_the_rendered_object(clean):
    ds, samples = clean
    box_cover = []
    for s in samples:
        uv, _ = project(ds.mesh(s.label)[0], s.pose, ds.focal, ds.image_size)
        hull = np.zeros_like(s.mask)
        cv2.fillConvexPoly(hull, np.round(cv2.convexHull((uv - 0.5).astype(np.float32)) * 16).astype(np.int32), 1,
                           cv2.LINE_8, 4)
        # the object lies inside its projected cuboid ...
        assert cv2.dilate(hull, _disk(2))[s.mask > 0].mean() >= 0.99, s.name
        # ... and fills it: the object box covers most of the visible keypoints' box
        kp = s.kp[s.visible]
        ky0, ky1, kx0, kx1 = kp[:, 0].min(), kp[:, 0].max() + 1, kp[:, 1].min(), kp[:, 1].max() + 1
        y0, y1, x0, x1 = s.box
        inter = max(0, min(y1, ky1) - max(y0, ky0)) * max(0, min(x1, kx1) - max(x0, kx0))
        box_cover.append(inter / ((ky1 - ky0) * (kx1 - kx0)))
        assert box_cover[-1] >= 0.3, s.name  # aeroplanes (a cross in a box) are the sparsest: ~0.33 at worst
        # solid box-like classes: the visible keypoints lie on the object mask itself
        if CFG.classes[s.label] in ("bus", "train"):
            m = cv2.dilate(s.mask, _disk(2))
            assert m[kp[:, 0], kp[:, 1]].mean() >= 0.75, s.name
    assert np.mean(box_cover) >= 0.7
    bus = [s for s in samples if CFG.classes[s.label] == "bus"]
    m = [cv2.dilate(s.mask, _disk(2))[s.kp[s.visible][:, 0], s.kp[s.visible][:, 1]].mean() for s in bus]
    assert np.mean(m) >= 0.9


@pytest.mark.parametrize("level", list(LEVELS))
def test_occlusion_levels_cover_the_object_in_range(level, clean):
    ds, samples = clean
    occ = SyntheticDataset(SyntheticConfig(per_class=PER, split="test", seed=1, occlusion=level), CFG)
    lo, hi = LEVELS[level]
    for i in range(0, len(occ), 2):
        s, c = occ[i], samples[i]
        obj = s.mask.astype(bool)
        frac = (s.occluder.astype(bool) & obj).sum() / obj.sum()
        assert lo <= frac <= hi, (s.name, frac)
        np.testing.assert_array_equal(s.kp, c.kp)
        np.testing.assert_array_equal(s.mask, c.mask)
        changed = np.any(s.image != c.image, axis=2)
        assert changed[s.occluder.astype(bool)].mean() > 0.8
        assert not changed[~s.occluder.astype(bool)].any()


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruption_changes_the_image_not_the_labels(kind, clean):
    ds, samples = clean
    cor = SyntheticDataset(SyntheticConfig(per_class=PER, split="test", seed=1, corruption=kind, severity=3), CFG)
    for i in (0, 17, 30):
        s, c = cor[i], samples[i]
        assert s.image.shape == c.image.shape and s.image.dtype == np.uint8
        assert np.abs(s.image.astype(float) - c.image).mean() > 1.5
        for f in ("kp", "visible", "pose", "box", "mask"):
            np.testing.assert_array_equal(getattr(s, f), getattr(c, f))
        assert s.label == c.label


def test_severity_orders_the_damage(clean):
    ds, samples = clean
    err = []
    for sev in (1, 5):
        s = SyntheticDataset(SyntheticConfig(per_class=PER, split="test", seed=1, corruption="noise", severity=sev), CFG)[4]
        err.append(np.abs(s.image.astype(float) - samples[4].image).mean())
    assert err[1] > 2 * err[0]


def test_deterministic_from_the_seed(clean):
    ds, samples = clean
    again = SyntheticDataset(SyntheticConfig(per_class=PER, split="test", seed=1), CFG)
    for i in (20, 3, 35):  # any order
        np.testing.assert_array_equal(again[i].image, samples[i].image)
        np.testing.assert_array_equal(again[i].pose, samples[i].pose)
    # a larger per_class keeps the first samples of every class
    more = SyntheticDataset(SyntheticConfig(per_class=PER + 2, split="test", seed=1), CFG)
    np.testing.assert_array_equal(more[(PER + 2) * 4 + 1].image, samples[PER * 4 + 1].image)
    other = SyntheticDataset(SyntheticConfig(per_class=PER, split="test", seed=2), CFG)
    assert not np.array_equal(other[3].image, samples[3].image)


def test_train_and_test_splits_are_disjoint(clean):
    ds, samples = clean
    train = SyntheticDataset(SyntheticConfig(per_class=PER, split="train", seed=1), CFG)
    test_poses = {tuple(s.pose.tolist()) for s in samples}
    for i in range(len(train)):
        s = train[i]
        assert tuple(s.pose.tolist()) not in test_poses
        assert not np.array_equal(s.image, samples[i].image)


def test_bad_options_are_one_line_errors():
    from novum.errors import InputError

    for kw in ({"occlusion": "L4"}, {"corruption": "fog"}, {"severity": 0}, {"split": "dev"}, {"per_class": 0}):
        with pytest.raises(InputError) as e:
            SyntheticConfig(**kw)
        assert "\n" not in str(e.value)


def test_unknown_class_names_get_a_generic_object():
    cfg = small_config(classes=("car", "widget"))
    s = SyntheticDataset(SyntheticConfig(per_class=1), cfg)[1]
    assert s.label == 1 and s.mask.sum() > 500 and s.kp.shape == (cfg.n_list[1], 2)
