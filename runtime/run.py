"""``run``: one model file + one source + options -> outputs (the runtime half of ``novum-run``).

The model file is run as its suffix says (:func:`novum.runtime.backends.load`); turning a
checkpoint into a cached ONNX file first is orchestration (:func:`novum.api.run`).
"""
from __future__ import annotations

import sys
from pathlib import Path

from novum.errors import InputError, NovumError
from novum.runtime.backends import load, validate
from novum.runtime.display import display_available
from novum.runtime.pipeline import Pipeline, RunOptions, RunSummary
from novum.runtime.sources import open_source


class StreamError(NovumError):
    """The source broke mid-way (the outputs hold every frame read before)."""


def window_wanted(show: bool | None) -> bool:
    """``show=None``: a window only where a display exists; ``show=True`` without one is an error."""
    if show is not None and not show:
        return False
    has_display = display_available()
    if show and not has_display:
        raise InputError("--show: no display here (DISPLAY/WAYLAND_DISPLAY unset or OpenCV built without GUI); "
                         "use --save out.mp4 instead")
    return has_display


def run(source: str, model: str | Path | None, *, device: str = "auto", threads: int = 0, keep_all: bool = False,
        show: bool | None = None, pose_model: str | Path | None = None, quiet: bool = False,
        server: str | None = None, **opts: object) -> RunSummary:
    """Classify every frame of ``source`` with the model file ``model``; ``opts`` are :class:`RunOptions` fields.

    ``show=None`` opens a window only where a display exists. ``pose_model``: the native checkpoint
    of the pose refiner. ``server``: classify through a Triton server instead (``HOST:PORT``,
    ``grpc://HOST:PORT``); ``model`` is then the model's name there (None: its only model).
    Raises :class:`StreamError` (after closing the outputs) when the source broke mid-way.
    """
    ro = RunOptions(**opts)  # type: ignore[arg-type]
    ro.show = window_wanted(show)
    ro.pose_checkpoint = Path(pose_model) if pose_model else None
    if server:
        from novum.runtime.backends.triton import TritonBackend

        be = TritonBackend(server, model=str(model) if model else None)
        validate(be)
    else:
        be = load(model, device=device, intra_op_threads=threads, threads=threads)
    try:
        src = open_source(source, keep_all=keep_all)
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
