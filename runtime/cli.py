"""``novum-run``: classify a camera, a video, images or a stream in real time.

Examples::

    novum-run --source demo --save out.mp4 --jsonl out.jsonl      # bundled model + clip, headless
    novum-run --model model.engine --source 0                      # webcam, TensorRT, window
    novum-run --model model.onnx --source clip.mp4 --roi 100 80 320 240 --topk 5

Keys in the window: q / Esc quit, space pause, p estimate the pose now.
"""
from __future__ import annotations

import argparse
import signal
import sys

from novum.cli_util import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="novum-run", description=__doc__.replace("``", "").replace("::", ":"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model.engine/.plan (TensorRT), .onnx (ONNX Runtime) or .safetensors/.pth "
                                   "(exported to ONNX once and cached; default: the bundled demo model)")
    p.add_argument("--source", default="demo", help="camera index, /dev/videoN, video, image, folder, glob, "
                                                    "rtsp:// or http:// URL, or 'demo' (default)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "torch", "tensorrt"],
                   help="auto: from the model file; torch runs a checkpoint directly")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | tensorrt (ONNX Runtime provider)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0 = the runtime's default)")
    p.add_argument("--roi", type=float, nargs=4, metavar=("X", "Y", "W", "H"),
                   help="object box in frame pixels (default: the centred crop at the model's aspect ratio)")
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--save", metavar="OUT.mp4", help="write the annotated video (.mp4 mp4v, .avi MJPG)")
    p.add_argument("--jsonl", metavar="OUT.jsonl", help="one JSON record per frame")
    p.add_argument("--show", dest="show", action="store_true", default=None, help="open a window (default: if a display exists)")
    p.add_argument("--no-show", dest="show", action="store_false")
    p.add_argument("--parts", action="store_true", help="colour pixels by the matched cuboid part (vertex output)")
    p.add_argument("--parts-alpha", type=float, default=0.5)
    p.add_argument("--pose-every", type=int, default=0, metavar="N", help="estimate the pose every N frames (torch)")
    p.add_argument("--pose-model", help="native checkpoint for the pose refiner (default: --model if native)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--every-frame", action="store_true", help="live sources: queue every frame instead of the newest")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_opencv()

    def body() -> int:
        from pathlib import Path

        from novum.runtime.run import run

        if threading_main():
            signal.signal(signal.SIGTERM, _raise_interrupt)
        summary = run(args.source, args.model, backend=args.backend, device=args.device, threads=args.threads,
                      keep_all=args.every_frame, show=args.show, pose_model=args.pose_model, quiet=args.quiet,
                      topk=args.topk, roi=tuple(args.roi) if args.roi else None,
                      save=Path(args.save) if args.save else None, jsonl=Path(args.jsonl) if args.jsonl else None,
                      parts=args.parts, parts_alpha=args.parts_alpha, pose_every=args.pose_every,
                      max_frames=args.max_frames)
        outs = [str(p) for p in (summary.saved, summary.jsonl) if p is not None]
        print(summary.line() + (f"; wrote {', '.join(outs)}" if outs else ""), file=sys.stderr)
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
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
