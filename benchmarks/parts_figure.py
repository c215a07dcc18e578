"""What ``novum-run --parts`` shows on occluded test scenes: one row per model, one column per scene.

    python benchmarks/parts_figure.py --model novum/assets/demo.safetensors \
        --model benchmarks/occlusion_k3.safetensors --out docs/images/occluded_parts.png

The scenes are the first test image of each named class (``SyntheticDataset`` test split, the given
seed and occlusion level). They go through ``novum-run --parts --save`` unchanged (the same library
call), and the annotated frames are read back from the saved video, upscaled and tiled. Prints, per
model and scene, the true class, the shown label, its vote share and its vote box.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def scenes(config: object, classes: list[str], seed: int, level: str | None) -> list[np.ndarray]:
    """The first test scene of each class in ``classes`` (BGR uint8 images, in that order)."""
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    ds = SyntheticDataset(SyntheticConfig(per_class=1, split="test", seed=seed, occlusion=level), config)
    names = list(ds.classes)
    return [ds[names.index(c)].image for c in classes]


def annotated(model: str, images: list[np.ndarray], work: Path) -> tuple[list[np.ndarray], list[dict]]:
    """``images`` through the runtime with ``--parts`` and ``--save``: the saved frames and the JSONL records."""
    from novum.api import run
    from novum.runtime.sources import open_source

    src = work / "scenes"
    src.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(images):
        cv2.imwrite(str(src / f"{k:02d}.png"), img)
    video, log = work / "parts.avi", work / "parts.jsonl"
    run(str(src), model, show=False, quiet=True, save=video, jsonl=log, parts=True)
    with open_source(str(video)) as saved:
        frames = [f.image for f in saved]
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if len(frames) != len(images):
        raise RuntimeError(f"{model}: {len(frames)} frames saved for {len(images)} scenes")
    return frames, records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="a model file (repeat: one row each)")
    p.add_argument("--classes", nargs="+", default=["bicycle", "boat", "bus", "car"])
    p.add_argument("--level", default="L2", help="occlusion level (L1/L2/L3), 'none' for clean")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--scale", type=int, default=2, help="upscale factor of the figure")
    p.add_argument("--out", required=True, help="the figure (.png)")
    args = p.parse_args(argv)
    from novum.checkpoint import load_model

    level = None if args.level == "none" else args.level
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(args.model):
            images = scenes(load_model(m).config, args.classes, args.seed, level)
            frames, records = annotated(m, images, Path(tmp) / f"m{i}")
            for t, r in zip(args.classes, records):
                print(f"{Path(m).name}: {t} -> {r.get('label')} (vote share {r.get('confidence', float('nan')):.2f}, vote box {r.get('box')})")
            rows.append(np.concatenate([cv2.resize(f, None, fx=args.scale, fy=args.scale,
                                                   interpolation=cv2.INTER_NEAREST) for f in frames], axis=1))
    fig = np.concatenate(rows, axis=0)
    out = Path(args.out)
    tmp_out = out.with_name(out.stem + ".tmp" + out.suffix)
    if not cv2.imwrite(str(tmp_out), fig):
        print(f"error: could not write {out}; check the folder exists and is writable", file=sys.stderr)
        return 1
    tmp_out.replace(out)
    print(f"wrote {out} ({fig.shape[1]}x{fig.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
