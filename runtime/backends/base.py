"""The backend interface (Polygraphy-like): load, activate, infer a batch of uint8 BGR frames, close.

Every backend returns a dict of numpy arrays keyed by the exported output names
(``scores`` [B,C] f32, ``vertex`` [B,h,w] i32, ``vertex_score`` [B,h,w] f32, optional ``features``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from novum.errors import InputError


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, shape (``-1`` or a name for dynamic axes), numpy dtype."""

    name: str
    shape: tuple[Any, ...]
    dtype: np.dtype
    is_input: bool


class Backend:
    """Base class. Subclasses set ``kind``, ``precision``, ``io``, ``metadata`` and implement
    :meth:`_activate`, :meth:`_infer`, :meth:`_deactivate`."""

    kind = "base"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.io: list[TensorSpec] = []
        self.metadata: dict[str, Any] = {}
        self.precision = "fp32"
        self.device = "cpu"
        self.max_batch: int | None = None  # None = unlimited
        self.active = False

    # -- lifecycle -------------------------------------------------------------------------
    def activate(self) -> "Backend":
        if not self.active:
            self._activate()
            self.active = True
        return self

    def deactivate(self) -> None:
        if self.active:
            self._deactivate()
            self.active = False

    def close(self) -> None:
        self.deactivate()

    def __enter__(self) -> "Backend":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- description -----------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorSpec]:
        return [t for t in self.io if t.is_input]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [t for t in self.io if not t.is_input]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the model expects."""
        h, w = self.metadata["input_size"]
        return int(h), int(w)

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    def describe(self) -> str:
        io = ", ".join(f"{'in' if t.is_input else 'out'} {t.name}{list(t.shape)}:{np.dtype(t.dtype).name}" for t in self.io)
        return f"{self.kind} ({self.precision}, {self.device}) {self.path.name}: {io}"

    # -- inference -------------------------------------------------------------------------
    def infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 BGR frames [B, H, W, 3] (H, W = ``input_size``) -> output arrays."""
        frames = self.check_frames(frames)
        if not self.active:
            self.activate()
        return self._infer(frames)

    def check_frames(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        h, w = self.input_size
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (h, w, 3):
            raise InputError(f"{self.path.name}: expected uint8 BGR frames [B,{h},{w},3], got {frames.dtype} "
                             f"{list(frames.shape)}; frame them with novum.contracts.framing.Framer")
        if self.max_batch is not None and frames.shape[0] > self.max_batch:
            raise InputError(f"{self.path.name}: batch {frames.shape[0]} exceeds the model's maximum batch "
                             f"{self.max_batch}; infer smaller batches or re-export with a larger --max-batch")
        return np.ascontiguousarray(frames)

    def _activate(self) -> None:  # pragma: no cover - overridden
        pass

    def _deactivate(self) -> None:  # pragma: no cover - overridden
        pass

    def _infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError
