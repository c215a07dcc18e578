"""Render-and-compare refiner: known-pose recovery, objectives, init grid, loading."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from novum.errors import InputError
from novum.pose.metric import pose_error
from novum.pose.objective import Objective
from novum.pose.refine import PoseRefiner, PoseResult, init_grid, load_refiner


@pytest.fixture(scope="module")
def refiner(small_model):
    return PoseRefiner(small_model, iterations=100)


def test_init_grid_order():
    g = init_grid(5.0)
    assert g.shape == (144, 4)
    np.testing.assert_allclose(g[:3, 2], [-math.pi / 6, 0, math.pi / 6])          # theta innermost
    np.testing.assert_allclose(g[:12:3, 1], np.linspace(-math.pi / 6, math.pi / 3, 4))
    np.testing.assert_allclose(g[::12, 0], np.arange(12) * math.pi / 6)         # azimuth outermost
    assert (g[:, 3] == 5.0).all()


def test_recovers_a_rendered_pose(refiner):
    """The class volume (random unit vertex features) rendered at a known pose, fed back as the
    image features, is recovered from the grid init to within 5 degrees."""
    rng = np.random.default_rng(3)
    for label in (0, 5, 7, 10):
        gt = (rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.9), rng.uniform(-0.4, 0.4), rng.uniform(4.5, 5.5))
        feats = refiner.render(gt, label).numpy()
        res = refiner.refine(feats, label)
        assert isinstance(res, PoseResult) and res.label == label and res.iterations == 100
        err = math.degrees(pose_error(res.pose, gt))
        assert err < 5.0, (label, gt, res)
        assert res.loss < res.init_loss                     # the iterations improved on the grid pose
        assert res.distance == pytest.approx(gt[3], rel=0.05)
        assert res.seconds > 0 and res.init is not None


def test_box_crop_and_bad_inputs(refiner, small_model):
    gt = (1.0, 0.4, 0.1, 5.0)
    feats = refiner.render(gt, 2)
    h, w = small_model.config.feature_size
    res = refiner.refine(feats[None], 2, box=[24, 104, 16, 144], iterations=20)   # [1, D, h, w] accepted
    assert math.degrees(pose_error(res.pose, gt)) < 30
    with pytest.raises(InputError, match="features have shape"):
        refiner.refine(np.zeros((3, h, w), np.float32), 2)
    with pytest.raises(InputError, match="covers no feature cell"):
        refiner.refine(feats, 2, box=[0, 4, 0, 4])
    with pytest.raises(InputError, match="out of range"):
        refiner.refine(feats, 99)


def test_objectives_match_their_definitions(refiner, small_model):
    """NeMo: 1 - mean per-pixel <r, f>; upstream: NOVUM's sum over the batch axis of [1, D, h, w]."""
    label = 4
    feats = refiner.class_features(label)
    g = torch.Generator().manual_seed(0)
    F = torch.nn.functional.normalize(torch.randn(feats.shape[1], *small_model.config.feature_size, generator=g), dim=0)
    clutter = torch.nn.functional.normalize(torch.randn(feats.shape[1], generator=g), dim=0)
    mask = torch.zeros(small_model.config.feature_size, dtype=torch.bool)
    mask[2:14, 3:18] = True
    pose = (0.8, 0.2, 0.1, 5.0)
    proj = refiner.render(pose, label)
    from novum.pose.camera import camera_position_from_spherical_angles
    fr = refiner.renderer(label).fragments(camera_position_from_spherical_angles(5.0, 0.2, 0.8), torch.tensor([0.1]))
    crop = (slice(2, 14), slice(3, 18))
    Fc, Pc = F[:, crop[0], crop[1]], proj[:, crop[0], crop[1]]
    clu = (clutter[None] @ Fc.reshape(len(clutter), -1)).sum(0).reshape(Fc.shape[1:])
    # NeMo, per-pixel dot product
    obj = (Pc * Fc).sum(0)
    want = {("nemo", False): 1 - obj.mean(), ("nemo", True): 1 - (torch.maximum(obj, clu).mean() - clu.mean())}
    # upstream: sum(dim=0) over the batch axis of [1, D, h, w] leaves the per-channel products
    obj_up = torch.sum(Pc[None] * Fc[None], dim=0)
    want[("upstream", False)] = 1 - obj_up.mean()
    want[("upstream", True)] = 1 - (torch.maximum(obj_up, clu).mean() - clu.mean())
    for (kind, use_clutter), ref in want.items():
        o = Objective(feats, F, mask, kind, clutter if use_clutter else None)
        got = o.loss(fr.pix, fr.vidx, fr.bary)
        assert float(got) == pytest.approx(float(ref), abs=1e-5), (kind, use_clutter)
        # the batched init scoring gives the same per-view losses
        cache = refiner.grid_cache(label)
        batch = o.batch_loss(cache.view, cache.pix.long(), cache.vidx.long(), cache.bary, 144)
        for i in (0, 77):
            s = cache.view == i
            one = o.loss(cache.pix[s].long(), cache.vidx[s].long(), cache.bary[s])
            assert float(batch[i]) == pytest.approx(float(one), abs=1e-5)
    # without clutter the upstream loss is the NeMo loss scaled by 1/D
    assert float(obj_up.mean()) * feats.shape[1] == pytest.approx(float(obj.mean()), rel=1e-4)


