"""The plain-torch feature renderer against a brute-force reference (and pytorch3d if present)."""
from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import torch

from novum.config import small_config, upstream_config
from novum.mesh import cuboid_mesh, mesh_with_count
from novum.pose.camera import camera_position_from_spherical_angles, project
from novum.pose.render import MeshRenderer, _barycentric

POSES = [(0.3, 0.2, 0.0, 5.0), (2.1, -0.4, 0.35, 4.0), (4.4, 0.9, -0.5, 3.0)]


def brute_force(uv: np.ndarray, z: np.ndarray, faces: np.ndarray, h: int, w: int):
    """Section 5.4 literally: every pixel centre against every face, float64 loops."""
    p2f = -np.ones((h, w), int)
    bary = np.zeros((h, w, 3))
    zb = np.full((h, w), np.inf)
    s2 = (min(h, w) / 2) ** 2
    for i in range(h):
        for j in range(w):
            px, py = j + 0.5, i + 0.5
            for f, (a, b, c) in enumerate(faces):
                (ax, ay), (bx, by), (cx, cy) = uv[a], uv[b], uv[c]
                area = (cx - ax) * (by - ay) - (cy - ay) * (bx - ax)
                if abs(area) / s2 <= 1e-8 or max(z[a], z[b], z[c]) < 0:
                    continue
                lam = np.array([((px - bx) * (cy - by) - (py - by) * (cx - bx)) / area,
                                ((px - cx) * (ay - cy) - (py - cy) * (ax - cx)) / area,
                                ((px - ax) * (by - ay) - (py - ay) * (bx - ax)) / area])
                t = lam / z[[a, b, c]]
                wv = t / t.sum()
                if not (wv > 0).all():
                    continue
                pz = float((wv * z[[a, b, c]]).sum())
                if pz < 0 or pz >= zb[i, j]:
                    continue
                zb[i, j], p2f[i, j], bary[i, j] = pz, f, wv
    return p2f, bary


def _camera(pose):
    a, e, t, d = pose
    return camera_position_from_spherical_angles(d, e, a), torch.tensor([t])


@pytest.mark.parametrize("pose", POSES)
def test_raster_matches_brute_force(pose):
    v, f = cuboid_mesh((-0.6, 0.5, -0.3, 0.4, -0.25, 0.2), 40)
    r = MeshRenderer(v, f, focal=75.0, size=(16, 20))
    C, th = _camera(pose)
    fr = r.fragments(C, th)
    Xv = r.view(C, th)
    uv = project(Xv, r.focal, r.principal).double().numpy()
    ref_face, ref_bary = brute_force(uv, Xv[:, 2].double().numpy(), f, 16, 20)
    got = -np.ones(16 * 20, int)
    got[fr.pix.numpy()] = fr.face.numpy()
    assert (ref_face >= 0).sum() > 20                      # the view covers something
    np.testing.assert_array_equal(got.reshape(16, 20), ref_face)
    gb = np.zeros((16 * 20, 3))
    gb[fr.pix.numpy()] = fr.bary.detach().numpy()
    np.testing.assert_allclose(gb.reshape(16, 20, 3), ref_bary, atol=2e-5)
    # features: barycentric mix of the face's vertex features, 0 on the background
    feats = torch.randn(len(v), 5)
    out = r.render(C, th, feats).permute(1, 2, 0).reshape(-1, 5).numpy()
    covered = ref_face.reshape(-1) >= 0
    ref = np.einsum("pk,pkd->pd", ref_bary.reshape(-1, 3)[covered], feats.numpy()[f[ref_face.reshape(-1)[covered]]])
    np.testing.assert_allclose(out[covered], ref, atol=1e-4)
    assert np.all(out[~covered] == 0)


def test_upstream_size_silhouette():
    """80x100 with an upstream-sized class mesh (~1100 vertices): the covered pixels are the
    projected cuboid's convex hull (pixel-centre test), up to hull-boundary pixels."""
    cfg = upstream_config()
    v, f = cuboid_mesh(cfg.extents[4], 1000)
    assert len(v) == 1130
    r = MeshRenderer(v, f, focal=3000 / 8, size=(80, 100))
    C, th = _camera((0.7, 0.3, 0.2, 5.0))
    fr = r.fragments(C, th)
    uv = project(r.view(C, th), r.focal, r.principal).numpy()
    hull = cv2.convexHull(uv.astype(np.float32))
    yy, xx = np.mgrid[0:80, 0:100] + 0.5
    inside = np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in zip(xx.ravel(), yy.ravel())])
    got = np.zeros(8000, bool)
    got[fr.pix.numpy()] = True
    sure_in, sure_out = inside > 0.01, inside < -0.01
    assert sure_in.sum() > 500
    assert got[sure_in].all() and not got[sure_out].any()
    assert len(torch.unique(fr.pix)) == len(fr.pix)        # one face per pixel


