"""benchmarks/score_rules.py: its 'head' rule is the shipped head's scores."""
from __future__ import annotations

import numpy as np
import torch

from factories import benchmark_module


def test_head_rule_is_the_heads_decision_and_rules_see_clutter():
    sr = benchmark_module("score_rules")
    from novum.config import small_config
    from novum.model import NovumModel
    from novum.training.bank import fill_padding_with_clutter

    mc = small_config(input_size=(64, 80), vertices=40, width=8, feature_dim=16)
    model = NovumModel(mc, generator=torch.Generator().manual_seed(0)).eval()
    vol = model.volumes
    fill_padding_with_clutter(vol.bank, vol.clutter, vol.valid_rows())
    images = np.random.default_rng(0).integers(0, 255, (6, 64, 80, 3), dtype=np.uint8)
    v, padding, clutter = sr.cell_maxima(model, images, batch=4)
    out = model.predict_bgr(torch.from_numpy(images))
    scores = sr.rule_scores(v, padding, clutter)
    np.testing.assert_allclose(scores["head"] / (mc.num_classes * mc.max_n), out["scores"].numpy(), atol=1e-5)
    assert v.shape == (6, mc.num_classes, mc.feature_size[0] * mc.feature_size[1])
    voting = (out["vertex"].numpy() >= 0).reshape(6, -1)
    np.testing.assert_array_equal(voting, v.max(1) >= padding)          # a cell votes iff a real row beats padding
    assert (clutter >= padding).all() and (v.max(1) < clutter).sum() > (v.max(1) < padding).sum() > 0
    assert not np.allclose(scores["clutter gate"], scores["head"])
    for name, s in scores.items():
        assert s.shape == (6, mc.num_classes) and np.isfinite(s).all(), name
