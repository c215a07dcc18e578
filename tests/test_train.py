"""Training: the NOVUM objective, bank updates, the loop (loss falls, resume), DDP bank consistency."""
from __future__ import annotations

import json
import math
import os
import socket

import numpy as np
import pytest
import torch

from novum.training.bank import class_sums, momentum_update, push_clutter
from novum.training.config import TrainConfig, load_config
from novum.training.data import pack_samples
from novum.training.loop import train
from novum.training.loss import logit_mask, near_same_class, novum_loss, subsample_visible
from train_fakes import fake_samples


def tiny_train_config(**kw) -> TrainConfig:
    base = dict(classes=("box", "slab"), input_size=(64, 80), vertices=60, width=8, feature_dim=16, epochs=4,
                batch_size=8, lr=3e-3, warmup_steps=2, log_every=1, save_every=0, channels_last=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_data():
    cfg = tiny_train_config()
    mc = cfg.model_config()
    return pack_samples(fake_samples(mc, 12, seed=0), mc), pack_samples(fake_samples(mc, 4, seed=1), mc)


def test_mask_excludes_near_same_class_and_padding():
    n_list, max_n, n_clutter = (3, 4), 4, 2
    kp = torch.tensor([[[10, 10], [10, 14], [40, 40], [0, 0]]])        # class 1 image: v0, v1 close, v2 far, v3 real
    labels = torch.tensor([1])
    select = torch.tensor([[True, True, True, False]])
    m = logit_mask(kp, labels, select, n_list, max_n, n_clutter, thr=9.6, clutter_weight=0.005)
    assert m.shape == (3, 2 * 4 + 2)
    inf = float("-inf")
    # class 0 block: real rows 0..2 stay negatives (0), row 3 is padding
    assert m[:, :3].eq(0).all() and m[:, 3].eq(inf).all()
    # class 1 block (rows 4..7, all real): vertex 0 excludes vertex 1 (4 px away) but keeps itself and v2, v3
    assert m[0, 4:8].tolist() == [0, inf, 0, 0]
    assert m[1, 4:8].tolist() == [inf, 0, 0, 0]
    # vertex 3 at (0, 0) is ~14 px from v0, outside 9.6 px: nothing near vertex 2
    assert m[2, 4:8].tolist() == [0, 0, 0, 0]
    assert torch.allclose(m[:, 8:], torch.full((3, 2), math.log(0.005)))


def test_mask_is_rebuilt_per_batch():
    """Upstream kept a persistent buffer whose stale blocks removed negatives; here each call is fresh."""
    kp = torch.zeros(2, 4, 2, dtype=torch.long)                      # all vertices on one spot
    sel = torch.ones(2, 4, dtype=torch.bool)
    m1 = logit_mask(kp, torch.tensor([0, 0]), sel, (4, 4), 4, 1, 9.6)
    m2 = logit_mask(kp, torch.tensor([1, 1]), sel, (4, 4), 4, 1, 9.6)
    assert torch.isfinite(m2[:, :4]).all()                           # class 0 rows are plain negatives now
    assert torch.isinf(m1[:, :4]).sum() == 8 * 3


def test_near_same_class_ignores_padding_vertices():
    kp = torch.zeros(1, 3, 2, dtype=torch.long)
    near = near_same_class(kp, torch.tensor([2]), thr=5.0)
    assert near[0].tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def loss_batch(seed: int = 0):
    """A tiny loss input: unit features [2, 8, 4, 5] (with grad), keypoints, visibility, background,
    a memory of 2 classes x 3 rows + 4 clutter rows; returns (f, kp, vis, bg, memory, n_list, max_n)."""
    torch.manual_seed(seed)
    B, D, h, w = 2, 8, 4, 5
    n_list, max_n = (3, 2), 3
    f = torch.nn.functional.normalize(torch.randn(B, D, h, w), dim=1).requires_grad_(True)
    memory = torch.nn.functional.normalize(torch.randn(2 * 3 + 4, D), dim=1)
    kp = torch.tensor([[[0, 0], [8, 8], [16, 16]], [[0, 30], [24, 0], [0, 0]]])
    vis = torch.tensor([[True, True, False], [True, True, False]])
    bg = torch.ones(B, h * w, dtype=torch.bool)
    return f, kp, vis, bg, memory, n_list, max_n


def test_loss_target_rows_and_gradient():
    f, kp, vis, bg, memory, n_list, max_n = loss_batch()
    B, D = f.shape[:2]
    out = novum_loss(f, kp, vis, torch.tensor([0, 1]), bg, memory, n_list, max_n, 8, thr=1.0, n_noise=2,
                     generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and f.grad.abs().sum() > 0
    assert out.kp_features.shape == (B, max_n, D) and out.kp_features[:, 2].eq(0).all()
    # a memory equal to the features at the targets makes the contrastive term small
    mem2 = memory.clone()
    mem2[0] = f[0, :, 0, 0].detach()
    mem2[1] = f[0, :, 1, 1].detach()
    mem2[3] = f[1, :, 0, 3].detach()
    mem2[4] = f[1, :, 3, 0].detach()
    out2 = novum_loss(f.detach(), kp, vis, torch.tensor([0, 1]), bg, mem2, n_list, max_n, 8, thr=1.0, n_noise=2)
    assert out2.contrast < out.contrast


def test_subsample_visible_keeps_at_most_k():
    vis = torch.rand(4, 50, generator=torch.Generator().manual_seed(0)) < 0.6
    sub = subsample_visible(vis, 7, torch.Generator().manual_seed(1))
    assert (sub & ~vis).sum() == 0
    assert sub.sum(1).tolist() == [min(7, int(v)) for v in vis.sum(1)]


def test_momentum_update_and_unit_rows():
    g = torch.Generator().manual_seed(0)
    C, max_n, D = 3, 4, 5
    bank = torch.nn.functional.normalize(torch.randn(C * max_n, D, generator=g), dim=1)
    before = bank.clone()
    feats = torch.nn.functional.normalize(torch.randn(2, max_n, D, generator=g), dim=2)
    feats[:, 3] = 0                                                  # vertex 3 invisible in both images
    sums, counts = class_sums(feats, torch.tensor([1, 1]), C)
    assert counts.tolist() == [0, 2, 0]
    momentum_update(bank, sums, counts, 0.9)
    assert torch.allclose(bank.norm(dim=1), torch.ones(C * max_n), atol=1e-6)
    expect = torch.nn.functional.normalize(0.9 * before[4:7] + 0.1 * feats[:, :3].mean(0), dim=1)
    assert torch.allclose(bank[4:7], expect, atol=1e-6)
    assert torch.allclose(bank[7], before[7], atol=1e-6)             # unseen vertex keeps its direction
    assert torch.equal(bank[:4], before[:4]) and torch.equal(bank[8:], before[8:])   # absent classes untouched


def test_clutter_ring_wraps():
    clutter = torch.zeros(5, 2)
    f = torch.nn.functional.normalize(torch.arange(1, 9, dtype=torch.float32).view(4, 2), dim=1)
    p = push_clutter(clutter, f[:3], 0)
    assert p == 3
    p = push_clutter(clutter, f, p)                                  # 4 rows from 3: rows 3, 4, 0, 1
    assert p == 2
    assert torch.allclose(clutter[3], f[0]) and torch.allclose(clutter[4], f[1])
    assert torch.allclose(clutter[0], f[2]) and torch.allclose(clutter[1], f[3])
    assert torch.allclose(clutter[2], f[2])                          # from the first push, not yet overwritten


def test_tiny_model_loss_falls_and_bank_stays_unit(tmp_path, tiny_data):
    cfg = tiny_train_config(epochs=6)
    res = train(cfg, tmp_path, tiny_data, progress=False)
    recs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs if "loss" in r]
    assert len(losses) == res.steps == 6 * 3
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.3
    from novum.checkpoint import load_model
    model = load_model(res.model_path)
    assert torch.allclose(model.volumes.bank.norm(dim=1), torch.ones(model.volumes.bank.shape[0]), atol=1e-5)
    assert torch.allclose(model.volumes.clutter.norm(dim=1), torch.ones(model.volumes.clutter.shape[0]), atol=1e-5)
    assert model.backbone.out_layer.bias.abs().max() == 0            # trained bias-free, as inference runs
    meta = __import__("novum.checkpoint", fromlist=["x"]).read_native_metadata(res.model_path)
    assert json.loads(meta["train_config"])["epochs"] == 6


def test_resume_continues_from_saved_step(tmp_path, tiny_data):
    cfg = tiny_train_config(epochs=2, save_every=2)
    full = train(cfg, tmp_path / "full", tiny_data, progress=False)
    part = train(cfg, tmp_path / "part", tiny_data, progress=False, max_steps=4)
    assert part.steps == 4
    state = torch.load(tmp_path / "part" / "train_state.pt", weights_only=True)
    assert state["step"] == 4 and state["epoch"] == 1 and state["batch_in_epoch"] == 1
    resumed = train(cfg, tmp_path / "part", tiny_data, progress=False, resume=True)
    assert resumed.steps == full.steps == 6
    from novum.checkpoint import load_model
    a, b = load_model(full.model_path), load_model(resumed.model_path)
    for (k, v), w in zip(a.backbone.state_dict().items(), b.backbone.state_dict().values()):
        assert torch.allclose(v.float(), w.float(), atol=1e-5), k
    assert torch.allclose(a.volumes.bank, b.volumes.bank, atol=1e-5)
    assert torch.allclose(a.volumes.clutter, b.volumes.clutter, atol=1e-5)


def test_baseline_trains_and_round_trips(tmp_path, tiny_data):
    from novum.baseline import is_baseline_file, load_baseline
    cfg = tiny_train_config(epochs=3)
    res = train(cfg, tmp_path, tiny_data, baseline=True, progress=False)
    assert is_baseline_file(res.model_path)
    m = load_baseline(res.model_path)
    imgs = torch.from_numpy(tiny_data[1].images[:3])
    assert m.predict_bgr(imgs)["scores"].shape == (3, 2)
    with pytest.raises(Exception, match="baseline"):
        train(cfg, tmp_path, tiny_data, baseline=False, progress=False, resume=True)


def test_cli_config_file_and_errors(tmp_path, tiny_data, capsys):
    from novum.train import main
    data_path = tiny_data[0].save(tmp_path / "train.npz")
    conf = tmp_path / "c.json"
    d = tiny_train_config(epochs=1).to_dict()
    d["data"] = {"source": str(data_path)}
    conf.write_text(json.dumps(d))
    assert main(["--config", str(conf), "--out", str(tmp_path / "run"), "--no-progress", "--set", "batch_size=4"]) == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batch_size"] == 4
    assert main(["--config", str(conf), "--out", str(tmp_path / "run2"), "--set", "nonsense=1"]) == 2
    assert "unknown training config keys" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")]) == 2


def test_load_config_overrides(tmp_path):
    cfg = load_config(None, ["epochs=3", "data.per_class=7", "distance_thr=null"])
    assert cfg.epochs == 3 and cfg.data.per_class == 7 and cfg.thr == pytest.approx(48 * 128 / 640)


def test_ddp_two_process_gloo_bank_consistency(tmp_path, tiny_data):
    """torchrun-style 2-process CPU run (gloo): every rank ends with the same bank and clutter."""
    import torch.multiprocessing as mp
    p = tiny_data[0].save(tmp_path / "train.npz")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker_banks, args=(2, port, str(out), [str(p)]), nprocs=2, join=True)
    b0 = torch.load(out / "bank_rank0.pt", weights_only=True)
    b1 = torch.load(out / "bank_rank1.pt", weights_only=True)
    assert torch.equal(b0["bank"], b1["bank"]) and torch.equal(b0["clutter"], b1["clutter"])
    assert b0["ptr"] == b1["ptr"] == (3 * 2 * 4 * 5) % b0["clutter"].shape[0]   # steps * ranks * batch * noise
    init = torch.load(out / "bank_init.pt", weights_only=True)
    assert not torch.equal(init["bank"], b0["bank"])                  # the bank did train
    saved = __import__("novum.checkpoint", fromlist=["x"]).load_model(out / "model.safetensors")
    assert torch.equal(saved.volumes.bank, b0["bank"])


