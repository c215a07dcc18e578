"""From raw outputs to what users see: top-k labels with a confidence that means something.

Upstream scores are ``sum of winning similarities / (C * max_n)`` per class, so a softmax over
them is nearly uniform by construction (p_max <~ 0.15 whatever the image; docs/upstream.md 4.b)
and says nothing. What novum shows instead, in the overlay and in JSONL:

- ``share``: the class's **vote share** = score_c / sum_k score_k, the fraction of the
  (similarity-weighted) pixel votes that went to class c. 1.0 = every voting pixel agrees;
  1/C = no preference. The overlay's percentage and JSONL's ``confidence`` are the top-1 share.
- ``coverage``: the fraction of feature cells that voted for any class at all (cells whose best
  match is a padding row vote for none), a hint of how much of the frame looks like an object.
- ``score``: the raw upstream score, kept for exact comparison with torch / upstream.

The ranking is the upstream argmax (first max on ties) in every case.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novum.errors import NovumError


@dataclass
class Prediction:
    label: str
    index: int
    confidence: float                 # top-1 vote share
    topk: list[dict]                  # [{label, index, score, share}], best first
    coverage: float                   # fraction of cells voting for any class
    scores: np.ndarray                # raw [C] scores

    def record(self) -> dict:
        return {"label": self.label, "class_index": self.index, "confidence": round(self.confidence, 6),
                "coverage": round(self.coverage, 6), "topk": self.topk}


def vote_shares(scores: np.ndarray) -> np.ndarray:
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    total = s.sum(-1, keepdims=True)
    return np.divide(s, total, out=np.zeros_like(s), where=total > 0)


def predict(outputs: dict[str, np.ndarray], i: int, classes: list[str], k: int = 3) -> Prediction:
    """The :class:`Prediction` of batch row ``i`` of a backend's outputs."""
    scores = np.asarray(outputs["scores"][i], dtype=np.float32)
    if scores.shape[-1] != len(classes):
        raise NovumError(f"the model returned {scores.shape[-1]} class scores but its metadata lists {len(classes)} "
                         f"classes; the file and its metadata disagree, re-export it")
    shares = vote_shares(scores)
    order = np.argsort(-scores, kind="stable")[: max(1, min(k, len(classes)))]
    top = [{"label": classes[j], "index": int(j), "score": float(scores[j]), "share": round(float(shares[j]), 6)}
           for j in order]
    vertex = outputs.get("vertex")
    coverage = float((vertex[i] >= 0).mean()) if vertex is not None else float("nan")
    best = int(np.argmax(scores))
    return Prediction(classes[best], best, float(shares[best]), top, coverage, scores)
