"""``novum-pose IMAGE --model M``: classify an image, estimate the object's 3D pose, draw it.

Examples::

    novum-pose car.png                                   # the bundled demo model
    novum-pose car.png --model demo.safetensors --explain --out car_pose.png
    novum-pose car.png --model demo.onnx --checkpoint demo.safetensors   # export with --features
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from novum.bundled import demo_model_path
from novum.cli_util import run_cli
from novum.extras import require


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="novum-pose", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="image showing one object, centred (framed like novum-run's input)")
    p.add_argument("--model", help="checkpoint (.safetensors / upstream .pth) or an export with a 'features' "
                                   "output (.onnx / .engine); default: the bundled demo model")
    p.add_argument("--checkpoint", help="native checkpoint with the class volumes (needed with an export)")
    p.add_argument("--class", dest="class_name", help="estimate the pose of this class instead of the predicted one")
    p.add_argument("--explain", action="store_true", help="also colour pixels by their matched cuboid part")
    p.add_argument("--out", help="overlay image to write (default: <image>_pose.png in the current folder)")
    p.add_argument("--box", type=int, nargs=4, metavar=("Y0", "Y1", "X0", "X1"),
                   help="compare only inside this box of the model input (upstream's GT-box crop)")
    p.add_argument("--iterations", type=int, help="Adam steps after the grid init (default 100)")
    p.add_argument("--objective", choices=("nemo", "upstream"), default="nemo",
                   help="'upstream' reproduces NOVUM's sum(dim=0) objective exactly")
    p.add_argument("--clutter", nargs="?", const="mean", choices=("mean", "max"),
                   help="clutter-aware loss: 'mean' (NeMo: one mean clutter feature; the default of a bare "
                        "--clutter) or 'max' (a pixel's best match over the clutter rows)")
    p.add_argument("--restarts", type=int, default=1, help="refine from this many distinct grid views, keep the best")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        require("torch", "novum-pose (the pose refiner)")
        from novum.runtime.pose_image import estimate_image   # here: a missing OpenCV is a one-line error

        model = args.model or demo_model_path()
        out = args.out or f"{Path(args.image).stem}_pose.png"
        res = estimate_image(args.image, model, checkpoint=args.checkpoint, class_name=args.class_name,
                             explain=args.explain, out=out, box=args.box, iterations=args.iterations,
                             objective=args.objective, clutter=args.clutter, restarts=args.restarts)
        if args.json:
            print(json.dumps(res.to_dict()))
        else:
            if res.class_name != res.predicted:
                print(f"predicted class: {res.predicted} (pose asked for {res.class_name})")
            print(res.pose.describe([res.class_name] * (res.class_index + 1)))
            print(f"overlay: {res.overlay}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
