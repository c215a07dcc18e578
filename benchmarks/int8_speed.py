"""ONNX Runtime CPU: int8 vs fp32 speed of both models, timed side by side, with the CPU's int8 flags.

    python benchmarks/int8_speed.py                       # demo model + upstream layout (640x800), batch 1
    python benchmarks/int8_speed.py --models demo --threads 1 2 --repeats 5 --out results/int8_speed

The one command a machine with AVX-512 VNNI runs to check the targets of issue 16 (int8 at least
2.0x fp32 for the upstream layout at 640x800, at least 1.2x for the demo model): for each model
the fp32 ONNX is exported, the int8 graphs are made by ``novum.calibration`` (both targets, one
calibration on synthetic frames, no gate: the upstream layout has random weights here), then fp32
and the ONNX Runtime int8 graph are timed in alternating blocks (:func:`novum.runtime.speed.compare_speed`),
``--repeats`` times; each repeat's ratio is the median of its rounds, and the table gives the
median and the spread over repeats. ``--trt-graph`` also times the TensorRT int8 graph on ONNX
Runtime (its convolutions run in fp32 there: it is for TensorRT). The CPU's flags are printed with
the numbers: without VNNI (AVX2 only) int8 cannot be expected to pay.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_SAMPLES = {"demo": 64, "upstream": 8}


def build(name: str, work: Path, samples: int, log) -> tuple[dict[str, Path], str]:
    """fp32 + both int8 graphs of ``name`` (``demo``: the bundled model; ``upstream``: the upstream
    layout, ResNet-50 at 640x800, random weights; or a checkpoint path)."""
    import torch

    from novum.bundled import demo_model_path
    from novum.calibration.quantize import quantize_targets
    from novum.checkpoint import load_model
    from novum.config import upstream_config
    from novum.contracts.int8 import ONNXRUNTIME, TENSORRT
    from novum.export.onnx import export_onnx
    from novum.model import NovumModel

    if name == "upstream":
        torch.manual_seed(0)
        model = NovumModel(upstream_config(), generator=torch.Generator().manual_seed(0)).eval()
    else:
        model = load_model(demo_model_path() if name == "demo" else Path(name))
    cfg = model.config
    stem = Path(name).stem
    t = time.perf_counter()
    fp32 = export_onnx(model, work / f"{stem}.onnx")
    made = quantize_targets(fp32, work / f"{stem}_int8.onnx", samples=samples, gate=False, log=log)
    what = f"{stem} ({cfg.backbone.arch}, {cfg.input_size[0]}x{cfg.input_size[1]}, {samples} calibration frames)"
    log(f"{what}: exported and quantized in {time.perf_counter() - t:.0f}s")
    return {"fp32": fp32, "int8": made[ONNXRUNTIME].path, "int8_trt": made[TENSORRT].path}, what


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["demo", "upstream"],
                   help="demo, upstream (ResNet-50 layout at 640x800, random weights) or checkpoint paths")
    p.add_argument("--threads", type=int, nargs="+", default=[0], help="intra-op threads (0 = ONNX Runtime's default)")
    p.add_argument("--repeats", type=int, default=3, help="independent comparisons per model and thread count")
    p.add_argument("--rounds", type=int, default=5, help="alternating fp32 / int8 blocks per comparison")
    p.add_argument("--samples", type=int, default=0, help="calibration frames (default: demo 64, upstream 8)")
    p.add_argument("--trt-graph", action="store_true", help="also time the TensorRT int8 graph on ONNX Runtime")
    p.add_argument("--workdir", help="where the ONNX files go (default: a temporary folder)")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    a = p.parse_args(argv)

    import logging

    logging.getLogger().setLevel(logging.ERROR)
    from novum.calibration.readers import synthetic_frames
    from novum.contracts.onnx_file import read_metadata
    from novum.runtime.speed import compare_speed, cpu_info

    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="novum-int8-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    cpu = cpu_info()
    lines = [f"CPU: {cpu.line()}", f"ONNX Runtime CPU provider, batch 1; fp32 and int8 timed in alternating blocks, "
             f"{a.rounds} rounds per comparison, {a.repeats} comparisons (spread = min-max of their medians)", "",
             "| model | threads | variant | fp32 ms | int8 ms | int8 / fp32 speed | spread over repeats |",
             "|---|---:|---|---:|---:|---:|---|"]
    rows = []
    for name in a.models:
        files, what = build(name, work, a.samples or DEFAULT_SAMPLES.get(name, 8), log)
        frame = synthetic_frames(read_metadata(files["fp32"])["config"], 1, seed=1, split="val").frames
        variants = ["int8"] + (["int8_trt"] if a.trt_graph else [])
        for threads in a.threads:
            for v in variants:
                reps = [compare_speed(files["fp32"], files[v], frame, rounds=a.rounds, threads=threads)
                        for _ in range(a.repeats)]
                ratios = [r.speedup for r in reps]
                row = {"model": what, "threads": threads or "default", "variant": v,
                       "fp32_ms": float(np.median([np.median(r.fp32_ms) for r in reps])),
                       "int8_ms": float(np.median([np.median(r.int8_ms) for r in reps])),
                       "speedup": float(np.median(ratios)), "repeats": ratios,
                       "rounds": [r.ratios for r in reps]}
                rows.append(row)
                label = "ONNX Runtime int8 graph" if v == "int8" else "TensorRT int8 graph (on ONNX Runtime)"
                line = (f"| {what} | {row['threads']} | {label} | {row['fp32_ms']:.1f} | {row['int8_ms']:.1f} | "
                        f"{row['speedup']:.2f}x | {min(ratios):.2f}-{max(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}) |")
                lines.append(line)
                print(line, flush=True)
    if cpu.int8_note():
        lines += ["", f"Note: {cpu.int8_note()}."]
    text = "\n".join(lines)
    print("\n" + text)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text + "\n")
        out.with_suffix(".json").write_text(json.dumps({"cpu": cpu.line(), "vnni": cpu.vnni, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
