"""``novum-run``: classify a camera, a video, images or a stream in real time.

Examples::

    novum-run --source demo --save out.mp4 --jsonl out.jsonl      # bundled model + clip (+ a window on a desktop)
    novum-run --model model.engine --source 0                      # webcam, TensorRT, window
    novum-run --model model.onnx --source clip.mp4 --roi 100 80 320 240 --topk 5
    novum-run --server 127.0.0.1:8000 --source clip.mp4 --jsonl out.jsonl   # through a Triton server
    novum-run --model model.engine --source csi://0 --input-width 1920 --input-height 1080   # Jetson CSI camera
    novum-run --source demo --smooth 0.8 --jsonl out.jsonl         # temporally smoothed labels

A window opens by default where one can (a display, and an OpenCV with a GUI: the [desktop]
extra); otherwise the run is headless and says so.

Keys in the window: q / Esc quit, space pause, p estimate the pose now.

``novum-bench`` (:func:`bench_main`) lives here too. Both are thin: they parse the arguments and
call one function of :mod:`novum.api`.
"""
from __future__ import annotations

import sys

# Nothing heavy is imported at module level: a Ctrl-C right after start lands in main(), which
# handles it (no traceback), not in an import of this module.


def build_parser():
    import argparse

    from novum.runtime.gstreamer import FLIP_METHODS

    p = argparse.ArgumentParser(prog="novum-run", description=__doc__.replace("``", "").replace("::", ":"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model.engine/.plan (TensorRT), .onnx (ONNX Runtime) or .safetensors/.pth "
                                   "(exported to ONNX once and cached; default: the bundled demo model); with "
                                   "--server, the model's name on the server (default: its only model)")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="classify through a Triton Inference Server (novum-serve or the production container): "
                        "HOST:PORT or http://HOST:PORT for HTTP, grpc://HOST:PORT for gRPC")
    p.add_argument("--source", default="demo", help="camera index, /dev/videoN, csi://N (Jetson CSI camera), video, "
                                                    "image, folder, glob, rtsp:// or http:// URL, gst:PIPELINE, "
                                                    "or 'demo' (default)")
    p.add_argument("--input-width", type=int, metavar="W", help="camera frame width (csi:// default 1280)")
    p.add_argument("--input-height", type=int, metavar="H", help="camera frame height (csi:// default 720)")
    p.add_argument("--input-rate", type=float, metavar="FPS", help="camera frame rate (csi:// default 30)")
    p.add_argument("--input-flip", choices=list(FLIP_METHODS), help="csi:// only: flip or rotate (nvvidconv flip-method)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "torch", "tensorrt"],
                   help="auto: from the model file; torch runs a checkpoint directly")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | tensorrt (ONNX Runtime provider)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0 = the runtime's default)")
    p.add_argument("--roi", type=float, nargs=4, metavar=("X", "Y", "W", "H"),
                   help="the object's box in frame pixels (top-left x, y, width, height), framed as training framed "
                        "objects (default: the centred crop at the model's aspect ratio)")
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--save", metavar="OUT.mp4", help="write the annotated video (.mp4 mp4v, .avi MJPG)")
    p.add_argument("--jsonl", metavar="OUT.jsonl", help="one JSON record per frame")
    p.add_argument("--show", dest="show", action="store_true", default=None,
                   help="open a window, or fail (default: a window where one can open, else headless)")
    p.add_argument("--no-show", dest="show", action="store_false", help="no window")
    p.add_argument("--parts", action="store_true", help="colour pixels by the matched cuboid part (vertex output)")
    p.add_argument("--parts-alpha", type=float, default=0.5)
    p.add_argument("--pose-every", type=int, default=0, metavar="N",
                   help="estimate the pose every N frames (torch); files: every pose is computed and drawn on its "
                        "own frame (slower), live: the newest request wins")
    p.add_argument("--pose-model", help="native checkpoint for the pose refiner (default: --model if native)")
    sm = p.add_mutually_exclusive_group()
    sm.add_argument("--smooth", type=float, metavar="DECAY",
                    help="smooth the vote shares over time: exponential moving average with this decay in (0, 1), "
                         "e.g. 0.8; the overlay and JSONL show the smoothed and the raw label (off for images)")
    sm.add_argument("--smooth-window", type=int, metavar="N",
                    help="smooth the vote shares over time: moving average of the last N frames (off for images)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--every-frame", action="store_true", help="live sources: queue every frame instead of the newest")
    p.add_argument("--allow-engine-host-code", action="store_true",
                   help="load a version-compatible TensorRT engine: it embeds host code that TensorRT runs, so only for "
                        "engines from a source you trust")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        from novum.cli_util import run_cli
    except KeyboardInterrupt:            # Ctrl-C before the handler is in place: leave, ignoring more
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("interrupted", file=sys.stderr)
        return 130

    # everything runs under run_cli's Ctrl-C handling, argument parsing and the heavy imports included
    def body() -> int:
        args = build_parser().parse_args(argv)
        quiet_opencv()          # first: OpenCV reads its log level when imported (and a missing cv2 is named)
        from pathlib import Path

        from novum import api
        from novum.opencv import clash_warning
        from novum.runtime.gstreamer import CaptureOptions
        from novum.runtime.smoothing import Smoothing

        clash = clash_warning()
        if clash and not args.quiet:
            print(f"warning: {clash}", file=sys.stderr)

        smoothing = None
        if args.smooth is not None or args.smooth_window is not None:
            smoothing = Smoothing(decay=args.smooth, window=args.smooth_window)
        summary = api.run(args.source, args.model, backend=args.backend, device=args.device, threads=args.threads,
                          keep_all=args.every_frame, show=args.show, pose_model=args.pose_model, quiet=args.quiet,
                          topk=args.topk, roi=tuple(args.roi) if args.roi else None,
                          save=Path(args.save) if args.save else None, jsonl=Path(args.jsonl) if args.jsonl else None,
                          parts=args.parts, parts_alpha=args.parts_alpha, pose_every=args.pose_every,
                          max_frames=args.max_frames, server=args.server, smoothing=smoothing,
                          capture=CaptureOptions(args.input_width, args.input_height, args.input_rate, args.input_flip),
                          allow_engine_host_code=args.allow_engine_host_code)
        written = [p for p in (summary.saved, summary.jsonl) if p is not None and p.is_file()]
        print(summary.line() + (f"; wrote {', '.join(map(str, written))}" if written else ""), file=sys.stderr)
        if summary.interrupted:
            print("interrupted: outputs closed cleanly", file=sys.stderr)
            return 130
        return 0

    return run_cli(body)


