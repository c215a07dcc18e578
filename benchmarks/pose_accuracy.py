"""Pose accuracy and CPU time per refinement on the synthetic test split (known poses).

    python benchmarks/pose_accuracy.py --model novum/assets/demo.safetensors --per-class 10 \
        --out pose_accuracy.md

Prints (and writes) the table: per occlusion level (clean, L1-L3) accuracy at pi/6 and pi/18,
median rotation error (upstream metric, docs/upstream.md 5.7) and the median wall time
of one refinement (grid init + Adam steps) on one CPU thread. GT class and GT box, as upstream.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="checkpoint (default: the bundled demo model)")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--levels", nargs="+", default=["clean", "L1", "L2", "L3"])
    p.add_argument("--iterations", type=int)
    p.add_argument("--objective", choices=("nemo", "upstream"), default="nemo")
    p.add_argument("--clutter", choices=("none", "mean", "max"), default="none",
                   help="clutter-aware loss: NeMo's mean clutter feature, or the best clutter-row match")
    p.add_argument("--restarts", type=int, default=1, help="refine from this many distinct grid views")
    p.add_argument("--no-box", action="store_true", help="compare over the whole map, not the GT box")
    p.add_argument("--features", choices=("model", "oracle"), default="model",
                   help="'oracle': the class volume rendered at the GT pose (+ noise) instead of the model's map")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the markdown table here (and a .json beside it)")
    args = p.parse_args(argv)

    from novum.bundled import demo_model_path
    from novum.checkpoint import load_model
    from novum.io import atomic_write_text
    from novum.pose.evaluate import evaluate

    model = load_model(args.model or demo_model_path())
    levels = [None if lv == "clean" else lv for lv in args.levels]
    rep = evaluate(model, per_class=args.per_class, levels=levels, iterations=args.iterations,
                   objective=args.objective, clutter=None if args.clutter == "none" else args.clutter, box=not args.no_box, features=args.features,
                   seed=args.seed, threads=args.threads, restarts=args.restarts, progress=lambda m: print(m, file=sys.stderr, flush=True))
    text = rep.markdown()
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
        atomic_write_text(Path(args.out).with_suffix(".json"), rep.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
