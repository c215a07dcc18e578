"""The novum-run pipeline: capture -> inference -> output, three threads joined by bounded queues.

- capture thread: reads the source and frames each image for the model (``Framer``);
- inference thread: ``backend.infer`` one frame at a time (lowest latency);
- output (calling) thread: top-k + confidence, overlay, video, JSONL, window and keys.

Stages overlap, so the pipeline runs at the speed of its slowest stage, normally the model. Queues
hold at most a couple of frames: files are processed frame by frame (capture waits for the
model); live sources drop stale frames in the source itself (only the newest is kept), so a slow
model never builds up lag. Ctrl-C, 'q', a failing stage or a broken stream all end the run the
same way: the threads stop, the video is finalised and renamed, the JSONL is fsynced.

Ctrl-C (and SIGTERM) is not an exception here: while :meth:`Pipeline.run` lasts, the signal calls
:meth:`Pipeline.interrupt` (:func:`novum.cli_util.graceful_interrupt`), which sets a flag the
output loop checks between frames: the run ends between two frames, never inside one, so every
frame in the video has its JSONL line and the other way round; further Ctrl-Cs are ignored while
the outputs close. A signal the process ignores (a background job, ``nohup``) stays ignored.

Options on top of classification: poses (:mod:`novum.runtime.pose`: on files every requested pose
is joined to its frame, on live sources the newest request wins) and temporal smoothing of the
vote shares (:mod:`novum.runtime.smoothing`, off for image sources).
"""
from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from novum.cli_util import graceful_interrupt
from novum.contracts.framing import Crop, Framer
from novum.errors import NovumError
from novum.runtime.backends.base import Backend
from novum.runtime.overlay import draw
from novum.runtime.parts import blend_parts
from novum.runtime.pose import PoseWorker, pose_record
from novum.runtime.results import Prediction, predict, vote_shares
from novum.runtime.sinks import JsonlSink, VideoSink
from novum.runtime.smoothing import Smoother, Smoothing, flicker
from novum.runtime.votes import vote_box
from novum.runtime.sources import Frame, Source

_END = object()


@dataclass
class RunOptions:
    topk: int = 3
    roi: tuple[float, float, float, float] | None = None
    save: Path | None = None
    jsonl: Path | None = None
    show: bool = False
    parts: bool = False
    parts_alpha: float = 0.5
    pose_every: int = 0              # 0 = only on the 'p' key (window)
    pose_checkpoint: Path | None = None   # native checkpoint for the pose refiner
    max_frames: int | None = None
    queue_size: int = 2
    smoothing: Smoothing | None = None    # temporal smoothing of the vote shares (not for image sources)


@dataclass
class RunSummary:
    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    model_ms: list[float] = field(default_factory=list)
    interrupted: bool = False
    stream_error: str | None = None
    saved: Path | None = None
    jsonl: Path | None = None
    live: bool = False
    pose: Any = None                          # PoseStats when poses were asked for
    labels: list[int] = field(default_factory=list)           # raw top-1 per frame
    smoothed_labels: list[int] = field(default_factory=list)  # with smoothing on
    smoothing: str | None = None              # what smoothing ran (or why it is off)

    @property
    def flicker(self) -> float:
        """Raw label changes per 100 frames."""
        return flicker(self.labels)

    @property
    def smoothed_flicker(self) -> float | None:
        return flicker(self.smoothed_labels) if self.smoothed_labels else None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_fps(self) -> float:
        return 1000.0 / float(np.mean(self.model_ms)) if self.model_ms else 0.0

    def line(self) -> str:
        ms = f", model p50 {np.percentile(self.model_ms, 50):.1f} ms ({self.model_fps:.1f} FPS)" if self.model_ms else ""
        drop = f", {self.dropped} stale frames dropped" if self.dropped else ""
        out = f"{self.frames} frames in {self.seconds:.2f} s: {self.fps:.1f} FPS end to end{ms}{drop}"
        if self.smoothing:
            out += f"; smoothing: {self.smoothing}"
            if self.smoothed_flicker is not None:
                out += (f" (label changes per 100 frames: raw {self.flicker:.1f}, "
                        f"smoothed {self.smoothed_flicker:.1f})")
        pose = self.pose.line(self.live) if self.pose is not None else ""
        return out + (f"; {pose}" if pose else "")


@dataclass
class _Item:
    frame: Frame
    image: np.ndarray
    crop: Crop
    t_capture: float
    outputs: dict[str, np.ndarray] | None = None
    model_ms: float = 0.0


