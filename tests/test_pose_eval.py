"""The pose accuracy evaluation on the synthetic test split (oracle features: the refiner alone)."""
from __future__ import annotations

import json

from novum.pose.evaluate import evaluate


def test_oracle_evaluation(small_model):
    rep = evaluate(small_model, per_class=1, levels=(None, "L2"), iterations=30, features="oracle")
    assert [r.level for r in rep.levels] == ["clean", "L2"]
    clean = rep.levels[0]
    assert clean.accuracy.n == small_model.config.num_classes
    assert clean.accuracy.acc_pi6 >= 0.75          # GT-pose renders are found again
    assert clean.ms_median > 0
    assert len(clean.per_class) == small_model.config.num_classes
    md = rep.markdown()
    assert "| clean | 12 |" in md and "| L2 | 12 |" in md
    d = json.loads(rep.to_json())
    assert d["settings"]["features"] == "oracle" and len(d["levels"][0]["errors_deg"]) == 12
