"""INT8 vs fp32 accuracy per split (clean, L1, L2, L3 occlusion) on held-out synthetic frames.

    python benchmarks/int8_accuracy.py                          # the bundled demo model
    python benchmarks/int8_accuracy.py --model m.safetensors --methods minmax entropy --per-class 20 --out results/int8_acc

For each calibration method: the INT8 Q/DQ model is made with ``novum.calibration`` from
``--calib`` (default ``demo`` = synthetic train-split frames), then fp32 and INT8 run on ONNX
Runtime CPU over the synthetic *test* split (never the calibration frames) of each occlusion level.
The table gives accuracy of each, the drop, and the top-1 agreement INT8 vs fp32.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPLITS = (None, "L1", "L2", "L3")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="native checkpoint (default: the bundled demo model)")
    p.add_argument("--calib", default="demo", help="calibration data (default: demo = synthetic train frames)")
    p.add_argument("--samples", type=int, default=64, help="calibration frames (default 64)")
    p.add_argument("--methods", nargs="+", default=["minmax", "entropy", "percentile"])
    p.add_argument("--fallback", type=int, default=0, help="--int8-fallback N (keep up to N sensitive convs fp32)")
    p.add_argument("--per-class", type=int, default=10, help="test frames per class and split (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime / torch threads (0 = default)")
    p.add_argument("--workdir", help="where the ONNX files go (default: a temporary folder)")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    a = p.parse_args(argv)

    import torch

    from novum.bundled import demo_model_path
    from novum.calibration.quantize import quantize
    from novum.calibration.readers import synthetic_frames
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx
    from novum.runtime.backends.ort import run_onnx

    if a.threads:
        torch.set_num_threads(a.threads)
    ckpt = Path(a.model) if a.model else demo_model_path()
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="novum-int8-acc-"))
    work.mkdir(parents=True, exist_ok=True)
    model = load_model(ckpt)
    cfg = model.config
    fp32 = export_onnx(model, work / f"{ckpt.stem}.onnx")
    n_test = a.per_class * cfg.num_classes
    t = time.perf_counter()
    splits = {s: synthetic_frames(cfg, n_test, a.seed, split="test", occlusion=s) for s in SPLITS}
    print(f"model {ckpt.name}; {n_test} test frames per split rendered in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    ref = {s: run_onnx(fp32, fs.frames, max_batch=8)["scores"].argmax(1) for s, fs in splits.items()}

    rows = []
    for method in a.methods:
        res = quantize(fp32, work / f"{ckpt.stem}_int8_{method}.onnx", calib=a.calib, method=method,
                       samples=a.samples, seed=a.seed, gate=False, fallback=a.fallback,
                       log=lambda s: print(s, file=sys.stderr))
        for s, fs in splits.items():
            top = run_onnx(res.path, fs.frames, max_batch=8)["scores"].argmax(1)
            acc32, acc8 = float((ref[s] == fs.labels).mean()), float((top == fs.labels).mean())
            rows.append({"method": method, "split": s or "clean", "frames": len(fs), "acc_fp32": acc32,
                         "acc_int8": acc8, "drop_pts": 100 * (acc32 - acc8), "agreement": float((top == ref[s]).mean()),
                         "calib_seconds": res.timings.get("quantize"), "fp32_layers": res.fp32_layers})
    lines = [f"INT8 vs fp32 on the synthetic test split, model `{ckpt.name}` "
             f"({cfg.backbone.arch}, {cfg.input_size[0]}x{cfg.input_size[1]}), calibration `{a.calib}` x{a.samples}, "
             f"{n_test} frames per split, ONNX Runtime CPU"
             + (f", fallback <= {a.fallback} fp32 convs" if a.fallback else ""), "",
             "| method | split | acc fp32 | acc int8 | drop (pts) | top-1 agreement |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['split']} | {100 * r['acc_fp32']:.1f}% | {100 * r['acc_int8']:.1f}% | "
                     f"{r['drop_pts']:+.1f} | {100 * r['agreement']:.1f}% |")
    for method in a.methods:
        mr = [r for r in rows if r["method"] == method]
        agree = sum(r["agreement"] * r["frames"] for r in mr) / sum(r["frames"] for r in mr)
        lines.append(f"\n- {method}: agreement over all {sum(r['frames'] for r in mr)} held-out frames {100 * agree:.2f}%")
    text = "\n".join(lines)
    print(text)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text + "\n")
        out.with_suffix(".json").write_text(json.dumps({"model": str(ckpt), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
