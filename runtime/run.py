"""``run``: one model file + one source + options -> outputs (the runtime half of ``novum-run``).

The model file is run as its suffix says (:func:`novum.runtime.backends.load`); turning a
checkpoint into a cached ONNX file first is orchestration (:func:`novum.api.run`).
"""
from __future__ import annotations

import sys
from pathlib import Path

from novum.errors import InputError, NovumError
from novum.runtime.backends import load, validate
from novum.runtime.display import probe
from novum.runtime.gstreamer import CaptureOptions
from novum.runtime.pipeline import Pipeline, RunOptions, RunSummary
from novum.runtime.sources import open_source


class StreamError(NovumError):
    """The source broke mid-way (the outputs hold every frame read before)."""


def window_wanted(show: bool | None) -> bool:
    """``show=None``: a window where one can open (:func:`novum.runtime.display.probe`, asked once per
    process); ``show=True`` without one is a one-line error; ``show=False``: none."""
    if show is False:
        return False
    d = probe()
    if show and not d.ok:
        raise InputError(f"--show: {d.reason}; {d.fix}, or write the video with --save out.mp4 instead")
    return d.ok


def headless_note(ro: RunOptions) -> str:
    """The line a run without the window it would have liked prints: why, and what it writes (or
    that nothing will be seen, and how to change that)."""
    d = probe()
    written = [str(p) for p in (ro.save, ro.jsonl) if p is not None]
    if written:
        return f"no window: {d.reason}; running headless, writing {', '.join(written)}"
    return (f"no window: {d.reason}; neither --save nor --jsonl was given, so nothing will be seen but the "
            f"summary line; add --save out.mp4 or --jsonl out.jsonl, or for a window: {d.fix}")


def run(source: str, model: str | Path | None, *, device: str = "auto", threads: int = 0, keep_all: bool = False,
        show: bool | None = None, pose_model: str | Path | None = None, quiet: bool = False,
        server: str | None = None, capture: CaptureOptions | None = None, allow_engine_host_code: bool = False,
        **opts: object) -> RunSummary:
    """Classify every frame of ``source`` with the model file ``model``; ``opts`` are :class:`RunOptions` fields.

    ``show``: see :func:`window_wanted`; without the window ``show=None`` would have liked, the run
    says so in one line (:func:`headless_note`) unless ``quiet``. ``pose_model``: the native
    checkpoint of the pose refiner. ``server``: classify through a Triton server instead
    (``HOST:PORT``, ``grpc://HOST:PORT``); ``model`` is then the model's name there (None: its only
    model). ``capture``: the camera's size, rate and flip. Raises :class:`StreamError` (after
    closing the outputs) when the source broke mid-way. ``allow_engine_host_code``: load a
    version-compatible TensorRT engine, which embeds host code that TensorRT runs (the user's choice,
    for engines from a source they trust).
    """
    ro = RunOptions(**opts)  # type: ignore[arg-type]
    ro.show = window_wanted(show)
    ro.pose_checkpoint = Path(pose_model) if pose_model else None
    if server:
        from novum.runtime.backends.triton import TritonBackend

        be = TritonBackend(server, model=str(model) if model else None)
        validate(be)
    else:
        be = load(model, device=device, intra_op_threads=threads, threads=threads,
                  allow_engine_host_code=allow_engine_host_code)
    try:
        src = open_source(source, keep_all=keep_all, capture=capture)
    except BaseException:
        be.close()
        raise
    try:
        pipe = Pipeline(be, src, ro)
        if not quiet:
            if show is None and not ro.show:
                print(headless_note(ro), file=sys.stderr)
            print(f"{be.describe()}\nsource: {src.description}" + (" (live: newest frame only)" if src.live else ""),
                  file=sys.stderr, flush=True)
        if pipe.size_note:       # a warning: shown also with --quiet
            print(pipe.size_note, file=sys.stderr, flush=True)
        if not quiet:
            if pipe.framing_note:
                print(pipe.framing_note, file=sys.stderr, flush=True)
            if pipe.smoothing_note:
                print(f"smoothing: {pipe.smoothing_note}", file=sys.stderr, flush=True)
        summary = pipe.run()   # Ctrl-C ends it between two frames, outputs closed (Pipeline.run)
    finally:
        src.close()
        be.close()
    if summary.stream_error:
        held = (f"the outputs hold the {summary.frames} frames read before" if summary.frames
                else "no output was written")
        raise StreamError(f"{summary.stream_error}; {held}")
    return summary

