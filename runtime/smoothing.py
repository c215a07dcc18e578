"""Temporal smoothing of the vote shares, per source (``--smooth DECAY`` / ``--smooth-window N``).

Frame-by-frame labels flicker on video: a passing occluder or a near tie flips the top class for
a frame or two. Smoothing averages the per-class vote shares (:func:`novum.runtime.results.vote_shares`)
over time and takes the label of the average:

- ``decay`` (exponential moving average): ``s_t = decay * s_(t-1) + (1 - decay) * shares_t``;
  a frame's weight halves every ``log(0.5) / log(decay)`` frames (0.8: ~3 frames);
- ``window`` (moving average): the mean of the last N frames' shares.

One :class:`Smoother` per source (its state is that source's history), reset when the source
restarts. Off for image sources (folders, globs): their frames are unrelated pictures. The raw
per-frame label is always kept next to the smoothed one (overlay, JSONL).

:func:`flicker` measures what it buys: label changes per 100 frames.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from novum.errors import InputError


@dataclass(frozen=True)
class Smoothing:
    """How to smooth: exactly one of ``decay`` (0 < decay < 1) or ``window`` (>= 2 frames)."""

    decay: float | None = None
    window: int | None = None

    def __post_init__(self) -> None:
        if (self.decay is None) == (self.window is None):
            raise InputError("smoothing needs exactly one of --smooth DECAY or --smooth-window N")
        if self.decay is not None and not (isinstance(self.decay, (int, float)) and 0.0 < self.decay < 1.0):
            raise InputError(f"--smooth {self.decay}: the decay must be between 0 and 1 (e.g. 0.8), exclusive")
        if self.window is not None and not (isinstance(self.window, int) and self.window >= 2):
            raise InputError(f"--smooth-window {self.window}: the window must be an integer >= 2 frames")

    def describe(self) -> str:
        if self.decay is not None:
            half = math.log(0.5) / math.log(self.decay)
            return f"EMA decay {self.decay:g} (half-life {half:.1f} frames)"
        return f"moving average over {self.window} frames"

    def record(self) -> dict:
        return {"decay": self.decay} if self.decay is not None else {"window": self.window}


class Smoother:
    """Running average of vote-share vectors; :meth:`update` returns the smoothed shares."""

    def __init__(self, smoothing: Smoothing) -> None:
        self.smoothing = smoothing
        self.reset()

    def reset(self) -> None:
        self._ema: np.ndarray | None = None
        self._recent: collections.deque[np.ndarray] = collections.deque(maxlen=self.smoothing.window or 1)

    def update(self, shares: np.ndarray) -> np.ndarray:
        x = np.asarray(shares, dtype=np.float64)
        d = self.smoothing.decay
        if d is not None:
            self._ema = x.copy() if self._ema is None else d * self._ema + (1.0 - d) * x
            return self._ema.copy()
        self._recent.append(x)
        return np.mean(np.stack(self._recent), axis=0)


def flicker(labels: Sequence) -> float:
    """Label changes per 100 frames (consecutive frames with different labels)."""
    labels = list(labels)
    if len(labels) < 2:
        return 0.0
    changes = sum(a != b for a, b in zip(labels, labels[1:]))
    return 100.0 * changes / len(labels)