def quiet_opencv() -> None:
    """OpenCV/FFmpeg warnings would bury novum's one-line errors (they are reported by novum itself)."""
    import os

    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import numpy  # noqa: F401 - first: a Ctrl-C in its import would make cv2's import print an install hint
    from novum.opencv import require

    cv2 = require()

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


BENCH_DOC = """novum-bench: one table over every backend/precision available here.

Rows: torch (the checkpoint), ONNX Runtime fp32 / fp16 / int8, TensorRT fp32 / fp16 / int8 (when
TensorRT and a GPU are present). Columns: status, file size, top-1 agreement with torch, latency p50/p99
(batch 1, model only), model-only FPS, and pipeline FPS = the whole novum-run pipeline (decode,
framing, inference, overlay, mp4 encode, JSONL) headless on a video, measured in the same process,
alternating with the model-only runs: the FPS columns are the best of --rounds, the pipeline/model
column the median of the per-round ratios (pairs measured back to back, which cancels most of a
shared machine's drifting load). The closing notes give the int8 / fp32 speed of ONNX Runtime on
this CPU (timed side by side, with the CPU's int8 flags: without VNNI int8 cannot be expected to
pay), pipeline / model-only FPS and ONNX Runtime vs torch.

    novum-bench                                  # the bundled demo model and clip
    novum-bench --model m.safetensors --source clip.mp4 --out results/bench   # + bench.md, bench.json
"""


def _defaults_formatter():
    import argparse

    class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
        """The description as written, and every option's default in its help (options without a
        value say in their help what happens when they are left out)."""

        def _get_help_string(self, action: argparse.Action) -> str:
            text = action.help or ""
            if action.default not in (None, argparse.SUPPRESS) and "%(default)" not in text and action.option_strings:
                text += " (default: %(default)s)"
            return text

    return DefaultsFormatter


def bench_main(argv: list[str] | None = None) -> int:
    """``novum-bench``: :func:`novum.api.bench`, then the table (and OUT.md, OUT.json)."""
    import argparse

    from novum.cli_util import run_cli

    p = argparse.ArgumentParser(prog="novum-bench", description=BENCH_DOC, formatter_class=_defaults_formatter())
    p.add_argument("--model", help="native checkpoint (.safetensors / upstream .pth) (default: the bundled demo model)")
    p.add_argument("--source", help="video for agreement and the pipeline run (default: the demo clip, else "
                                    "rendered frames)")
    p.add_argument("--frames", type=int, default=32, help="frames for agreement and for the pipeline run")
    p.add_argument("--runs", type=int, default=50, help="timed single-frame inferences per backend")
    p.add_argument("--warmup", type=int, default=5, help="untimed inferences before timing")
    p.add_argument("--rounds", type=int, default=3, help="model-only and pipeline runs alternate; best of this many each")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0 = each runtime's default)")
    p.add_argument("--workdir", help="where the exported files go and stay (default: a temporary folder, removed "
                                     "at the end)")
    p.add_argument("--engines", nargs="+", metavar="FILE",
                   help="engines (.engine/.plan) or .onnx files made elsewhere: measured as extra rows")
    p.add_argument("--allow-engine-host-code", action="store_true",
                   help="load version-compatible engines among --engines: they embed host code that TensorRT runs, "
                        "so only for engines from a source you trust")
    p.add_argument("--out", help="write OUT.md and OUT.json (default: print the table only)")
    args = p.parse_args(argv)

    def body() -> int:
        quiet_opencv()
        from novum import api
        from novum.runtime import bench as measuring

        rows, info = api.bench(args.model, args.source, frames=args.frames, runs=args.runs, warmup=args.warmup,
                               rounds=args.rounds, threads=args.threads, workdir=args.workdir, engines=args.engines or (),
                               allow_engine_host_code=args.allow_engine_host_code, log=lambda s: print(s, file=sys.stderr))
        print(measuring.table(rows))
        for n in measuring.notes(rows, info):
            print(f"- {n}")
        if args.out:
            md, js = measuring.write(rows, info, args.out)
            print(f"wrote {md} and {js}", file=sys.stderr)
        return 0 if any(r.status == "ok" for r in rows) else 1

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
