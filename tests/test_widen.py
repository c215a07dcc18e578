"""benchmarks/widen.py: a twice-as-wide backbone that computes the same features, with copies that can
grow apart."""
from __future__ import annotations

import pytest
import torch

from factories import benchmark_module, make_small_model
from novum.config import small_config
from novum.model import NovumModel


@pytest.mark.parametrize("norm", ["image", "none"])
def test_wider_backbone_computes_the_same_features(norm, tmp_path):
    w = benchmark_module("widen")
    model = make_small_model(classes=("car", "bus"), vertices=40, width=8, feature_dim=16, stages=2, input_norm=norm)
    mc = model.config
    wide = w.widen(model, split=0.2, seed=1).eval()
    assert wide.config.backbone.width == 16 and wide.config.backbone.decoder_out == 2 * mc.backbone.decoder_out
    assert wide.config.backbone.input_norm == norm and torch.equal(wide.volumes.bank, model.volumes.bank)
    x = torch.randn(2, 3, *mc.input_size)
    with torch.no_grad():
        assert (wide.backbone(x) - model.backbone(x)).abs().max() < 1e-5
    conv = wide.backbone.net.extractor[4][0].conv1.weight          # layer1, first block: reads 16 channels
    assert conv.shape[1] == 16 and not torch.allclose(conv[:, :8], conv[:, 8:])   # the two shares differ
    assert torch.allclose(conv[:, :8] + conv[:, 8:], torch.cat([model.backbone.net.extractor[4][0].conv1.weight] * 2))
    out = tmp_path / "wide.safetensors"
    assert w.main(["--model", str(_save(model, tmp_path)), "--out", str(out)]) == 0 and out.is_file()


def _save(model, tmp_path):
    from novum.checkpoint import save_native

    return save_native(model, tmp_path / "m.safetensors")


def test_only_doubling_of_a_decoder_free_backbone():
    w = benchmark_module("widen")
    with pytest.raises(ValueError, match="2-stage"):
        w.widen(NovumModel(small_config(classes=("car",), vertices=40, width=8, feature_dim=16, stages=4)))
    with pytest.raises(ValueError, match="only x2"):
        w.widen_tensor(torch.ones(3, 4), torch.Size([3, 12]), 0.1, torch.Generator())
