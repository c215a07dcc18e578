"""Pose on demand (``--pose-every N``, the 'p' key): render-and-compare in a background thread.

The refiner is novum.pose's (torch, imported lazily here, never for classification): it takes the
model's feature map [D, h, w] and a class and returns a pose. Two schedules:

- files (video file, images): every request is computed and **joined to its own frame**: the
  output stage waits for the pose before it writes that frame (:meth:`PoseWorker.compute`), so a
  run with poses is slower, never lossy;
- live sources: requests are queued in a one-slot mailbox where the **newest request wins**; a
  request replaced before it started counts as dropped. A pose is logged on the first frame output
  after it is done, with the index of the frame it was computed from.

A pose is drawn only on frames whose label is the class it was computed for, from its own frame
until the label changes (it is not revived when the class comes back later). JSONL and
``novum-pose --json`` share one convention: angles in degrees, keys ending in ``_deg``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from novum.config import ModelConfig
from novum.errors import NovumError
from novum.extras import require
from novum.pose.angles import pose_degrees
from novum.pose.draw import draw_wireframe


@dataclass
class PoseStats:
    requested: int = 0
    computed: int = 0
    dropped: int = 0       # live: replaced by a newer request before it started
    failed: int = 0
    logged: int = 0        # live: poses logged with an output frame (not one that finished after the last frame)
    wait_s: float = 0.0    # files: time the output stage waited for poses

    def line(self, live: bool) -> str:
        if not self.requested:
            return ""
        s = f"poses: {self.computed} of {self.requested} requested computed"
        if self.failed:
            s += f", {self.failed} failed"
        if live:
            s += f", {self.dropped} dropped (live source: the newest request wins)"
            late = self.computed - self.logged
            return s + (f", {late} computed but not logged (finished after the last frame)" if late > 0 else "")
        return s + f", each joined to its own frame (the run waited {self.wait_s:.1f} s for them)"


@dataclass
class _Job:
    features: np.ndarray
    label: int
    frame: int
    done: threading.Event
    result: Any = None
    error: str | None = None


def pose_record(result: Any, frame: int, label: int, classes: list[str] | None = None) -> dict[str, Any]:
    """The JSONL form of a pose: angles in degrees with the unit in the key (as ``novum-pose --json``)."""
    rec: dict[str, Any] = {"frame": int(frame), "class_index": int(label)}
    if classes is not None:
        rec["label"] = classes[label]
    rec.update(pose_degrees(result))
    return rec


class PoseWorker:
    def __init__(self, checkpoint: Path | None, metadata: dict[str, Any], live: bool = False) -> None:
        if checkpoint is None:
            raise NovumError("pose needs the native checkpoint the model came from: pass --pose-model model.safetensors")
        require("torch", "pose estimation")   # the refiner is torch: imported only when a pose is asked for
        from novum.pose.refine import load_refiner

        self.config = ModelConfig.from_dict(metadata)
        self.live = live
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
        self.stats = PoseStats()
        self.requested = False                      # the 'p' key: pose the next frame
        self.shown: tuple[int, int, Any] | None = None   # (frame, class, PoseResult) drawn while the class holds
        self.error: str | None = None
        self._pending: _Job | None = None           # live: the mailbox (newest request wins)
        self._finished: list[_Job] = []             # live: done, not yet logged
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="novum-pose", daemon=True)
        self._thread.start()

    # -- requests ----------------------------------------------------------------------------
    def _job(self, features: np.ndarray, label: int, frame: int) -> _Job:
        self.requested = False
        self.stats.requested += 1
        return _Job(np.array(features, copy=True), int(label), int(frame), threading.Event())

    def compute(self, features: np.ndarray, label: int, frame: int, stop: threading.Event | None = None) -> _Job | None:
        """Files: pose this frame now (on the worker thread) and wait for it; None if ``stop`` was set first."""
        job = self._job(features, label, frame)
        t0 = time.perf_counter()
        with self._cond:
            self._pending = job
            self._cond.notify_all()
        while not job.done.wait(0.05):
            if stop is not None and stop.is_set():
                break
        self.stats.wait_s += time.perf_counter() - t0
        return job if job.done.is_set() else None

    def submit(self, features: np.ndarray, label: int, frame: int) -> None:
        """Live: queue a request; one still waiting is replaced (and counted as dropped)."""
        job = self._job(features, label, frame)
        with self._cond:
            if self._pending is not None:
                self.stats.dropped += 1
            self._pending = job
            self._cond.notify_all()

    def take_finished(self) -> list[_Job]:
        """Live: the poses finished since the last call, oldest first."""
        with self._cond:
            out, self._finished = self._finished, []
        return out

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait(0.5)
                if self._pending is None:
                    return
                job, self._pending = self._pending, None
            try:
                job.result = self.refiner.refine(job.features, job.label)
                self.stats.computed += 1
            except Exception as e:  # noqa: BLE001 - shown, never fatal to classification
                job.error = self.error = " ".join(str(e).split())[:200]
                self.stats.failed += 1
                print(f"pose: failed ({self.error})", flush=True)
            with self._cond:
                if self.live:
                    self._finished.append(job)
                job.done.set()
                self._cond.notify_all()

    # -- showing -----------------------------------------------------------------------------
    def accept(self, job: _Job) -> None:
        """Make a finished pose the one drawn (while the label stays its class)."""
        if job.result is not None:
            self.shown = (job.frame, job.label, job.result)

    def follow(self, label: int) -> None:
        """A frame labelled ``label`` is output: a pose of another class stops being drawn."""
        if self.shown is not None and self.shown[1] != label:
            self.shown = None

    def draw(self, image: np.ndarray, label: int | None = None) -> np.ndarray:
        """The shown pose's wireframe on a model-input-sized image, if ``label`` is its class."""
        if self.shown is None or (label is not None and self.shown[1] != label):
            return image
        return self._draw(image, self.shown[2], self.config)

    def close(self) -> None:
        """Stop taking requests, let a pose in progress finish (torch must not be mid-call at exit)."""
        with self._cond:
            self._closed = True
            if self._pending is not None:     # live: asked for, never started
                self.stats.dropped += 1
            self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout=60.0)