def test_gradients_reach_camera_and_theta():
    cfg = small_config()
    v, f = mesh_with_count(cfg.extents[5], cfg.n_list[5])
    r = MeshRenderer(v, f, cfg.focal / cfg.stride, cfg.feature_size)
    feats = torch.nn.functional.normalize(torch.randn(len(v), 8, generator=torch.Generator().manual_seed(0)), dim=1)
    target = torch.randn(8, *cfg.feature_size, generator=torch.Generator().manual_seed(1))
    C = torch.nn.Parameter(camera_position_from_spherical_angles(5.0, 0.3, 1.1))
    theta = torch.nn.Parameter(torch.tensor([0.2]))
    fr = r.fragments(C, theta)
    loss = (fr.interpolate(feats, cfg.feature_size) * target).sum()
    loss.backward()
    assert torch.isfinite(C.grad).all() and C.grad.abs().sum() > 0
    assert torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0

    # the analytic gradient equals finite differences with the pixel -> face assignment held fixed
    def fixed(Cv, tv):
        Xv = r.view(Cv, tv)
        uv = project(Xv, r.focal, r.principal)
        jj = (fr.pix % 20).float() + 0.5
        ii = torch.div(fr.pix, 20, rounding_mode="floor").float() + 0.5
        w, _, _ = _barycentric(uv[fr.vidx], Xv[:, 2][fr.vidx], jj, ii)
        vals = (w[..., None] * feats[fr.vidx]).sum(1)
        return (vals * target.reshape(8, -1).t()[fr.pix]).sum()

    eps = 1e-2
    for k in range(3):
        dC = torch.zeros(1, 3)
        dC[0, k] = eps
        fd = (fixed(C.detach() + dC, theta.detach()) - fixed(C.detach() - dC, theta.detach())) / (2 * eps)
        assert abs(float(fd) - float(C.grad[0, k])) <= 0.05 * float(C.grad.abs().max()) + 1e-3
    fd = (fixed(C.detach(), theta.detach() + eps) - fixed(C.detach(), theta.detach() - eps)) / (2 * eps)
    assert abs(float(fd) - float(theta.grad[0])) <= 0.05 * abs(float(theta.grad[0])) + 1e-3


@pytest.mark.skipif(importlib.util.find_spec("pytorch3d") is None, reason="pytorch3d is not installed")
def test_matches_pytorch3d_mesh_rasterizer():
    from pytorch3d.ops import interpolate_face_attributes
    from pytorch3d.renderer import MeshRasterizer, PerspectiveCameras, RasterizationSettings
    from pytorch3d.structures import Meshes

    from novum.pose.camera import campos_to_R_T, pascal_to_view_frame

    cfg = upstream_config()
    v, f = cuboid_mesh(cfg.extents[5], 1000)
    h, w = 80, 100
    r = MeshRenderer(v, f, focal=375.0, size=(h, w))
    feats = torch.nn.functional.normalize(torch.randn(len(v), 16), dim=1)
    for pose in POSES:
        C, th = _camera(pose)
        R, T = campos_to_R_T(C, th)
        cams = PerspectiveCameras(focal_length=375.0, principal_point=((w // 2, h // 2),), image_size=((h, w),), in_ndc=False)
        rast = MeshRasterizer(cameras=cams, raster_settings=RasterizationSettings(image_size=(h, w), blur_radius=0.0,
                                                                                  faces_per_pixel=1, bin_size=0))
        mesh = Meshes([pascal_to_view_frame(torch.as_tensor(v))], [torch.as_tensor(f)])
        frag = rast(mesh, R=R, T=T)
        ref_face = frag.pix_to_face[0, ..., 0].reshape(-1).numpy()
        ref = interpolate_face_attributes(frag.pix_to_face, frag.bary_coords, feats[torch.as_tensor(f)])
        ref = ref[0, :, :, 0].permute(2, 0, 1)
        fr = r.fragments(C, th)
        got = -np.ones(h * w, int)
        got[fr.pix.numpy()] = fr.face.numpy()
        assert (got == ref_face).mean() > 0.999
        agree = torch.as_tensor(got == ref_face).reshape(h, w)
        np.testing.assert_allclose(r.render(C, th, feats)[:, agree].numpy(), ref[:, agree].numpy(), atol=1e-4)


def test_many_views_at_once_equal_one_by_one():
    cfg = small_config()
    v, f = mesh_with_count(cfg.extents[0], cfg.n_list[0])
    r = MeshRenderer(v, f, cfg.focal / cfg.stride, cfg.feature_size)
    poses = torch.tensor(POSES + [(5.5, 1.0, 0.5, 5.0)])
    C = camera_position_from_spherical_angles(poses[:, 3], poses[:, 1], poses[:, 0])
    view, frs = r.fragments_views(C, poses[:, 2])
    for i in range(len(poses)):
        one = r.fragments(C[i:i + 1], poses[i:i + 1, 2])
        s = view == i
        assert s.sum() > 0
        torch.testing.assert_close(frs.pix[s], one.pix)
        torch.testing.assert_close(frs.face[s], one.face)
        torch.testing.assert_close(frs.bary[s], one.bary.detach(), atol=1e-5, rtol=0)


def test_synthetic_keypoints_follow_the_pose_camera():
    """The synthetic test split's poses are in the renderer's convention: its keypoints (the class
    mesh vertices projected by the data generator) are where the pose camera puts them."""
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset
    from novum.pose.camera import project_pascal

    cfg = small_config()
    ds = SyntheticDataset(SyntheticConfig(per_class=2, split="test", theta_deg=40), cfg)
    for i in (0, 5, 13, 22):
        s = ds[i]
        v, _ = ds.mesh(s.label)
        uv, _ = project_pascal(torch.as_tensor(np.array(v)), *[float(x) for x in s.pose], cfg.focal, cfg.input_size)
        rc = np.stack([uv[:, 1].numpy(), uv[:, 0].numpy()], 1)
        inside = (rc[:, 0] >= 0) & (rc[:, 0] < cfg.input_size[0] - 1) & (rc[:, 1] >= 0) & (rc[:, 1] < cfg.input_size[1] - 1)
        assert inside.sum() > 50
        assert np.abs(rc[inside] - s.kp[inside]).max() <= 1.0
