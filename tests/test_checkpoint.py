"""Checkpoints: native round trip, upstream strict checks, safe loading."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from novum.checkpoint import import_upstream, load_model, save_native, safe_torch_load
from novum.errors import CheckpointError


def test_native_roundtrip(tmp_path, small_model):
    p = save_native(small_model, tmp_path / "m.safetensors")
    m2 = load_model(p)
    assert m2.config == small_model.config
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        a, b = small_model(x), m2(x)
    assert torch.equal(a["scores"], b["scores"])
    assert [len(v) for v, _ in m2.volumes.meshes] == list(small_model.config.n_list)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def _add_unknown_key(ck):
    ck["state"]["module.net.something_else.weight"] = torch.zeros(1)


def _drop_key(ck):
    del ck["state"]["module.net.upsample2.doubleconv.doubleconv.3.weight"]


def _shrink_memory(ck):
    ck["memory"] = ck["memory"][:1000]


def _wrong_weight_shape(ck):
    ck["state"]["module.out_layer.weight"] = torch.zeros(64, 256)


@pytest.mark.parametrize("mutate,msg", [
    (_add_unknown_key, r"bad.pth: 1 unexpected weights.*something_else"),   # only classifier/pose_estimator heads are allowed
    (_drop_key, r"bad.pth: 1 missing weights"),
    (_shrink_memory, r"bad.pth: 'memory' has shape \(1000, 128\)"),
    (_wrong_weight_shape, r"bad.pth: weight out_layer.weight has shape \(64, 256\)"),
])
def test_upstream_strict_checks(tmp_path, upstream_ckpt, mutate, msg):
    ck = torch.load(upstream_ckpt, weights_only=False)
    mutate(ck)
    p = tmp_path / "bad.pth"
    torch.save(ck, p)
    with pytest.raises(CheckpointError, match=msg):
        import_upstream(p)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_refused(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"state": {}, "memory": torch.zeros(1), "args": Evil()}, p)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(CheckpointError, match=r"refused to load.*allow-list"):
            load_model(p)
        assert not (tmp_path / "PWNED").exists()
    finally:
        os.chdir(cwd)


def test_raw_pickle_refused(tmp_path):
    p = tmp_path / "raw.pth"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_torch_load(p)


@pytest.mark.parametrize("content,msg", [
    (b"hello, not a checkpoint", "not a checkpoint"),
    (b"PK\x03\x04garbage", "corrupt or truncated"),
])
def test_bad_files(tmp_path, content, msg):
    p = tmp_path / "x.pth"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=msg):
        load_model(p)


def test_missing_and_unknown(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "nope.pth")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint type"):
        load_model(tmp_path / "m.bin")
    (tmp_path / "n.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable .safetensors"):
        load_model(tmp_path / "n.safetensors")


def test_truncated_upstream(tmp_path, upstream_ckpt):
    data = upstream_ckpt.read_bytes()
    p = tmp_path / "trunc.pth"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(p)


def test_not_upstream_dict(tmp_path):
    p = tmp_path / "other.pth"
    torch.save({"model": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="not an upstream NOVUM checkpoint"):
        load_model(p)
