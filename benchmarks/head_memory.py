"""Peak memory of the block-wise matching head vs a one-matrix head, in torch and ONNX Runtime.

Upstream size: 640x800 input -> 80x100 feature pixels, bank 12*1130 rows x 128. Every measurement
runs in its own subprocess (fresh allocator): "extra" = peak RSS during the call (VmHWM, reset
just before it via /proc/self/clear_refs) minus the RSS just before it (inputs / session loaded). ORT: default session options
(memory arena and memory-pattern planning on), one intra-op thread, batch ``--batch``.

    python benchmarks/head_memory.py            # torch heads + ORT exports (exports ~1 min each)
    python benchmarks/head_memory.py --torch-only
    python benchmarks/head_memory.py --models /tmp/head_models   # keep the exports for re-runs

"default arena": ORT's defaults (the CPU arena grows in large chunks, so its RSS is a coarse
bound); "arena off": ``enable_cpu_mem_arena=False, enable_mem_pattern=False`` (RSS then follows
the tensors that are live).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak() -> int:
    """Peak RSS since the last :func:`reset_peak` (VmHWM), else since start (ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> None:
    """Reset the peak-RSS mark (Linux >= 4.0), so loading / session creation peaks do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def child_torch(head: str, batch: int) -> dict:
    import torch

    from novum.config import PASCAL3D_N_LIST
    from novum.head import match, match_dense
    from novum.volumes import random_unit_rows

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    bank = random_unit_rows(12 * 1130, 128, g)
    f = torch.nn.functional.normalize(torch.randn(batch, 128, 80, 100, generator=g), dim=1)
    fn = match if head == "block" else match_dense
    with torch.no_grad():
        fn(f[:, :, :8, :8], bank, PASCAL3D_N_LIST, 1130)  # warm up kernels
        reset_peak()
        before = rss()
        t0 = time.perf_counter()
        out = fn(f, bank, PASCAL3D_N_LIST, 1130)
        dt = time.perf_counter() - t0
    return {"before": before, "peak": peak(), "seconds": dt, "top1": out.scores.argmax(1).tolist()}


def child_ort(path: str, batch: int, arena: bool = True) -> dict:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not arena:  # plain malloc per tensor: RSS then follows what is live, not arena chunk growth
        so.enable_cpu_mem_arena = False
        so.enable_mem_pattern = False
    start = rss()
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    x = np.random.default_rng(0).integers(0, 256, (batch, *shape[1:]), dtype=np.uint8)
    reset_peak()
    before = rss()
    t0 = time.perf_counter()
    out = sess.run(None, {"images": x})
    dt = time.perf_counter() - t0
    return {"start": start, "before": before, "peak": peak(), "seconds": dt, "top1": out[0].argmax(1).tolist()}


def run_child(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def export_pair(tmp: Path) -> dict[str, Path]:
    import torch

    from novum.config import upstream_config
    from novum.export.onnx import export_onnx
    from novum.model import NovumModel

    torch.manual_seed(0)
    model = NovumModel(upstream_config()).eval()
    paths = {}
    for head, dense in (("block", False), ("dense", True)):
        t0 = time.perf_counter()
        paths[head] = export_onnx(model, tmp / f"upstream_{head}.onnx", max_batch=4, dense_head=dense)
        print(f"exported {paths[head].name} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--torch-only", action="store_true")
    ap.add_argument("--models", help="folder to keep (and reuse) the two 640x800 exports in")
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        kind, arg = a.child
        res = child_torch(arg, a.batch) if kind == "torch" else child_ort(arg, a.batch, kind == "ort")
        print(json.dumps(res))
        return

    rows = 12 * 1130
    dense_matrix = a.batch * rows * 80 * 100 * 4 / MIB
    block_matrix = a.batch * 1130 * 80 * 100 * 4 / MIB
    lines = [f"Head memory at 640x800 (80x100 pixels), bank {rows}x128, batch {a.batch}, 1 thread.", "",
             "| runtime | head | extra peak (MiB) | whole-process peak (MiB) | time (s) | largest similarity tensor (MiB) |",
             "|---|---|---|---|---|---|"]
    top = {}
    for head in ("block", "dense"):
        r = run_child("torch", head)
        top[("torch", head)] = r["top1"]
        lines.append(f"| torch | {head} | {(r['peak'] - r['before']) / MIB:.0f} | {r['peak'] / MIB:.0f} | "
                     f"{r['seconds']:.2f} | {block_matrix if head == 'block' else dense_matrix:.0f} |")
    if not a.torch_only:
        with tempfile.TemporaryDirectory() as d:
            models = Path(a.models or d)
            paths = {h: models / f"upstream_{h}.onnx" for h in ("block", "dense")}
            if not all(p.is_file() for p in paths.values()):
                models.mkdir(parents=True, exist_ok=True)
                paths = export_pair(models)
            for mode, label in (("ort", "default arena"), ("ort-noarena", "arena off")):
                for head, path in paths.items():
                    r = run_child(mode, str(path))
                    top[(mode, head)] = r["top1"]
                    lines.append(f"| ONNX Runtime, {label} (640x800 export) | {head} | "
                                 f"{(r['peak'] - r['before']) / MIB:.0f} | {r['peak'] / MIB:.0f} | {r['seconds']:.2f} | "
                                 f"{block_matrix if head == 'block' else dense_matrix:.0f} |")
    lines += ["", "extra peak = peak RSS during the call (peak mark reset first) minus RSS just before it "
                  "(inputs, weights and session loaded); whole-process peak = that peak.",
              f"top-1 per run (must agree between heads): {({f'{k[0]}/{k[1]}': v for k, v in top.items()})}"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