class Pipeline:
    def __init__(self, backend: Backend, source: Source, opts: RunOptions | None = None) -> None:
        self.backend, self.source = backend, source
        self.opts = opts or RunOptions()
        self.framing_note: str | None = None
        framing = None
        if self.opts.roi is not None:
            framing, self.framing_note = roi_framing(backend.metadata)
        self.framer = Framer(backend.input_size, self.opts.roi, framing)
        self.size_note = size_note(backend.metadata, backend.input_size)
        self.classes = backend.classes
        self.stop = threading.Event()
        self.interrupted = threading.Event()
        self.errors: list[BaseException] = []
        # live sources keep one frame in flight (the newest); files a couple, so decoding runs ahead
        self.q_in: queue.Queue = queue.Queue(1 if source.live else self.opts.queue_size)
        self.q_out: queue.Queue = queue.Queue(self.opts.queue_size)
        self.blend_parts = None
        if self.opts.parts:
            self.blend_parts = blend_parts
            if "vertex" not in backend.output_names:
                raise NovumError(f"{backend.path.name}: --parts needs the 'vertex' output, which this model lacks")
        self.pose = None
        if self.opts.pose_every:
            if "features" not in backend.output_names:
                raise NovumError(f"{backend.path.name}: pose needs the 'features' output; export the model with "
                                 f"novum-export --features")
            self.pose = PoseWorker(self.opts.pose_checkpoint, backend.metadata, live=source.live)
        self.smoother: Smoother | None = None
        self.smoothing_note: str | None = None
        if self.opts.smoothing is not None:
            if getattr(source, "stills", False):
                self.smoothing_note = "off (image sources are unrelated pictures)"
            else:
                self.smoother = Smoother(self.opts.smoothing)
                self.smoothing_note = self.opts.smoothing.describe()
        self.paused = False
        self.quit = False
        self.window_open = False

    def interrupt(self) -> None:
        """Ctrl-C (from a signal handler): end the run at the next frame boundary, outputs closed."""
        self.interrupted.set()
        self.stop.set()

    # -- stages ----------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item: Any) -> bool:
        while True:
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self.stop.is_set() and item is not _END:
                    return False
                if self.stop.is_set():  # make room for the end marker
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass

    def _replace_newest(self, item: _Item) -> None:
        while True:
            try:
                self.q_in.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.q_in.get_nowait()
                    self.source.dropped += 1
                except queue.Empty:
                    pass

    def _capture(self) -> None:
        n = 0
        try:
            for f in self.source:
                if self.stop.is_set() or (self.opts.max_frames is not None and n >= self.opts.max_frames):
                    break
                image, crop = self.framer(f.image)
                item = _Item(f, image, crop, time.perf_counter())
                if self.source.live and not self.source.keep_all:
                    self._replace_newest(item)      # a waiting live frame is stale: swap it for this one
                elif not self._put(self.q_in, item):
                    break
                n += 1
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            self.errors.append(e)
            self.stop.set()
        finally:
            self._put(self.q_in, _END)

    def _infer(self) -> None:
        try:
            self.backend.activate()
            while True:
                try:
                    item = self.q_in.get(timeout=0.1)
                except queue.Empty:
                    if self.stop.is_set():
                        break
                    continue
                if item is _END:
                    break
                t0 = time.perf_counter()
                out = self.backend.infer(item.image[None])
                item.model_ms = (time.perf_counter() - t0) * 1000
                item.outputs = out
                if not self._put(self.q_out, item):
                    break
        except BaseException as e:  # noqa: BLE001
            self.errors.append(e)
            self.stop.set()
        finally:
            self._put(self.q_out, _END)

    # -- output (calling thread) -----------------------------------------------------------
    def run(self) -> RunSummary:
        o = self.opts
        summary = RunSummary(saved=o.save, jsonl=o.jsonl, live=self.source.live, smoothing=self.smoothing_note)
        video = VideoSink(o.save, self.source.fps) if o.save else None
        log = JsonlSink(o.jsonl) if o.jsonl else None
        capture = threading.Thread(target=self._capture, name="novum-capture", daemon=True)
        infer = threading.Thread(target=self._infer, name="novum-infer", daemon=True)
        self._t_start: float | None = None
        try:
            # Ctrl-C / SIGTERM end the run between two frames, never inside one (between a frame's
            # video write and its JSONL line it left a video one frame longer than the log)
            with graceful_interrupt(self.interrupt):
                capture.start()
                infer.start()
                self._output_loop(summary, video, log)
        except KeyboardInterrupt:   # where the signal could not be deferred (run() off the main thread)
            self.interrupted.set()
        finally:
            self.stop.set()
            capture.join(timeout=5.0)          # may wait on a stalled live source: Python code, harmless
            infer.join()                       # must end: it may be inside the runtime's native code
            if self._t_start is not None:
                summary.seconds = time.perf_counter() - self._t_start
            if video:
                video.close()
            if log:
                log.close()
            if self.pose:
                self.pose.close()
                summary.pose = self.pose.stats
            if self.window_open:
                from novum.runtime.display import close_window

                close_window()
        summary.interrupted = self.interrupted.is_set()
        summary.dropped = self.source.dropped
        if self.errors and not isinstance(self.errors[0], KeyboardInterrupt):
            raise self.errors[0]
        if not summary.interrupted and not self.quit:
            summary.stream_error = self.source.error
        return summary

    def _output_loop(self, summary: RunSummary, video: VideoSink | None, log: JsonlSink | None) -> None:
        """Write every frame the inference thread hands over (all of a frame's outputs, or none)."""
        o = self.opts
        recent: collections.deque[float] = collections.deque(maxlen=30)   # output times, for the FPS shown
        while not self.interrupted.is_set():
            try:
                item = self.q_out.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END or self.interrupted.is_set():
                break
            now = time.perf_counter()
            if self._t_start is None:
                self._t_start = now - item.model_ms / 1000
                self._check_roi(item.frame.image.shape[:2])
            recent.append(now)
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else None
            pred = predict(item.outputs, 0, self.classes, o.topk)
            smoothed = self._smooth(pred)
            decided = smoothed if smoothed is not None else pred     # the label shown (and posed)
            pose_rec = self._pose_step(item, decided, summary.frames) if self.pose is not None else None
            if self.interrupted.is_set():
                break                                                # Ctrl-C while waiting for a pose
            box = self._vote_box(item, decided) if (video or o.show or log) else None
            annotated = self._annotate(item, pred, smoothed, fps, box) if (video or o.show) else None
            record = self._record(item, pred, smoothed, pose_rec, now, box) if log else None
            if video:
                video.write(annotated)
            if log:
                log.write(record)
            summary.frames += 1
            summary.model_ms.append(item.model_ms)
            summary.labels.append(pred.index)
            if smoothed is not None:
                summary.smoothed_labels.append(smoothed.index)
            if o.show:
                self._show(annotated)
            if self.quit:
                break

    def _check_roi(self, frame_hw: tuple[int, int]) -> None:
        """Warn once when most of --roi lies outside the frame: likely coordinates of another frame size."""
        inside = self.framer.roi_inside(frame_hw)
        if inside < 0.5:
            x, y, w, h = self.framer.roi  # type: ignore[misc]
            print(f"warning: only {100 * inside:.0f}% of --roi {x:g} {y:g} {w:g} {h:g} lies inside the "
                  f"{frame_hw[1]}x{frame_hw[0]} frame; --roi is the object's box in this frame's pixels "
                  f"(the rest is padded with zeros)", file=sys.stderr, flush=True)

    def _smooth(self, pred: Prediction) -> Prediction | None:
        """The smoothed decision (label, index, confidence = smoothed share), or None when off."""
        if self.smoother is None:
            return None
        shares = self.smoother.update(vote_shares(pred.scores))
        best = int(np.argmax(shares))
        return Prediction(self.classes[best], best, float(shares[best]), [], pred.coverage, pred.scores)

    def _vote_box(self, item: _Item, decided: Prediction) -> list[float] | None:
        """The box (x0, y0, x1, y1, frame pixels) around the cells voting for the shown label: the
        object as NOVUM sees it (:mod:`novum.runtime.votes`). None without a 'vertex' output or votes."""
        vertex = item.outputs.get("vertex") if item.outputs else None
        if vertex is None:
            return None
        meta = self.backend.metadata
        b = vote_box(vertex[0], decided.index, int(meta["max_n"]), int(meta.get("stride", 8)))
        if b is None:
            return None
        corners = item.crop.to_frame(np.array([[b[0], b[1]], [b[2], b[3]]], np.float64), self.backend.input_size)
        return [round(float(v), 1) for v in corners.reshape(-1)]

    def _annotate(self, item: _Item, pred: Prediction, smoothed: Prediction | None, fps: float | None,
                  box: list[float] | None = None) -> np.ndarray:
        frame = item.frame.image   # a fresh array per frame: annotate in place
        view = None
        if self.blend_parts is not None:
            view = self.blend_parts(item.image.copy(), item.outputs["vertex"][0], self.backend.metadata, self.opts.parts_alpha)
        if self.pose is not None and self.pose.shown is not None:
            view = self.pose.draw(view if view is not None else item.image.copy())
        return draw(frame, pred, item.crop, fps, item.model_ms, view, self.framer, smoothed=smoothed, vote_box=box)

    def _pose_step(self, item: _Item, decided: Prediction, n: int) -> dict[str, Any] | None:
        """Ask for a pose when due; returns the pose record to log with this frame, if any.

        Files: the pose of this frame, computed now (the output waits). Live: the newest request
        is queued; a pose that finished since the last frame is logged here with its own frame index.
        """
        pose = self.pose
        every = self.opts.pose_every
        due = bool(every) and n % every == 0 or pose.requested
        rec = None
        if due and not self.source.live:
            job = pose.compute(item.outputs["features"][0], decided.index, item.frame.index, self.interrupted)
            if job is not None and job.result is not None:
                pose.accept(job)
                rec = pose_record(job.result, job.frame, job.label, self.classes)
        elif due:
            pose.submit(item.outputs["features"][0], decided.index, item.frame.index)
        if self.source.live:
            finished = [job for job in pose.take_finished() if job.result is not None]
            if finished:                 # newest wins here too (one worker: rarely more than one)
                job = finished[-1]
                pose.accept(job)
                pose.stats.logged += 1
                rec = pose_record(job.result, job.frame, job.label, self.classes)
        pose.follow(decided.index)   # a pose is drawn only while the label is its class
        return rec

    def _record(self, item: _Item, pred: Prediction, smoothed: Prediction | None, pose: dict[str, Any] | None,
                now: float, box: list[float] | None = None) -> dict[str, Any]:
        f = item.frame
        rec: dict[str, Any] = {"frame": f.index, "timestamp": None if f.timestamp is None else round(f.timestamp, 6)}
        if f.name:
            rec["name"] = f.name
        rec.update(pred.record())
        if smoothed is not None:
            rec["smoothed"] = {"label": smoothed.label, "class_index": smoothed.index,
                               "confidence": round(smoothed.confidence, 6), **self.opts.smoothing.record()}
        rec["latency_ms"] = {"model": round(item.model_ms, 3), "pipeline": round((now - item.t_capture) * 1000, 3)}
        rec["crop"] = [round(v, 2) for v in (item.crop.x0, item.crop.y0, item.crop.w, item.crop.h)]
        if item.outputs is not None and "vertex" in item.outputs:
            rec["box"] = box          # votes for the shown label: [x0, y0, x1, y1] frame pixels, or null
        if pose is not None:
            rec["pose"] = pose
        return rec

    def _show(self, frame: np.ndarray) -> None:
        import cv2

        from novum.runtime.display import WINDOW, open_window

        if not self.window_open:
            open_window(frame.shape[1], frame.shape[0])
            self.window_open = True
        cv2.imshow(WINDOW, frame)
        while True:
            key = cv2.waitKey(1 if not self.paused else 50) & 0xFF
            if key in (ord("q"), 27):
                self.quit = True
            elif key == ord(" "):
                self.paused = not self.paused
            elif key == ord("p"):
                self._request_pose()
            try:
                if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    self.quit = True
            except cv2.error:
                self.quit = True
            if self.quit or not self.paused:
                return

    def _request_pose(self) -> None:
        if self.pose is None:
            if "features" not in self.backend.output_names:
                print("pose: this model has no 'features' output (export with --features)", flush=True)
                return
            try:
                self.pose = PoseWorker(self.opts.pose_checkpoint, self.backend.metadata, live=self.source.live)
            except NovumError as e:
                print(f"pose: {e}", flush=True)
                return
        self.pose.requested = True


def size_note(metadata: dict[str, Any], input_size: tuple[int, int]) -> str | None:
    """A warning for a model exported (with --force-imgsz) at a size other than the one it was trained at."""
    trained = metadata.get("trained_input_size")
    if not trained or tuple(int(v) for v in trained) == tuple(int(v) for v in input_size):
        return None
    return (f"warning: this model was exported at {input_size[0]}x{input_size[1]} but trained at "
            f"{int(trained[0])}x{int(trained[1])}: it sees objects at another scale and its accuracy is unknown; "
            f"re-export without --imgsz")


def roi_framing(metadata: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """How the model's training framed objects (for --roi), and a note saying where that came from:
    the model's own record, or (older files) measured now on the synthetic generator's scenes."""
    rec = metadata.get("framing")
    if rec:
        return rec, f"--roi framed as in training: object fills {100 * rec['object_fill']:.0f}% of the crop ({rec.get('source', 'recorded')})"
    from novum.config import ModelConfig
    from novum.data.framing import generator_framing

    rec = generator_framing(ModelConfig.from_dict(metadata))
    return rec, (f"--roi framed as in training: object fills {100 * rec['object_fill']:.0f}% of the crop (the model "
                 f"records no framing; measured on the {rec['source']}; re-export to record it)")

