"""``novum-train``: train a NOVUM model (or the plain classifier baseline) from a config file.

Single process:   novum-train --config configs/demo.json --out runs/demo
Baseline:         novum-train --config configs/demo.json --out runs/demo_baseline --baseline
Multi-GPU/CPU:    torchrun --nproc_per_node N -m novum.train --config ... --out ...
Resume:           the same command with --resume

The model is trained and used bias-free: features are ``backbone(x)`` (the out_layer projection
without its bias, upstream's inference path) in training too; upstream trained with the bias and
inferred without it. Output: ``<out>/model.safetensors`` (native format, the exact command and the
training config in its metadata), ``last.safetensors`` + ``train_state.pt`` for --resume,
``log.jsonl`` (loss, lr, throughput, validation accuracy), ``config.json``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from novum.cli_util import run_cli
from novum.extras import require
from novum.training.config import TrainConfig, load_config, resume_files

if TYPE_CHECKING:   # the training modules are torch: imported in run(), after the config was checked (a
    # config error comes at once), so that novum-train without torch ends with one line naming the [torch] extra
    from novum.training.data import PackedSamples
    from novum.training.dist import DistContext
    from novum.training.loop import TrainResult


def training_data(cfg: TrainConfig, out: Path, dist: DistContext,
                  progress: bool = True) -> tuple[PackedSamples, PackedSamples | None]:
    """Train and validation data for ``cfg``; rank 0 renders and caches, the other ranks then load."""
    from novum.training.datasets import default_workers, load_packed, synthetic_packed

    d = cfg.data
    if d.source != "synthetic":
        return load_packed(d.source), None
    mc = cfg.model_config()
    cache = Path(d.cache) if d.cache else out / "data"

    def make() -> tuple[PackedSamples, PackedSamples | None]:
        show = progress and dist.is_main
        tr = synthetic_packed(mc, "train", d.per_class, d.seed, cache, default_workers(), show, **d.options)
        va = synthetic_packed(mc, "val", d.val_per_class, d.seed, cache, default_workers(), show, **d.options) \
            if d.val_per_class > 0 else None
        return tr, va

    if dist.is_main:
        data = make()
    dist.barrier()
    if not dist.is_main:
        data = make()  # cached by rank 0: loads
    return data


def preflight(cfg: TrainConfig, out: Path, resume: bool) -> None:
    """Everything that can be checked before rendering data or creating ``out`` (fail in seconds, not minutes)."""
    from novum.errors import InputError

    if resume:
        missing = [p.name for p in resume_files(out) if not p.is_file()]
        if missing:
            raise InputError(f"{out}: nothing to resume ({', '.join(missing)} missing); drop --resume to start fresh")
    elif cfg.init and not Path(cfg.init).is_file():
        raise InputError(f"{cfg.init}: init checkpoint not found; fix 'init' in the config")
    if cfg.data.source != "synthetic" and not Path(cfg.data.source).is_file():
        raise InputError(f"{cfg.data.source}: training data not found; pass a packed .npz or use data.source=synthetic")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out is a file; pass a folder")


def run(cfg: TrainConfig, out: str | Path, baseline: bool = False, resume: bool = False, device: str | None = None,
        command: str = "", progress: bool = True, max_steps: int | None = None) -> TrainResult:
    """Render/load the data, train, write ``out/model.safetensors``."""
    out = Path(out)
    preflight(cfg, out, resume)
    torch = require("torch", "training")
    from novum.training.dist import init_distributed
    from novum.training.loop import train

    dist = init_distributed(device)
    try:
        if cfg.threads and dist.device.type == "cpu":
            torch.set_num_threads(int(cfg.threads))
        data = training_data(cfg, out, dist, progress)
        res = train(cfg, out, data, baseline=baseline, resume=resume, command=command, progress=progress,
                    dist=dist, max_steps=max_steps)
        if dist.is_main:
            val = "" if res.val_accuracy is None else f", val top-1 {res.val_accuracy:.4f}"
            print(f"wrote {res.model_path} ({res.steps} steps, {res.epochs} epochs, {res.seconds:.0f} s, "
                  f"{res.images_per_s:.1f} img/s{val})")
        return res
    finally:
        dist.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="novum-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="training config (.json, or .yaml with PyYAML); defaults if omitted")
    p.add_argument("--out", required=True, help="run folder (model.safetensors, resume state, log)")
    p.add_argument("--baseline", action="store_true",
                   help="train the plain classifier baseline (same encoder + global pooling + linear head)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set epochs=5 --set data.per_class=100")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if available")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log.jsonl still written)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    command = "novum-train " + " ".join(shlex.quote(a) for a in argv_used)

    def body() -> int:
        cfg = load_config(args.config, args.set)
        run(cfg, args.out, baseline=args.baseline, resume=args.resume, device=args.device, command=command,
            progress=not args.no_progress, max_steps=args.max_steps)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
