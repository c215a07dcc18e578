"""Core: upstream import, upstream-exact matching head, block-wise == one matrix, boxes, batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from novum.config import PASCAL3D_N_LIST, upstream_config
from novum.head import match, match_dense
from novum.model import NovumModel, resnet_to_extractor_keys
from novum.model.resnet import ResNet
from novum.volumes import cuboid_mesh, meshelize, upstream_extents
from upstream_oracle import upstream_scores


def test_upstream_volumes_reproduce_published_counts():
    ext = upstream_extents()
    counts = tuple(len(cuboid_mesh(e)[0]) for e in ext)
    assert counts == PASCAL3D_N_LIST
    # upstream vertex order: first grid is the z=z0 face, looping y then x
    v, f = meshelize((0, 2), (0, 1), (0, 1), 40)
    assert np.allclose(v[0], (0, 0, 0)) and v[1][0] > 0 and v[1][1] == 0 and v[0][2] == v[1][2] == 0
    assert f.max() == len(v) - 1 and len(np.unique(f)) == len(v)


def test_upstream_import_and_scores_match_reference(upstream_ckpt, upstream_model):
    ck = torch.load(upstream_ckpt, weights_only=False)
    memory = ck["memory"]
    assert torch.equal(upstream_model.volumes.memory(), memory)
    torch.manual_seed(0)
    x = torch.randn(3, 3, 128, 160)
    boxes = torch.tensor([[8, 120, 16, 150], [0, 128, 0, 160], [33, 90, 41, 97]])
    with torch.no_grad():
        f = upstream_model.features(x)
        assert f.shape == (3, 128, 16, 20)
        assert torch.allclose(f.norm(dim=1), torch.ones(3, 16, 20), atol=1e-5)
        full = upstream_model.classify(f)
        boxed = upstream_model.classify(f, boxes)
    for i in range(3):
        ref = upstream_scores(f[i:i + 1], memory, PASCAL3D_N_LIST, 1130)
        assert np.abs(full.scores[i].numpy() - ref).max() < 1e-6
        assert full.scores[i].argmax().item() == int(np.argmax(ref))
        ref_box = upstream_scores(f[i:i + 1], memory, PASCAL3D_N_LIST, 1130, boxes[i].tolist())
        assert np.abs(boxed.scores[i].numpy() - ref_box).max() < 1e-6
        assert boxed.scores[i].argmax().item() == int(np.argmax(ref_box))


def test_upstream_forward_test_semantics(upstream_model):
    """Bias-free 1x1 projection then L2 norm (upstream forward_test), not the training Linear."""
    bb = upstream_model.backbone
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        m = bb.net(x)
        ref = torch.nn.functional.normalize(torch.einsum("bchw,dc->bdhw", m, bb.out_layer.weight), dim=1)
        assert torch.allclose(bb(x), ref, atol=1e-6)
        assert not torch.allclose(bb(x, bias=True), ref, atol=1e-3)


def test_uneven_sizes_use_up_pad_path(upstream_model):
    with torch.no_grad():
        f = upstream_model.features(torch.randn(1, 3, 120, 160))  # 120/32 is not integral
    assert f.shape == (1, 128, 15, 20)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blockwise_equals_one_matrix(seed):
    g = torch.Generator().manual_seed(seed)
    C, max_n, D = 12, 1130, 128
    n_list = PASCAL3D_N_LIST
    bank = torch.nn.functional.normalize(torch.randn(C * max_n, D, generator=g), dim=1)
    f = torch.nn.functional.normalize(torch.randn(2, D, 10, 12, generator=g), dim=1)
    a, b = match(f, bank, n_list, max_n), match_dense(f, bank, n_list, max_n)
    assert torch.equal(a.vertex, b.vertex)          # bit-for-bit argmax
    assert torch.equal(a.vertex_score, b.vertex_score)
    assert torch.allclose(a.scores, b.scores, atol=1e-7)


def test_padding_rows_compete_but_do_not_vote():
    C, max_n, D = 2, 4, 3
    n_list = (2, 3)
    bank = torch.zeros(C * max_n, D)
    bank[0] = torch.tensor([1.0, 0, 0])    # class 0, vertex 0
    bank[3] = torch.tensor([0, 1.0, 0])    # class 0, padding row (local 3 >= 2)
    bank[4] = torch.tensor([0, 0, 1.0])    # class 1, vertex 0
    f = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 1.0]]).T.reshape(1, D, 2, 2)
    out = match(f, bank, n_list, max_n)
    assert out.vertex.flatten().tolist() == [0, -1, 4, 4]
    # every winner has S = 1/2 + 0.5 = 1; the padding pixel votes for nobody; divide by C*max_n rows
    assert torch.allclose(out.scores, torch.tensor([[1.0 / 8, 2.0 / 8]]))


def test_batch_equals_one_at_a_time(small_model):
    x = torch.randn(3, 3, 128, 160)
    with torch.no_grad():
        batch = small_model(x)
        for i in range(3):
            one = small_model(x[i:i + 1])
            assert torch.allclose(batch["scores"][i], one["scores"][0], atol=1e-6)
            assert torch.equal(batch["vertex"][i], one["vertex"][0])


def test_box_equals_crop(small_model):
    """Restricting to a box gives the scores of the cropped feature map (upstream's crop)."""
    x = torch.randn(1, 3, 128, 160)
    box = torch.tensor([[17, 100, 30, 129]])
    with torch.no_grad():
        f = small_model.features(x)
        boxed = small_model.classify(f, box)
        crop = f[..., 17 // 8:100 // 8, 30 // 8:129 // 8]
        cropped = small_model.classify(crop)
    assert torch.allclose(boxed.scores, cropped.scores, atol=1e-7)


def test_predict_bgr_is_rgb_normalisation(small_model):
    frames = torch.randint(0, 256, (2, 128, 160, 3), dtype=torch.uint8)
    cfg = small_model.config
    rgb = frames[..., [2, 1, 0]].permute(0, 3, 1, 2).float() / 255
    x = (rgb - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(small_model.predict_bgr(frames)["scores"], small_model(x)["scores"], atol=1e-6)


def test_torchvision_resnet_names_load():
    tv = ResNet("bottleneck", (3, 4, 6, 3), 64)
    state = {k: v for k, v in tv.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 2048)
    mapped = resnet_to_extractor_keys(state)
    model = NovumModel(upstream_config())
    missing, unexpected = model.backbone.load_state_dict(mapped, strict=False)
    assert not unexpected
    assert all(k.startswith(("net.upsample", "out_layer")) for k in missing)
    assert torch.equal(model.backbone.net.extractor[4][0].conv2.weight, tv.layer1[0].conv2.weight)
