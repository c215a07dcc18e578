"""``novum-data``: generate the synthetic posed dataset, render the demo clip, preview samples.

    novum-data generate --out data/synth/test --split test --per-class 50 [--occlusion L2] [--corruption blur]
    novum-data clip --out novum/assets/demo_clip.mp4
    novum-data preview --out grid.png [--occlusion L3]
    novum-data bench
"""
from __future__ import annotations

import argparse
from pathlib import Path

from novum.cli_util import run_cli
from novum.config import PASCAL3D_CLASSES


def _classes(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in names if c not in PASCAL3D_CLASSES]
    if bad:
        from novum.errors import InputError

        raise InputError(f"unknown class {bad[0]!r} in --classes; choose from {','.join(PASCAL3D_CLASSES)}")
    return names


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--per-class", type=int, default=100, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--occlusion", choices=["L1", "L2", "L3"], help="occluders covering 20-40/40-60/60-80%% of the object")
    p.add_argument("--corruption", choices=["noise", "blur", "contrast", "jpeg"])
    p.add_argument("--severity", type=int, default=3, help="corruption severity 1..5")
    p.add_argument("--imgsz", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    p.add_argument("--classes", help=f"comma-separated subset (default: the 12 PASCAL3D+ classes: {','.join(PASCAL3D_CLASSES)})")
    p.add_argument("--vertices", type=int, default=200, help="mesh density of the model's cuboids (small_config)")
    p.add_argument("--model", help="take classes, input size and cuboids from this checkpoint instead")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="novum-data", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write a synthetic split in the NeMo layout")
    g.add_argument("--out", required=True, help="dataset root to write (images/, annotations/, lists/)")
    _common(g)
    g.add_argument("--format", default="png", choices=["png", "jpg"])
    g.add_argument("--workers", type=int, default=1, help="processes rendering in parallel")
    g.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("clip", help="render the demo clip (objects turning, occluders passing)")
    c.add_argument("--out", default="novum/assets/demo_clip.mp4")
    c.add_argument("--classes", default="car,aeroplane,bicycle,chair,bus,tvmonitor,bottle")
    c.add_argument("--seconds-per-class", type=float, default=2.0)
    c.add_argument("--fps", type=float, default=15.0)
    c.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--truth", help="also write the per-frame class and pose as JSON here")
    v = sub.add_parser("preview", help="write a PNG grid of samples (rows = classes)")
    v.add_argument("--out", required=True)
    _common(v)
    v.set_defaults(per_class=6)
    v.add_argument("--keypoints", action="store_true", help="mark the visible keypoints")
    b = sub.add_parser("bench", help="generator throughput on one core (clean, L2 occlusion, blur)")
    b.add_argument("-n", type=int, default=120, help="images per variant")
    b.add_argument("--imgsz", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    return ap


def _model_config(args):
    from novum.config import small_config

    if args.model:
        from novum.checkpoint import load_model

        cfg = load_model(args.model).config
        if _classes(args.classes):
            from novum.errors import InputError

            raise InputError("--classes cannot be combined with --model (the model fixes its classes)")
        return cfg
    classes = _classes(args.classes)
    kw = {"input_size": tuple(args.imgsz), "vertices": args.vertices}
    return small_config(classes=classes, **kw) if classes else small_config(**kw)


def _dataset(args):
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    cfg = SyntheticConfig(per_class=args.per_class, split=args.split, seed=args.seed, occlusion=args.occlusion,
                          corruption=args.corruption, severity=args.severity)
    return SyntheticDataset(cfg, _model_config(args))


def generate(args) -> int:
    from novum.data.writer import write_dataset

    root = write_dataset(_dataset(args), args.out, progress=not args.no_progress, fmt=args.format, workers=args.workers)
    print(f"wrote {root}")
    return 0


def clip(args) -> int:
    from novum.data.clip import make_clip

    out = make_clip(args.out, _classes(args.classes), args.seconds_per_class, args.fps, tuple(args.size), args.seed,
                    args.truth)
    print(f"wrote {out} ({Path(out).stat().st_size / 1e6:.2f} MB)")
    return 0


def preview(args) -> int:
    from novum.data.preview import write_grid

    print(f"wrote {write_grid(_dataset(args), args.out, keypoints=args.keypoints)}")
    return 0


def bench(args) -> int:
    from novum.data.bench import throughput

    for row in throughput(args.n, tuple(args.imgsz)):
        print(f"{row['variant']:>6}: {row['images_per_s']:7.1f} images/s  ({row['ms_per_image']:.2f} ms/image, one process)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cmds = {"generate": generate, "clip": clip, "preview": preview, "bench": bench}
    return run_cli(lambda: cmds[args.cmd](args))


if __name__ == "__main__":
    raise SystemExit(main())
