"""Can the matching head (the bank GEMMs) run in fp16 or int8 too? Agreement, score error and speed.

    python benchmarks/int8_head.py                  # the bundled demo model
    python benchmarks/int8_head.py --model m.safetensors --per-class 20 --out benchmarks/results/int8_head

The head is every node after the L2 normalisation: per class block a MatMul of the bank rows
with the unit features, ``/2 + 0.5``, ReduceMax / ArgMax, then the winner across blocks and the
score sums. Starting from the ONNX Runtime int8 graph (fp32 head), two variants change only the
block GEMMs and their elementwise chain:

- ``fp16 head``: those nodes in fp16 (``novum.export.fp16.to_fp16``, as ``--fp16-head fp16`` does
  in the fp16 export); the winner across blocks and the score sums stay fp32;
- ``int8 head``: the features and each bank block quantized (uint8 features, int8 per-row bank),
  the MatMul output left fp32 (ONNX Runtime's quantize_static on the head MatMuls).

For each variant: top-1 agreement with fp32 and with the fp32-head int8 graph, the largest class
score error, the share of pixels whose winning bank row changes, on held-out synthetic frames
(clean, L3) and the demo clip; then int8 / fp32 speed of each, timed side by side. A head
variant is worth offering only if it keeps the gate (agreement with fp32 >= 99% with margin)
where the fp32-head int8 graph does.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from exported import export_fp32
from report import write_report


def head_nodes(model) -> tuple[set[str], list]:
    """(names of the block-chain nodes, the block MatMul nodes) of a novum graph."""
    from novum.export.fp16 import _block_chain  # the same chain the fp16 export converts

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    norm = next(n for n in g.node if n.op_type == "ReduceL2")
    down, stack = set(), [norm.input[0]]
    while stack:
        for n in consumers.get(stack.pop(), []):
            if n.name not in down:
                down.add(n.name)
                stack.extend(n.output)
    mms = [n for n in g.node if n.op_type == "MatMul" and n.name in down]
    chain: set[str] = set()
    for m in mms:
        chain |= _block_chain(m, consumers)
    return chain, mms


def fp16_head(src: Path, dst: Path) -> Path:
    import onnx

    from novum.export.fp16 import constants_to_initializers, to_fp16

    m = onnx.load(str(src))
    for i, n in enumerate(m.graph.node):
        n.name = n.name or f"novum_node_{i}"
    constants_to_initializers(m.graph)
    chain, _ = head_nodes(m)
    to_fp16(m, chain)
    onnx.save(m, str(dst))
    return dst


def int8_head(src: Path, dst: Path, frames: np.ndarray) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from novum.calibration.readers import OrtCalibrationReader

    pre = dst.with_name(dst.stem + "_pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    m = onnx.load(str(pre))
    for i, n in enumerate(m.graph.node):
        n.name = n.name or f"novum_node_{i}"
    onnx.save(m, str(pre))
    _, mms = head_nodes(m)
    quantize_static(str(pre), str(dst), OrtCalibrationReader(frames, batch=8), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul"], nodes_to_quantize=[n.name for n in mms], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"WeightSymmetric": True, "OpTypesToExcludeOutputQuantization": ["MatMul"],
                                   "QDQOpTypePerChannelSupportToAxis": {"MatMul": 0}})
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="native checkpoint (default: the bundled demo model)")
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads, for the runs and the speed comparison (default 1)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--workdir")
    p.add_argument("--out")
    a = p.parse_args(argv)

    import logging

    logging.getLogger().setLevel(logging.ERROR)
    from novum.bundled import demo_clip_path
    from novum.calibration.quantize import quantize_targets
    from novum.calibration.readers import synthetic_frames, video_frames
    from novum.runtime.backends.ort import run_onnx
    from novum.runtime.speed import compare_speed, cpu_info

    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    ex = export_fp32(a.model, a.workdir, "novum-int8-head-")
    ckpt, work, cfg, fp32 = ex.ckpt, ex.work, ex.config, ex.fp32
    made = quantize_targets(fp32, work / f"{ckpt.stem}_int8.onnx", targets=["onnxruntime"], gate=False, log=log)
    base = made["onnxruntime"].path
    calib = synthetic_frames(cfg, 64, 0, split="train").frames
    variants = {"int8 backbone, fp32 head": base,
                "int8 backbone, fp16 head": fp16_head(base, work / "head_fp16.onnx"),
                "int8 backbone, int8 head": int8_head(base, work / "head_int8.onnx", calib)}
    n = a.per_class * cfg.num_classes
    sets = {"clean": synthetic_frames(cfg, n, 0, split="test").frames,
            "L3": synthetic_frames(cfg, n, 0, split="test", occlusion="L3").frames}
    clip = demo_clip_path()
    from novum.runtime.sources import VideoFileSource

    with VideoFileSource(clip) as src:
        total = src.expected_frames or sum(1 for _ in src)
    sets["clip"] = video_frames(clip, cfg.input_size, total, 0)[0].frames
    ref = {k: run_onnx(fp32, x, max_batch=8, threads=a.threads) for k, x in sets.items()}
    base_out = {k: run_onnx(base, x, max_batch=8, threads=a.threads) for k, x in sets.items()}
    rows = []
    lines = [f"Matching head precision, model `{ckpt.name}` ({cfg.input_size[0]}x{cfg.input_size[1]}), ONNX Runtime CPU; "
             f"CPU: {cpu_info().line()}", "",
             "| variant | split | top-1 vs fp32 | top-1 vs int8 (fp32 head) | max score err vs fp32 | max score err vs fp32 head | same winning row vs fp32 head |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, path in variants.items():
        for k, x in sets.items():
            o = run_onnx(path, x, max_batch=8, threads=a.threads)
            row = {"variant": name, "split": k, "frames": len(x),
                   "agree_fp32": float((o["scores"].argmax(1) == ref[k]["scores"].argmax(1)).mean()),
                   "agree_base": float((o["scores"].argmax(1) == base_out[k]["scores"].argmax(1)).mean()),
                   "err_fp32": float(np.abs(o["scores"] - ref[k]["scores"]).max()),
                   "err_base": float(np.abs(o["scores"] - base_out[k]["scores"]).max()),
                   "same_row": float((o["vertex"] == base_out[k]["vertex"]).mean())}
            rows.append(row)
            lines.append(f"| {name} | {k} ({len(x)}) | {100 * row['agree_fp32']:.2f}% | {100 * row['agree_base']:.2f}% | "
                         f"{row['err_fp32']:.2e} | {row['err_base']:.2e} | {100 * row['same_row']:.1f}% |")
    lines += ["", "| variant | int8 / fp32 speed (median of rounds, min-max) |", "|---|---:|"]
    frame = sets["clean"][:1]
    for name, path in variants.items():
        c = compare_speed(fp32, path, frame, rounds=a.rounds, threads=a.threads)
        rows.append({"variant": name, "speedup": c.speedup, "rounds": c.ratios})
        lines.append(f"| {name} | {c.speedup:.2f}x ({min(c.ratios):.2f}-{max(c.ratios):.2f}) |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        write_report(a.out, text + "\n", {"model": str(ckpt), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
