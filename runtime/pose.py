"""Pose on demand (``--pose-every N``, the 'p' key): render-and-compare in a background thread.

The refiner is novum.pose's (torch, imported lazily here, never for classification): it takes the
model's feature map [D, h, w] and the predicted class and returns a pose; the latest pose is drawn
as a wireframe on the model input and logged in JSONL. Requests arriving while it works are
dropped (it always works on a recent frame).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from novum.config import ModelConfig
from novum.errors import NovumError
from novum.extras import require
from novum.pose.draw import draw_wireframe


class PoseWorker:
    def __init__(self, checkpoint: Path | None, metadata: dict[str, Any]) -> None:
        if checkpoint is None:
            raise NovumError("pose needs the native checkpoint the model came from: pass --pose-model model.safetensors")
        require("torch", "pose estimation")   # the refiner is torch: imported only when a pose is asked for
        from novum.pose.refine import load_refiner

        self.config = ModelConfig.from_dict(metadata)
        self._draw = draw_wireframe
        # loaded here, on the calling thread: torch's lazy first-use initialisation is not thread-safe
        # (a refiner first built on the worker thread failed with "'prims' object has no attribute ...")
        self.refiner = load_refiner(checkpoint)
        rc = getattr(self.refiner, "config", None)
        if rc is not None and (tuple(rc.classes) != tuple(self.config.classes)
                               or tuple(rc.feature_size) != tuple(self.config.feature_size)):
            raise NovumError(f"{Path(checkpoint).name}: the pose model ({len(rc.classes)} classes, features "
                             f"{rc.feature_size[0]}x{rc.feature_size[1]}) does not match the classifier "
                             f"({len(self.config.classes)} classes, {self.config.feature_size[0]}x"
                             f"{self.config.feature_size[1]}); pass the checkpoint the model was exported from")
        self.requested = False
        self.latest: tuple[int, int, Any] | None = None   # (frame index, class index, PoseResult)
        self._new = False
        self._job: tuple[np.ndarray, int, int] | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="novum-pose", daemon=True)
        self._thread.start()

    def submit(self, features: np.ndarray, label: int, frame_index: int) -> bool:
        with self._cond:
            if self._job is not None:
                return False
            self._job = (np.array(features, copy=True), int(label), int(frame_index))
            self.requested = False
            self._cond.notify_all()
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait(0.5)
                if self._closed:
                    return
                feats, label, idx = self._job
            try:
                result = self.refiner.refine(feats, label)
                with self._cond:
                    self.latest, self._new = (idx, label, result), True
            except Exception as e:  # noqa: BLE001 - shown, never fatal to classification
                self.error = " ".join(str(e).split())[:200]
                print(f"pose: failed ({self.error})", flush=True)
            finally:
                with self._cond:
                    self._job = None

    def fresh(self) -> bool:
        return self._new

    def record(self) -> dict[str, Any]:
        idx, label, r = self.latest
        self._new = False
        keys = ("azimuth", "elevation", "theta", "distance", "loss", "seconds")
        return {"frame": idx, "class_index": label, **{k: float(getattr(r, k)) for k in keys if hasattr(r, k)}}

    def draw(self, image: np.ndarray, label: int | None = None) -> np.ndarray:
        """The latest pose's wireframe, while the top-1 class is still the class it was found for."""
        if self.latest is None or (label is not None and self.latest[1] != label):
            return image
        return self._draw(image, self.latest[2], self.config)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
