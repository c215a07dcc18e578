"""``novum-export``: checkpoint -> ONNX (fp32 / fp16 / int8) [-> TensorRT engine] [-> verification]."""
from __future__ import annotations

import argparse
import sys

from novum.cli_util import run_cli
from novum.contracts.int8 import CALIB_METHODS, DEFAULT_CALIB_METHOD
from novum.contracts.onnx_file import DEFAULT_EXPORTER, DEFAULT_MAX_BATCH, EXPORTERS, OPSET


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="novum-export",
        description="Export a NOVUM model to ONNX (uint8 BGR frames in; class scores and vertex matches out), "
                    "optionally fp16 / int8 and TensorRT engines, and verify them against torch.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="novum .safetensors or the official upstream .pth (detected automatically); "
                                          "default: the bundled demo model")
    src.add_argument("--onnx", help="build the TensorRT engine from this novum .onnx file (made elsewhere); no torch "
                                    "needed: the precision is in the file")
    p.add_argument("--output-dir", default="exports", help="where the files go (default: exports/)")
    p.add_argument("--name", help="file name stem (default: the checkpoint's)")
    p.add_argument("--fp16", action="store_true", help="also write an fp16 ONNX (precision in the graph) and engine")
    p.add_argument("--int8", action="store_true",
                   help="also write int8 (Q/DQ) ONNX graphs via novum.calibration: <name>_int8.onnx for ONNX Runtime on "
                        "CPUs and <name>_int8_trt.onnx for TensorRT (the int8 engine is built from it)")
    p.add_argument("--int8-target", choices=("both", "onnxruntime", "tensorrt"), default="both",
                   help="which int8 graph(s) to write (default both; they share one calibration)")
    p.add_argument("--int8-speed-rounds", type=int, default=5, metavar="N",
                   help="time the ONNX Runtime int8 graph against fp32 on this CPU, N alternating rounds "
                        "(default 5; 0: skip)")
    p.add_argument("--calib", help="int8 calibration data: 'demo' (synthetic frames of the model's classes, the "
                                   "default), a folder of images, a glob or a video; implies --int8")
    p.add_argument("--calib-method", choices=CALIB_METHODS, default=DEFAULT_CALIB_METHOD,
                   help=f"int8 activation-range method (default {DEFAULT_CALIB_METHOD}; percentile: 99.999%% of the values)")
    p.add_argument("--calib-samples", type=int, default=64, help="int8 calibration frames (default 64)")
    p.add_argument("--calib-seed", type=int, default=0, help="seed that picks the calibration frames (default 0)")
    p.add_argument("--calib-holdout", type=int, default=200,
                   help="held-out frames (not calibration frames) for the int8 accuracy gate (default 200)")
    p.add_argument("--int8-threshold", type=float, default=0.99,
                   help="min top-1 agreement of int8 with fp32 on held-out frames (default 0.99)")
    p.add_argument("--int8-fallback", type=int, default=0, metavar="N",
                   help="keep up to N of the most int8-sensitive convolutions in fp32 when the fully quantized "
                        "backbone misses --int8-threshold on the calibration frames (default 0: off)")
    p.add_argument("--allow-degraded", action="store_true",
                   help="write the int8 model even when it fails the accuracy gate")
    p.add_argument("--batch", "--max-batch", dest="batch", type=int, default=DEFAULT_MAX_BATCH,
                   help=f"largest batch of the engine profile (ONNX batch is dynamic; default {DEFAULT_MAX_BATCH})")
    p.add_argument("--imgsz", type=int, nargs=2, metavar=("H", "W"),
                   help="input height and width (default: the size the model was trained at; another size needs "
                        "--force-imgsz)")
    p.add_argument("--force-imgsz", action="store_true",
                   help="export at an --imgsz other than the trained size anyway (a warning; the model then sees "
                        "objects at another scale and its accuracy is not verified)")
    p.add_argument("--engine", action=argparse.BooleanOptionalAction, default=None,
                   help="build TensorRT engines (default: when TensorRT and a GPU are present)")
    p.add_argument("--workspace", type=float, default=4.0, help="TensorRT workspace in GiB (default 4)")
    p.add_argument("--strict-fp32", action="store_true", help="clear TF32: an exact fp32 reference engine")
    p.add_argument("--version-compatible", action="store_true", help="engine that later TensorRT versions can run")
    p.add_argument("--hardware-compatible", choices=("ampere_plus", "same_compute_capability"),
                   help="engine that other GPUs can run (may be slower)")
    p.add_argument("--timing-cache", help="TensorRT timing cache file (default: timing-*.cache in $NOVUM_CACHE, else ~/.cache/novum)")
    p.add_argument("--verify", action="store_true", help="compare every output with torch on the same frames")
    p.add_argument("--verify-frames", type=int, default=8, help="number of verification frames (default 8)")
    p.add_argument("--verify-images", help="folder of images to verify with (default: rendered frames)")
    p.add_argument("--features", action="store_true", help="extra output 'features' [B,D,h,w] for the pose refiner")
    p.add_argument("--fp16-head", choices=("fp16", "fp32"), default="fp16",
                   help="precision of the matching GEMMs in the fp16 graph (default fp16)")
    p.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                   help="torch's ONNX exporter: dynamo (default, torch.export) or torchscript (deprecated by torch; "
                        "the graph novum wrote before, opset 17)")
    p.add_argument("--opset", type=int, help=f"ONNX opset (default {OPSET} with dynamo, 17 with torchscript; "
                                             f"<= 20 for int8)")
    p.add_argument("--triton", metavar="DIR", help="also write a Triton Inference Server model repository into DIR: "
                                                   "each ONNX file on onnxruntime_onnx, each engine on tensorrt_plan, "
                                                   "max_batch_size = --batch, dynamic batching, labels on 'scores'")
    p.add_argument("--triton-instances", type=int, default=1, metavar="N",
                   help="model instances per device in the Triton configs (default 1)")
    p.add_argument("--mesh-dir", help="upstream CAD_single folder: exact meshes for an upstream .pth")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        from novum.api import export   # here: a missing OpenCV is then a one-line error (run_cli), not a traceback

        if args.onnx:
            return _from_onnx(args)
        int8 = args.int8 or args.calib is not None
        int8_options = {"calib": args.calib or "demo", "method": args.calib_method, "samples": args.calib_samples,
                        "seed": args.calib_seed, "holdout": args.calib_holdout, "threshold": args.int8_threshold,
                        "allow_degraded": args.allow_degraded, "fallback": args.int8_fallback,
                        "targets": ("onnxruntime", "tensorrt") if args.int8_target == "both" else (args.int8_target,),
                        "speed_rounds": args.int8_speed_rounds} if int8 else None

        res = export(args.checkpoint, args.output_dir, fp16=args.fp16, int8=int8, batch=args.batch,
                     imgsz=tuple(args.imgsz) if args.imgsz else None, engine=args.engine, workspace=args.workspace,
                     verify=args.verify, features=args.features, strict_fp32=args.strict_fp32,
                     version_compatible=args.version_compatible, hardware_compatible=args.hardware_compatible,
                     timing_cache=args.timing_cache, name=args.name, opset=args.opset, exporter=args.exporter,
                     fp16_head=args.fp16_head,
                     verify_frames=args.verify_frames, verify_images=args.verify_images, mesh_dir=args.mesh_dir,
                     int8_options=int8_options, triton=args.triton, triton_instances=args.triton_instances,
                     force_imgsz=args.force_imgsz)
        total = sum(res.timings.values())
        files = [*res.onnx.values(), *res.engines.values()] + ([args.triton] if res.triton else [])
        print(f"done in {total:.1f}s: " + ", ".join(str(p) for p in files))
        if not res.ok:
            print("error: verification failed: an output is outside its stated tolerance (table above)",
                  file=sys.stderr)
            return 1
        if res.verify is not None:
            for w in res.verify.warnings:
                print(f"warning: {w}", file=sys.stderr)
        return 0

    return run_cli(body)


def _from_onnx(args: argparse.Namespace) -> int:
    """``--onnx``: only the engine options apply; the others shape an ONNX file that already exists."""
    from novum.api import build_engines
    from novum.errors import InputError

    defaults = parser().parse_args([])
    fixed = [f"--{k.replace('_', '-')}" for k in ("fp16", "int8", "calib", "imgsz", "features", "fp16_head", "opset",
                                                  "mesh_dir", "verify", "verify_images", "triton", "force_imgsz")
             if getattr(args, k) != getattr(defaults, k)]
    if fixed:
        raise InputError(f"--onnx builds the engine of an existing ONNX file; {', '.join(fixed)} shape the ONNX file "
                         f"itself: export it with --checkpoint and those options instead")
    if args.engine is False:
        raise InputError("--onnx --no-engine has nothing to do: --onnx builds the engine")
    res = build_engines(args.onnx, args.output_dir, batch=args.batch, workspace=args.workspace,
                        strict_fp32=args.strict_fp32, version_compatible=args.version_compatible,
                        hardware_compatible=args.hardware_compatible, timing_cache=args.timing_cache, name=args.name)
    print(f"done in {sum(res.timings.values()):.1f}s: " + ", ".join(str(p) for p in res.engines.values()))
    return 0