def _ddp_worker_banks(rank: int, world: int, port: int, out: str, data_paths: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from novum.training import loop
    from novum.training.data import PackedSamples
    from novum.training.dist import init_distributed
    from novum.training.tasks import NovumTask

    dist = init_distributed("cpu")
    captured = {}
    orig_after = NovumTask.after_step

    def after_step(self):
        if "init" not in captured:
            captured["init"] = self.model.volumes.bank.clone()
        orig_after(self)
        captured["task"] = self

    NovumTask.after_step = after_step
    try:
        data = (PackedSamples.load(data_paths[0]), None)
        cfg = tiny_train_config(epochs=1, batch_size=4)   # same config on every rank
        loop.train(cfg, out, data, progress=False, dist=dist, max_steps=3)
        t = captured["task"]
        torch.save({"bank": t.model.volumes.bank, "clutter": t.model.volumes.clutter, "ptr": t.clutter_ptr},
                   os.path.join(out, f"bank_rank{rank}.pt"))
        if rank == 0:
            torch.save({"bank": captured["init"]}, os.path.join(out, "bank_init.pt"))
    finally:
        NovumTask.after_step = orig_after
        dist.close()


def test_padding_rows_take_clutter_and_vote_for_nothing():
    from novum.head import match
    from novum.training.bank import fill_padding_with_clutter
    from novum.volumes import random_unit_rows
    n_list, max_n, D = (2, 3), 3, 4
    bank = random_unit_rows(6, D, torch.Generator().manual_seed(0))
    clutter = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0, 0]]), dim=1)
    valid = torch.tensor([True, True, False, True, True, True])
    before = bank.clone()
    assert fill_padding_with_clutter(bank, clutter, valid) == 1
    assert torch.equal(bank[valid], before[valid]) and torch.equal(bank[2], clutter[0])
    feats = clutter[0].view(1, D, 1, 1)                              # a pixel that looks like background
    out = match(feats, bank, n_list, max_n)
    assert out.vertex.item() == -1 and out.scores.abs().sum() == 0   # it votes for no class


