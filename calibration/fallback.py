"""Sensitivity-guided mixed precision: keep the few convolutions that hurt INT8 most in fp32.

Class margins of a NOVUM model are small (scores are vote sums over pixels), so a handful of
layers (typically the stem and the first blocks, whose activation ranges have outliers) can decide
whether top-1 survives INT8. With ``max_layers > 0``: a search frame is *safe* when INT8 keeps
fp32's top-1 and moves no class score by half fp32's top-1/top-2 margin or more (a handful of
frames cannot measure 99% agreement, but they show the near-flips). If fewer than ``threshold`` of
the search frames (the calibration frames; the gate's held-out frames are never looked at) are
safe, each convolution is quantized alone and ranked by the score error it causes; the worst are
then left in fp32 one by one until enough frames are safe, or ``max_layers`` are reached. The activation ranges are calibrated once and reused throughout.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from novum.runtime.backends.ort import run_onnx


@dataclass
class FallbackResult:
    fp32_layers: list[str]                       # convolutions kept in fp32, most sensitive first
    agreement: float                             # safe search frames, with those layers in fp32
    full_agreement: float                        # safe search frames, everything quantized
    sensitivity: dict[str, float] = field(default_factory=dict)   # conv -> mean |score error| alone


def search(build: Callable[[list[str], Path], Path], backbone: list[str], fp32: Path, frames: np.ndarray,
           threshold: float, max_layers: int, work: Path, log: Callable[[str], None] = lambda s: None) -> FallbackResult:
    """``build(nodes, path)`` writes a Q/DQ model quantizing ``nodes``; returns the layers to keep fp32."""
    ref = run_onnx(fp32, frames, max_batch=8)["scores"]
    top2 = np.sort(ref, 1)[:, -2:] if ref.shape[1] > 1 else np.concatenate([ref - np.inf, ref], 1)
    half_margin = (top2[:, 1] - top2[:, 0]) / 2

    def evaluate(nodes: list[str]) -> tuple[float, float]:
        s = run_onnx(build(nodes, work / "search.onnx"), frames, max_batch=8)["scores"]
        err = np.abs(s - ref)
        safe = (s.argmax(1) == ref.argmax(1)) & (err.max(1) < half_margin)
        return float(safe.mean()), float(err.mean())

    full, _ = evaluate(backbone)
    if full >= threshold or max_layers <= 0:
        return FallbackResult([], full, full)
    log(f"int8 fallback: fully quantized backbone is safe on {100 * full:.1f}% of {len(frames)} search frames; "
        f"ranking {len(backbone)} convolutions by sensitivity")
    sens = {n: evaluate([n])[1] for n in backbone}
    order = sorted(backbone, key=lambda n: -sens[n])
    best = FallbackResult([], full, full, sens)
    for k in range(1, min(max_layers, len(order)) + 1):
        keep = order[:k]
        agree, _ = evaluate([n for n in backbone if n not in keep])
        if agree > best.agreement:
            best = FallbackResult(keep, agree, full, sens)
        if agree >= threshold:
            break
    log(f"int8 fallback: {len(best.fp32_layers)} convolution(s) kept in fp32 -> {100 * best.agreement:.1f}% "
        f"on the search frames: {', '.join(best.fp32_layers) or '-'}")
    return best
