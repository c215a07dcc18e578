"""Occlusion-robustness pieces of the training core: test occluders that are never target classes,
the local (stride-8, no decoder) backbone, the training-time occlusion families and the loss terms
that separate object from clutter."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from novum.config import PASCAL3D_CLASSES, small_config
from novum.data import objects
from novum.data.occluders import occlude
from novum.model import NovumModel
from novum.runtime.votes import class_cells, vote_box
from novum.training.datasets import synthetic_key
from novum.training.loss import novum_loss, view_consistency, vote_term
from novum.training.masking import (BLOCK, OccluderPatches, apply_mosaic, block_masks, cell_mask, hidden_keypoints,
                                    pixel_cells)
from test_train import loss_batch


def test_occluders_never_draw_a_target_class():
    """Whatever the level, the occluder code never runs a class builder (any route: traced calls)."""
    class_code = {getattr(objects, c).__code__ for c in PASCAL3D_CLASSES}
    called: set = set()

    def prof(frame, event, arg):
        if event == "call":
            called.add(frame.f_code)

    h, w = 128, 160
    obj = np.zeros((h, w), bool)
    obj[30:100, 40:120] = True
    img = np.full((h, w, 3), 90, np.uint8)
    distractor_used = False
    sys.setprofile(prof)
    try:
        for seed in range(12):
            occlude(img, obj, ("L1", "L2", "L3")[seed % 3], np.random.default_rng(seed))
    finally:
        sys.setprofile(None)
    distractor_used = objects.distractor.__code__ in called
    assert distractor_used, "no rendered occluder object in 12 scenes: the test does not cover that path"
    assert not (called & class_code)


def test_generator_version_is_part_of_the_cache_key():
    from novum.data import synthetic

    mc = small_config(classes=("car",), vertices=40, width=8, feature_dim=16)
    kw = {"per_class": 2, "split": "test", "seed": 0}
    a = synthetic_key(mc, kw)
    old = synthetic.GENERATOR_VERSION
    try:
        synthetic.GENERATOR_VERSION = old + 1
        assert synthetic_key(mc, kw) != a
    finally:
        synthetic.GENERATOR_VERSION = old


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_backbone_stages_keep_stride_8_and_limit_what_a_cell_sees(stages):
    torch.manual_seed(0)
    mc = small_config(classes=("car", "bus"), vertices=40, width=8, feature_dim=16, stages=stages, cell_mlp=16)
    model = NovumModel(mc).eval()
    x = torch.randn(1, 3, *mc.input_size)
    with torch.no_grad():
        f = model.backbone(x)
        assert f.shape == (1, 16, mc.input_size[0] // 8, mc.input_size[1] // 8)
        assert torch.allclose(f.norm(dim=1), torch.ones(1, *f.shape[2:]), atol=1e-5)
        # change the left half of the image: does a cell on the far right change?
        y = x.clone()
        y[..., : mc.input_size[1] // 2] = torch.randn_like(y[..., : mc.input_size[1] // 2])
        g = model.backbone(y)
    far = (f[0, :, :, -1] - g[0, :, :, -1]).abs().max()
    if stages == 2:
        assert far == 0                        # local: the receptive field does not reach
    else:
        assert far > 0                         # the deeper stages and the decoder see the whole frame
    names = {n.split(".")[1] for n, _ in model.backbone.named_parameters() if n.startswith("net.")}
    assert ("extractor2" in names) == (stages == 4) and ("extractor1" in names) == (stages >= 3)


def test_block_masks_stay_on_the_object_box():
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[16, 80, 32, 112], [0, 128, 0, 160]])
    m = block_masks(boxes, (128, 160), 1.0, (0.5, 0.5), g)
    assert m.shape == (2, 8, 10)
    assert not m[0, :1].any() and not m[0, 5:].any() and not m[0, :, :2].any() and not m[0, :, 7:].any()
    assert 0.2 < m[1].float().mean() < 0.8
    assert not block_masks(boxes, (128, 160), 0.0, (0.5, 0.5), g).any()
    img = torch.full((2, 128, 160, 3), 7, dtype=torch.uint8)
    out = apply_mosaic(img, m, g)
    px = m.repeat_interleave(BLOCK, 1).repeat_interleave(BLOCK, 2)
    assert (out[~px] == 7).all() and (out[px] != 7).any(-1).float().mean() > 0.9
    cells = cell_mask(m, (16, 20), 8)
    assert cells.shape == (2, 320) and int(cells.sum()) == 4 * int(m.sum())
    kp = torch.tensor([[[20, 40], [0, 0]], [[64, 80], [127, 159]]])
    hid = hidden_keypoints(kp, cells, (16, 20), 8)
    for b in range(2):
        for k in range(2):
            r, c = int(kp[b, k, 0]) // BLOCK, int(kp[b, k, 1]) // BLOCK
            assert bool(hid[b, k]) == bool(m[b, r, c])


def test_occluder_patches_cover_only_where_they_say():
    patches = OccluderPatches(n=6, size=32, seed=0)
    assert patches.rgb.shape == (6, 32, 32, 3) and (patches.alpha.max((1, 2)) > 0.5).all()
    g = torch.Generator().manual_seed(0)
    img = torch.full((4, 64, 80, 3), 100, dtype=torch.uint8)
    boxes = torch.tensor([[10, 50, 20, 60]] * 4)
    out, mask = patches.paste(img, boxes, 1.0, g)
    assert mask.any((1, 2)).all()                                  # every image got an occluder
    assert (out[~mask.unsqueeze(-1).expand_as(out)] != 100).float().mean() < 0.2   # only soft edges outside
    cells = pixel_cells(mask, (8, 10), 8)
    assert cells.any(1).all()
    same, mask0 = patches.paste(img, boxes, 0.0, g)
    assert torch.equal(same, img) and not mask0.any()


def _rows_valid(n_list, max_n):
    return (torch.arange(max_n)[None] < torch.tensor(n_list)[:, None]).reshape(-1)


def test_clutter_term_is_background_matching_clutter_before_any_vertex():
    f, kp, vis, bg, memory, n_list, max_n = loss_batch()
    memory = torch.cat([memory[:6], torch.nn.functional.normalize(torch.randn(8, 8), dim=1)])   # 8 clutter rows
    lab, T = torch.tensor([0, 1]), 0.07
    off = novum_loss(f, kp, vis, lab, bg, memory, n_list, max_n, 8, thr=1.0, n_noise=4,
                     generator=torch.Generator().manual_seed(0))
    on = novum_loss(f, kp, vis, lab, bg, memory, n_list, max_n, 8, thr=1.0, n_noise=4, clutter_loss=1.0,
                    generator=torch.Generator().manual_seed(0))
    assert float(off.clutter) == 0.0
    # the definition: -log(sum_clutter exp(n.c/T) / sum_(real vertices + clutter) exp(n.r/T)), averaged
    n = on.noise_features.reshape(-1, 8)
    vert, clu = n @ memory[:6][_rows_valid(n_list, max_n)].T, n @ memory[6:].T
    want = (torch.logsumexp(torch.cat([vert, clu], 1) / T, 1) - torch.logsumexp(clu / T, 1)).mean()
    assert float(on.clutter) == pytest.approx(float(want), rel=1e-5)
    assert float(on.loss.detach()) == pytest.approx(float(off.loss.detach()) + float(on.clutter), abs=1e-4)
    on.loss.backward()
    assert f.grad.abs().sum() > 0
    # a clutter bank holding the background features themselves makes the term small
    mem2 = memory.clone()
    mem2[6:] = n
    on2 = novum_loss(f.detach(), kp, vis, lab, bg, mem2, n_list, max_n, 8, thr=1.0, n_noise=4, clutter_loss=1.0,
                     generator=torch.Generator().manual_seed(0))
    assert float(on2.clutter) < 0.5 * float(on.clutter)
    # occluded cells join the clutter term (as extra background samples)
    occ = torch.zeros(2, 20, dtype=torch.bool)
    occ[0, 5:9] = True
    on3 = novum_loss(f.detach(), kp, vis, lab, bg, memory, n_list, max_n, 8, thr=1.0, n_noise=4, clutter_loss=1.0,
                     occluded=occ, generator=torch.Generator().manual_seed(0))
    assert float(on3.clutter) != pytest.approx(float(on.clutter))


def test_class_term_is_the_class_level_contrast():
    """class_loss adds -log(sum_own-class exp(x.r/T) / sum_all exp(x.r/T)) over the visible vertices."""
    f, kp, vis, bg, memory, n_list, max_n = loss_batch()
    lab, T, cw = torch.tensor([0, 1]), 0.07, 0.005
    base = novum_loss(f, kp, vis, lab, bg, memory, n_list, max_n, 8, thr=1.0, n_noise=2)
    cls = novum_loss(f, kp, vis, lab, bg, memory, n_list, max_n, 8, thr=1.0, n_noise=2, class_loss=0.5)
    valid = _rows_valid(n_list, max_n)
    bias = torch.cat([torch.where(valid, 0.0, float("-inf")), torch.full((4,), float(np.log(cw)))])
    terms = []
    for b in range(2):
        for k in range(max_n):
            if vis[b, k]:
                r, c = int(kp[b, k, 0]) // 8, int(kp[b, k, 1]) // 8
                raw = memory @ f[b, :, r, c].detach() / T + bias
                own = raw[int(lab[b]) * max_n: int(lab[b]) * max_n + n_list[int(lab[b])]]
                terms.append(torch.logsumexp(raw, 0) - torch.logsumexp(own, 0))
    want = 0.5 * torch.stack(terms).mean()
    assert float(cls.contrast - base.contrast) == pytest.approx(float(want), rel=1e-4)


def test_vote_box_is_the_main_group_of_voting_cells():
    max_n = 10
    v = np.full((12, 16), -1, np.int32)
    v[4:7, 6:10] = 1 * max_n + 4             # class 1, a 3x4 group
    v[8, 10] = 1 * max_n + 2                 # one empty cell away: same group
    v[0, 0] = 1 * max_n                      # a stray vote far away
    v[11, 15] = 2 * max_n                    # another class
    assert class_cells(v, 1, max_n).sum() == 14
    assert vote_box(v, 1, max_n, 8) == (6 * 8, 4 * 8, 11 * 8, 9 * 8)
    assert vote_box(v, 2, max_n, 8) == (120, 88, 128, 96)
    assert vote_box(v, 0, max_n, 8) is None


def test_view_consistency_is_one_minus_cosine_on_kept_cells_towards_the_clean_view():
    g = torch.Generator().manual_seed(3)
    clean = torch.nn.functional.normalize(torch.randn(2, 8, 4, 5, generator=g), dim=1).requires_grad_(True)
    occ = torch.nn.functional.normalize(torch.randn(2, 8, 4, 5, generator=g), dim=1).requires_grad_(True)
    keep = torch.zeros(2, 20, dtype=torch.bool)
    keep[0, [1, 7]] = True
    keep[1, 19] = True
    got = view_consistency(clean, occ, keep)
    c, o = clean.detach().reshape(2, 8, 20), occ.detach().reshape(2, 8, 20)
    want = np.mean([1 - float(c[0, :, 1] @ o[0, :, 1]), 1 - float(c[0, :, 7] @ o[0, :, 7]),
                    1 - float(c[1, :, 19] @ o[1, :, 19])])
    assert float(got.detach()) == pytest.approx(want, abs=1e-6)
    got.backward()
    assert clean.grad is None or float(clean.grad.abs().sum()) == 0.0      # the clean view is the target
    assert float(occ.grad.abs().sum()) > 0
    assert float(occ.grad.reshape(2, 8, 20)[0, :, 0].abs().sum()) == 0.0   # cells not kept get no gradient
    assert float(view_consistency(clean, clean.detach(), keep)) == pytest.approx(0.0, abs=1e-6)
    assert float(view_consistency(clean, occ, torch.zeros_like(keep)).detach()) == 0.0


def two_view_inputs(**overrides) -> tuple[dict, dict, dict]:
    """One training step of NOVUM and of the baseline on the same 4 fake images: the network input
    each task saw, NOVUM's logged stats, and the batch."""
    from test_train import tiny_train_config
    from train_fakes import fake_samples

    from novum.training.data import pack_samples
    from novum.training.dist import DistContext
    from novum.training.tasks import BaselineTask, NovumTask

    cfg = tiny_train_config(**overrides)
    mc = cfg.model_config()
    packed = pack_samples(fake_samples(mc, 4, seed=0), mc)
    seen, stats = {}, {}
    for task in (NovumTask(cfg, DistContext(), 0), BaselineTask(cfg, DistContext(), 0)):
        def spy(x, net=task.net, kind=task.kind):
            seen[kind] = x
            return net(x)
        task.net = spy
        batch = packed.batch(np.arange(4))
        loss, stats[task.kind] = task.step(batch, torch.Generator().manual_seed(1))
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.equal(seen[task.kind][:4], task._input(batch["images"]))   # the first half is the clean batch
        if task.kind == "novum":
            task.after_step()
    return seen, stats, batch