def test_init_starts_from_a_checkpoint(tmp_path, tiny_data):
    from novum.checkpoint import load_model
    first = train(tiny_train_config(epochs=1), tmp_path / "a", tiny_data, progress=False).model_path
    again = train(tiny_train_config(epochs=1, init=str(first)), tmp_path / "b", tiny_data, progress=False,
                  max_steps=0).model_path
    a, b = load_model(first), load_model(again)
    assert torch.equal(a.volumes.bank, b.volumes.bank)
    assert all(torch.equal(v, w) for v, w in zip(a.backbone.state_dict().values(), b.backbone.state_dict().values()))
    with pytest.raises(Exception, match="init checkpoint not found"):
        train(tiny_train_config(epochs=1, init=str(tmp_path / "nope.safetensors")), tmp_path / "c", tiny_data,
              progress=False)


# -- failing fast: the whole config is checked before any data is rendered or any file written --------
@pytest.fixture
def no_rendering(monkeypatch):
    """Rendering training data is the slow first phase: a config error must come before it."""
    import novum.training.datasets as ds

    def boom(*a, **k):
        raise AssertionError("training data was rendered before the config error was reported")

    monkeypatch.setattr(ds, "synthetic_packed", boom)


@pytest.mark.parametrize("override, key", [
    ("epochs=abc", "epochs"), ("epochs=0", "epochs"), ("lr=-1", "lr"), ("batch_size=2.5", "batch_size"),
    ("input_size=[100,160]", "input_size"), ("input_size=[8,8]", "input_size"), ("momentum=1.5", "momentum"),
    ("augment=\"yes\"", "augment"), ("data.per_class=0", "data.per_class"), ("classes=[]", "classes"),
    ("data.options={\"occlusion\":\"L9\"}", "data.options"), ("data.options={\"bogus\":1}", "data.options"),
    ("n_noise=100000", "n_noise"), ("data.bogus=1", "data.bogus"), ("threads=0", "threads"),
    ("stages=5", "stages"), ("cell_mlp=-1", "cell_mlp"), ("input_norm=\"global\"", "input_norm"),
    ("clutter_loss=-0.1", "clutter_loss"),
    ("class_loss=\"x\"", "class_loss"), ("masking=2", "masking"), ("masking_frac=[0.8,0.2]", "masking_frac"),
    ("occluders=-1", "occluders"), ("data.options={\"background_objects\":[3,1]}", "data.options"),
    ("consistency=-1", "consistency"), ("vote_loss=-2", "vote_loss"), ("consistency=1", "consistency needs an occluded view"),
])
def test_config_errors_fail_fast_with_one_line_and_leave_nothing(tmp_path, capsys, monkeypatch, no_rendering,
                                                                 override, key):
    from novum.train import main

    monkeypatch.chdir(tmp_path)
    assert main(["--out", str(tmp_path / "r"), "--set", override, "--set", "data.cache=cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and key in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == []          # no out dir, log or cache


def test_all_problems_are_named_at_once():
    with pytest.raises(Exception) as e:
        load_config(None, ["epochs=abc", "lr=0", "data.per_class=-3"])
    msg = str(e.value)
    assert "\n" not in msg and all(k in msg for k in ("epochs", "lr", "data.per_class"))


def test_resume_with_nothing_to_resume_errors_at_once(tmp_path, capsys, no_rendering):
    from novum.train import main

    t0 = __import__("time").monotonic()
    assert main(["--out", str(tmp_path / "r"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert __import__("time").monotonic() - t0 < 5 and not (tmp_path / "r").exists()
    assert main(["--out", str(tmp_path / "r"), "--set", f"init={tmp_path / 'none.safetensors'}"]) == 2
    assert "init checkpoint not found" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_data_rendering_shows_a_progress_bar(tmp_path, capsys):
    from novum.training.datasets import synthetic_packed

    mc = tiny_train_config(classes=("car", "bus"), input_size=(64, 80)).model_config()
    packed = synthetic_packed(mc, "train", 3, 0, tmp_path, workers=1, progress=True)
    err = capsys.readouterr().err
    assert len(packed) == 6 and "render train data" in err and "6/6" in err
    synthetic_packed(mc, "train", 3, 0, tmp_path, workers=1, progress=True)     # cached: nothing to render
    assert "render train data" not in capsys.readouterr().err


def test_training_records_how_its_data_framed_the_objects(tmp_path, tiny_data):
    from novum.checkpoint import load_model

    res = train(tiny_train_config(epochs=1), tmp_path, tiny_data, progress=False, max_steps=1)
    fr = load_model(res.model_path).config.framing
    boxes = tiny_data[0].boxes.astype(float)
    fill = np.maximum((boxes[:, 1] - boxes[:, 0]) / 64, (boxes[:, 3] - boxes[:, 2]) / 80)
    assert fr["object_fill"] == pytest.approx(np.median(fill), abs=1e-4) and fr["samples"] == len(boxes)
    assert fr["pad"] == "zero" and fr["aspect"] == pytest.approx(80 / 64)
