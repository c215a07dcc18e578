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


def window_wanted(show: bool | None, outputs: list[str] | tuple[str, ...] = (), quiet: bool = True) -> bool:
    """Window or not. ``show=None``: where one can open (:func:`novum.runtime.display.probe`), else
    headless; ``show=True`` without one is an error. Unless ``quiet``, a run without a window says so
    in one line, with the ``outputs`` it writes, or that nothing will be seen and how to change that."""
    nothing = "neither --save nor --jsonl was given, so nothing will be seen but the summary line"
    if show is False:
        if not outputs and not quiet:
            _note(f"--no-show: {nothing}; add --save out.mp4 or --jsonl out.jsonl")
        return False
    d = probe()
    if d.ok:
        return True
    if show:
        raise InputError(f"--show: {d.reason}; {d.fix}, or write the video with --save out.mp4 instead")
    if not quiet:
        if outputs:
            _note(f"no window: {d.reason}; running headless, writing {', '.join(outputs)}")
        else:
            _note(f"no window: {d.reason}; {nothing}; add --save out.mp4 or --jsonl out.jsonl, or for a window: {d.fix}")
    return False


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(source: str, model: str | Path | None, *, device: str = "auto", threads: int = 0, keep_all: bool = False,
        show: bool | None = None, pose_model: str | Path | None = None, quiet: bool = False,
        server: str | None = None, capture: CaptureOptions | None = None, **opts: object) -> RunSummary:
    """Classify every frame of ``source`` with the model file ``model``; ``opts`` are :class:`RunOptions` fields.

    ``show``: see :func:`window_wanted` (``False`` opens none, silently). ``pose_model``: the native
    checkpoint of the pose refiner. ``server``: classify through a Triton server instead
    (``HOST:PORT``, ``grpc://HOST:PORT``); ``model`` is then the model's name there (None: its only
    model). ``capture``: the camera's size, rate and flip. Raises :class:`StreamError` (after
    closing the outputs) when the source broke mid-way.
    """
    ro = RunOptions(**opts)  # type: ignore[arg-type]
    ro.show = show is not False and window_wanted(show, outputs(ro), quiet)
    ro.pose_checkpoint = Path(pose_model) if pose_model else None
    if server:
        from novum.runtime.backends.triton import TritonBackend

        be = TritonBackend(server, model=str(model) if model else None)
        validate(be)
    else:
        be = load(model, device=device, intra_op_threads=threads, threads=threads)
    try:
        src = open_source(source, keep_all=keep_all, capture=capture)
    except BaseException:
        be.close()
        raise
    try:
        pipe = Pipeline(be, src, ro)
        if not quiet:
            print(f"{be.describe()}\nsource: {src.description}" + (" (live: newest frame only)" if src.live else ""),
                  file=sys.stderr, flush=True)
        summary = pipe.run()
    finally:
        src.close()
        be.close()
    if summary.stream_error:
        raise StreamError(f"{summary.stream_error}; the outputs hold the {summary.frames} frames read before")
    return summary


def outputs(ro: RunOptions) -> list[str]:
    """The files a run writes (``--save``, ``--jsonl``)."""
    return [str(p) for p in (ro.save, ro.jsonl) if p is not None]