def test_consistency_trains_both_tasks_on_a_clean_and_an_occluded_view():
    """NOVUM: one forward pass over the clean and the occluded images, the consistency term logged;
    the baseline's cross-entropy sees exactly the same 2B images."""
    seen, stats, _ = two_view_inputs(consistency=1.0, occluders=1.0, clutter_loss=1.0)
    for x in seen.values():
        assert x.shape[0] == 8                                        # clean + occluded
        assert not torch.equal(x[4:], x[:4])                          # the second half is occluded
    assert 0 < stats["novum"]["cons"] < 2
    assert torch.equal(seen["novum"][4:], seen["baseline"][4:])      # the same occluded images for both


def test_vote_term_is_the_cross_entropy_of_soft_whole_image_vote_shares():
    """Per cell: softmax over (best real row of each class, best clutter row) / T; shares = mean over
    cells, renormalised over classes; padding rows never vote."""
    g = torch.Generator().manual_seed(5)
    n_list, max_n, D, T = (2, 3), 3, 6, 0.1
    memory = torch.nn.functional.normalize(torch.randn(2 * max_n + 2, D, generator=g), dim=1)
    f = torch.nn.functional.normalize(torch.randn(2, D, 2, 3, generator=g), dim=1).requires_grad_(True)
    labels = torch.tensor([1, 0])
    got = vote_term(f, memory, n_list, max_n, labels, T)
    want = 0.0
    for b in range(2):
        shares = np.zeros(2)
        for p in range(6):
            x = f.detach()[b].reshape(D, 6)[:, p]
            best = [max(float(memory[r] @ x) for r in range(c * max_n, c * max_n + n_list[c])) for c in range(2)]
            sink = max(float(memory[r] @ x) for r in range(6, 8))
            e = np.exp(np.array(best + [sink]) / T)
            shares += (e / e.sum())[:2] / 6
        want -= np.log(shares[labels[b]] / shares.sum()) / 2
    assert float(got.detach()) == pytest.approx(want, rel=1e-5)
    got.backward()
    assert float(f.grad.abs().sum()) > 0
    # a padding row that matched perfectly would change nothing
    mem2 = memory.clone()
    mem2[2] = f.detach()[0, :, 0, 0]                                 # class 0 has 2 real rows: row 2 is padding
    assert float(vote_term(f.detach(), mem2, n_list, max_n, labels, T)) == pytest.approx(float(got.detach()), rel=1e-6)