def test_grid_cache_is_smaller_than_feature_prerender(refiner, small_model):
    cache = refiner.grid_cache(1)
    h, w = small_model.config.feature_size
    D = small_model.config.backbone.feature_dim
    assert int(cache.view.max()) == 143
    assert cache.nbytes < 144 * D * h * w * 4 / 4


def test_clutter_bank_is_the_best_clutter_match_per_pixel(refiner, small_model):
    """A [K, D] clutter bank scores each pixel by its best clutter row; one row is NeMo's mean vector."""
    label = 2
    feats = refiner.class_features(label)
    D = feats.shape[1]
    g = torch.Generator().manual_seed(1)
    F = torch.nn.functional.normalize(torch.randn(D, *small_model.config.feature_size, generator=g), dim=0)
    bank = torch.nn.functional.normalize(torch.randn(5, D, generator=g), dim=1)
    mask = torch.ones(small_model.config.feature_size, dtype=torch.bool)
    o = Objective(feats, F, mask, "nemo", bank)
    per_row = torch.stack([(b[:, None] * F.reshape(D, -1)).sum(0) for b in bank])
    assert torch.allclose(o.clu, per_row.max(0).values, atol=1e-6)
    assert torch.allclose(Objective(feats, F, mask, "nemo", bank[1]).clu, per_row[1], atol=1e-6)
    # a pixel that matches clutter better than the object costs the same whatever the view
    from novum.pose.camera import camera_position_from_spherical_angles
    fr = refiner.renderer(label).fragments(camera_position_from_spherical_angles(5.0, 0.2, 0.8), torch.tensor([0.1]))
    obj = o.pixel_obj(fr.pix, fr.vidx, fr.bary)
    assert float(o.loss(fr.pix, fr.vidx, fr.bary)) <= 1.0 + 1e-6 and torch.isfinite(obj).all()


def test_refiner_clutter_modes(small_model):
    assert PoseRefiner(small_model, clutter=True).clutter == "mean"
    assert PoseRefiner(small_model, clutter="max").clutter == "max"
    assert PoseRefiner(small_model, clutter=False).clutter is None
    with pytest.raises(InputError, match="unknown clutter mode"):
        PoseRefiner(small_model, clutter="median")


def test_pose_cli_clutter_flag():
    from novum.pose.cli import build_parser
    p = build_parser()
    assert p.parse_args(["x.png"]).clutter is None
    assert p.parse_args(["x.png", "--clutter"]).clutter == "mean"
    assert p.parse_args(["x.png", "--clutter", "max"]).clutter == "max"


@pytest.mark.parametrize("objective,clutter", [("upstream", False), ("nemo", True), ("upstream", True),
                                               ("nemo", "max")])
def test_variants_run(small_model, objective, clutter):
    ref = PoseRefiner(small_model, objective=objective, clutter=clutter, iterations=5, steps=(3,))
    res = ref.refine(ref.render((2.0, 0.5, 0.0, 5.0), 3), 3)
    assert np.isfinite([res.azimuth, res.elevation, res.theta, res.distance, res.loss]).all()


def test_load_refiner_native(tmp_path, small_model):
    from novum.checkpoint import save_native

    path = save_native(small_model, tmp_path / "m.safetensors")
    ref = load_refiner(path, iterations=3)
    assert ref.classes == small_model.config.classes
    torch.testing.assert_close(ref.class_features(2), small_model.volumes.class_features(2))
    with pytest.raises(InputError, match="unknown pose objective"):
        PoseRefiner(small_model, objective="bogus")


def test_upstream_checkpoint_at_80x100(upstream_ckpt):
    """An upstream .pth: the approximate class cuboids (~1100 vertices), D=128, 80x100 maps."""
    ref = load_refiner(upstream_ckpt, iterations=40)
    assert ref.size == (80, 100) and ref.focal == 375.0
    gt = (2.5, 0.35, -0.15, 5.2)
    res = ref.refine(ref.render(gt, 5), 5)
    assert math.degrees(pose_error(res.pose, gt)) < 5.0
    assert ref.cache_bytes() < 144 * 128 * 80 * 100 * 4 / 20     # vs upstream's pre-rendered feature maps


def test_restarts_pick_distinct_views(small_model):
    ref = PoseRefiner(small_model, iterations=5, restarts=3)
    losses = torch.arange(144, dtype=torch.float32)          # view 0 best, then its neighbours
    picked = ref._starts(losses)
    assert picked[0] == 0 and len(picked) == 3
    for i in picked:
        for j in picked:
            if i != j:
                assert pose_error(ref.grid[i], ref.grid[j]) > math.radians(45)
    res = ref.refine(ref.render((1.0, 0.3, 0.0, 5.0), 6), 6)
    assert res.init is not None and res.loss <= res.init_loss
