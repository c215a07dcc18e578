"""ONNX Runtime CPU: INT8 (Q/DQ) vs fp32 latency, measured side by side in one run.

    python benchmarks/int8_speed.py                       # the bundled demo model, batch 1
    python benchmarks/int8_speed.py --model m.safetensors --threads 1 2 --batch 1 8 --rounds 7

Both sessions are created once; timed blocks alternate fp32 / INT8 for ``--rounds`` rounds so that
load from other processes hits both alike; the median per-frame latency over the rounds is reported.
The CPU's int8 dot-product extensions are printed (ONNX Runtime's INT8 kernels are fast with
AVX-512 VNNI / AVX-VNNI / AMX; with AVX2 alone they use the slower u8s8 path).
``--cpu-ceiling`` also times an asymmetric uint8-activation quantization of the same backbone:
ONNX Runtime's best CPU recipe, which TensorRT cannot use (non-zero zero points); a reference only.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    want = [f for f in flags if "vnni" in f or f.startswith("amx") or f in ("avx2", "avx512f", "avx512bw")]
    return f"{model}; {' '.join(sorted(set(want))) or 'no AVX2/AVX-512/VNNI'}"


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def cpu_ceiling(fp32: Path, out: Path, frames: np.ndarray) -> Path:
    """Asymmetric QUInt8 activations, Conv/Relu/Add/MaxPool/Concat/Resize in the backbone (not for TensorRT)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from novum.calibration.readers import OrtCalibrationReader
    from novum.calibration.recipe import find_parts

    pre = out.with_name(out.stem + "_pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    ops = ("Conv", "Relu", "Add", "MaxPool", "Concat", "Resize")
    nodes = find_parts(onnx.load(str(pre)), op_types=ops).backbone
    quantize_static(str(pre), str(out), OrtCalibrationReader(frames, batch=8), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(ops), per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_quantize=nodes)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="native checkpoint (default: the bundled demo model)")
    p.add_argument("--int8", help="an existing INT8 ONNX of the same model (default: made here, calib demo)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 0], help="intra-op threads to test (0 = ORT default)")
    p.add_argument("--batch", type=int, nargs="+", default=[1])
    p.add_argument("--rounds", type=int, default=7, help="alternating fp32/int8 rounds (default 7)")
    p.add_argument("--iters", type=int, default=20, help="inferences per timed block (default 20)")
    p.add_argument("--cpu-ceiling", action="store_true", help="also time ORT's asymmetric uint8 recipe (not for TensorRT)")
    p.add_argument("--workdir", help="where the ONNX files go (default: a temporary folder)")
    a = p.parse_args(argv)

    import logging

    logging.getLogger().setLevel(logging.ERROR)
    from novum.bundled import demo_model_path
    from novum.calibration.quantize import quantize_int8
    from novum.calibration.readers import synthetic_frames
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    ckpt = Path(a.model) if a.model else demo_model_path()
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="novum-int8-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    model = load_model(ckpt)
    cfg = model.config
    fp32 = export_onnx(model, work / f"{ckpt.stem}.onnx")
    int8 = Path(a.int8) if a.int8 else quantize_int8(fp32, work / f"{ckpt.stem}_int8.onnx", allow_degraded=True,
                                                      log=lambda s: print(s, file=sys.stderr))
    frames = synthetic_frames(cfg, max(max(a.batch), 8), seed=1, split="val").frames
    variants = {"fp32": fp32, "int8": int8}
    if a.cpu_ceiling:
        variants["int8 u8-asym (CPU only)"] = cpu_ceiling(fp32, work / f"{ckpt.stem}_int8_u8.onnx", frames)
    print(f"model {ckpt.name} ({cfg.backbone.arch}, {cfg.input_size[0]}x{cfg.input_size[1]}); CPU: {cpu_flags()}")
    print("| threads | batch | variant | median ms / frame | vs fp32 |\n|---:|---:|---|---:|---:|")
    for threads in a.threads:
        sess = {k: session(v, threads) for k, v in variants.items()}
        for b in a.batch:
            x = np.ascontiguousarray(frames[:b])
            for s in sess.values():
                for _ in range(3):
                    s.run(None, {"images": x})
            times: dict[str, list[float]] = {k: [] for k in sess}
            for _ in range(a.rounds):
                for k, s in sess.items():
                    t = time.perf_counter()
                    for _ in range(a.iters):
                        s.run(None, {"images": x})
                    times[k].append((time.perf_counter() - t) / (a.iters * b) * 1000)
            base = float(np.median(times["fp32"]))
            for k, ts in times.items():
                m = float(np.median(ts))
                print(f"| {threads or 'default'} | {b} | {k} | {m:.2f} | {base / m:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