def test_degrade_is_a_held_out_family_applied_to_the_chosen_share():
    """Training degradation: prob 0 is the identity, prob 1 changes every image; reproducible from the
    generator; each kind differs from every test corruption at every severity; with two views only the
    second (occluded) view is degraded, identically for NOVUM and the baseline."""
    from novum.data.corruptions import CORRUPTIONS, corrupt
    from novum.training.degrade import KINDS, degrade, degrade_image

    rng = np.random.default_rng(0)
    img = cv2_scene(rng)
    imgs = torch.from_numpy(np.stack([img] * 16))
    assert degrade(imgs, 0.0, torch.Generator().manual_seed(0)) is imgs
    a = degrade(imgs, 1.0, torch.Generator().manual_seed(3))
    b = degrade(imgs, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == imgs.shape
    assert all(not torch.equal(a[i], imgs[i]) for i in range(16))
    assert torch.equal(imgs[0], torch.from_numpy(img))                 # the input is not changed
    half = degrade(imgs, 0.5, torch.Generator().manual_seed(4))
    changed = sum(not torch.equal(half[i], imgs[i]) for i in range(16))
    assert 2 <= changed <= 14
    noise = rng.standard_normal(img.shape)
    for kind in KINDS:
        out = degrade_image(img, kind, np.array([0.5, 0.3, 0.5]), noise).astype(np.float32)
        for c in CORRUPTIONS:
            for sev in range(1, 6):
                test = corrupt(img, c, sev, np.random.default_rng(1)).astype(np.float32)
                assert np.abs(out - test).mean() > 1.0, (kind, c, sev)
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade_image(img, "fog", np.zeros(3))

    seen, _, _ = two_view_inputs(consistency=1.0, occluders=1.0, degrade=1.0)   # clean view stays clean
    assert torch.equal(seen["novum"][4:], seen["baseline"][4:])
    plain, _, _ = two_view_inputs(consistency=1.0, occluders=1.0)
    assert torch.equal(plain["novum"][:4], seen["novum"][:4])
    assert not torch.equal(plain["baseline"][4:], seen["baseline"][4:])  # degrade changed the occluded view


def cv2_scene(rng: np.random.Generator) -> np.ndarray:
    """A 64x80 BGR image with edges, texture and colour, so every degradation shows."""
    import cv2
    img = np.full((64, 80, 3), 90, np.uint8)
    cv2.rectangle(img, (10, 8), (50, 40), (200, 40, 30), -1)
    cv2.circle(img, (55, 40), 14, (20, 180, 230), -1)
    img[::4] = np.clip(img[::4].astype(int) + 40, 0, 255).astype(np.uint8)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
