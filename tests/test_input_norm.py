"""The backbone's optional contrast normalisation (``input_norm``): invariance, locality, both
models apply it, configs and checkpoints carry it, and the exported graphs compute it."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from factories import make_small_model, structured_frames
from novum.baseline import BaselineClassifier, load_baseline, save_baseline
from novum.checkpoint import load_native, read_native_metadata, save_native
from novum.config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig, SchemaError, small_config
from novum.data.corruptions import corrupt
from novum.export.fp16 import convert_fp16
from novum.export.onnx import export_onnx
from novum.export.trt_ops import unsupported_nodes
from novum.export.verify import verify
from novum.model import NovumModel, preprocess_bgr
from novum.model.input_norm import LOCAL_WINDOW, normalise_input


def _norm_in(frames: np.ndarray) -> torch.Tensor:
    return preprocess_bgr(torch.from_numpy(frames), IMAGENET_MEAN, IMAGENET_STD)


def _model(mode: str) -> NovumModel:
    return make_small_model(classes=("car", "bus", "chair"), vertices=40, width=8, feature_dim=16, stages=2,
                            input_norm=mode)


@pytest.mark.parametrize("mode", ["image", "local"])
def test_linear_contrast_and_brightness_leave_the_input_unchanged(mode):
    frames = structured_frames(3, 128, 160, seed=1)
    x = _norm_in(frames)
    ref = normalise_input(x, mode)
    assert torch.equal(normalise_input(x, "none"), x)
    # float images, contrast about the per-channel mean and a brightness shift: unchanged but for the
    # epsilon under the standard deviation (it matters where a local window is nearly flat)
    m = x.mean(dim=(2, 3), keepdim=True)
    y = (x - m) * 0.3 + m + 0.4
    d = (normalise_input(y, mode) - ref).abs()
    if mode == "image":
        assert d.max() < 1e-2
    else:
        assert d.mean() < 0.1 * ref.abs().mean()
    # the test corruption, rounded to uint8: close, and much closer than without the normalisation
    z = _norm_in(np.stack([corrupt(f, "contrast", 3) for f in frames]))
    moved = float((normalise_input(z, mode) - ref).abs().mean())
    assert moved < 0.1 * float(ref.abs().mean())
    assert moved < 0.2 * float((z - x).abs().mean())


def test_local_statistics_come_from_near_the_pixel_only():
    """An occluder on the left changes the image-normalised right side, not the locally-normalised one."""
    x = _norm_in(structured_frames(2, 128, 160, seed=2))
    y = x.clone()
    y[..., :60] = 3.0 * torch.randn_like(y[..., :60])            # a bright, busy occluder
    far = slice(60 + 2 * LOCAL_WINDOW, None)
    d_local = (normalise_input(x, "local") - normalise_input(y, "local"))[..., far].abs().max()
    d_image = (normalise_input(x, "image") - normalise_input(y, "image"))[..., far].abs().max()
    assert d_local == 0 and d_image > 0.1
    near = (normalise_input(x, "local") - normalise_input(y, "local"))[..., 60:70].abs().max()
    assert near > 0.1                                             # the window does reach across its border


@pytest.mark.parametrize("mode", ["image", "local"])
def test_novum_and_baseline_both_apply_it(mode):
    frames = torch.from_numpy(structured_frames(2, 128, 160, seed=3))
    low = torch.from_numpy(np.stack([corrupt(f.numpy(), "contrast", 3) for f in frames]))
    model, plain = _model(mode), _model("none")
    plain.load_state_dict(model.state_dict())
    x, xl = model.preprocess(frames), model.preprocess(low)
    with torch.no_grad():
        f, fl, fp = model.backbone(x), model.backbone(xl), plain.backbone(x)
        gp = plain.backbone(xl)
    cos = (f * fl).sum(1).mean()                                   # unit features
    assert cos > 0.95 and cos > (fp * gp).sum(1).mean() + 0.02      # robust where the plain one is not
    assert (f - fp).abs().max() > 1e-2                              # the normalisation is in the forward pass
    base = BaselineClassifier(small_config(classes=("car", "bus"), width=8, input_norm=mode)).eval()
    plain_base = BaselineClassifier(small_config(classes=("car", "bus"), width=8)).eval()
    plain_base.load_state_dict(base.state_dict())
    with torch.no_grad():
        a, b, c = base(x), base(xl), plain_base(x)
    assert (a - b).abs().max() < 0.2 * (a - plain_base(xl)).abs().max() + 1e-4
    assert (a - c).abs().max() > 1e-4


def test_configs_and_checkpoints_carry_it(tmp_path):
    cfg = small_config(stages=2, input_norm="local")
    d = cfg.to_dict()
    assert d["backbone"]["input_norm"] == "local"
    assert ModelConfig.from_dict(json.loads(json.dumps(d))).backbone.input_norm == "local"
    # models without it write what they always wrote
    assert "input_norm" not in small_config(stages=2).to_dict()["backbone"]
    d["backbone"]["input_norm"] = "global"
    with pytest.raises(SchemaError) as e:
        ModelConfig.from_dict(d, where="m.safetensors")
    assert "input_norm" in str(e.value) and "\n" not in str(e.value)

    model = _model("image")
    path = save_native(model, tmp_path / "m.safetensors")
    assert json.loads(read_native_metadata(path)["config"])["backbone"]["input_norm"] == "image"
    assert load_native(path).config.backbone.input_norm == "image"
    base = BaselineClassifier(small_config(classes=("car", "bus"), width=8, input_norm="local"))
    assert load_baseline(save_baseline(base, tmp_path / "b.safetensors")).config.backbone.input_norm == "local"


@pytest.mark.parametrize("mode", ["image", "local"])
def test_exported_graphs_compute_it(mode, tmp_path):
    """fp32 and fp16 ONNX of a model with the normalisation pass --verify's checks, in TensorRT's op set."""
    model = _model(mode)
    fp32 = export_onnx(model, tmp_path / "m.onnx", max_batch=4)
    fp16 = convert_fp16(fp32, tmp_path / "m_fp16.onnx")
    frames = np.concatenate([structured_frames(4, 128, 160, seed=5),
                             np.stack([corrupt(f, "contrast", 4) for f in structured_frames(2, 128, 160, seed=6)])])
    rep = verify(model, [fp32, fp16], frames=frames)
    assert rep.ok, rep.table()
    for p in (fp32, fp16):
        assert unsupported_nodes(onnx.load(str(p))) == []
    ops = {n.op_type for n in onnx.load(str(fp32)).graph.node}
    assert ("AveragePool" in ops) == (mode == "local")
