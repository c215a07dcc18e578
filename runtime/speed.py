"""Is int8 faster here? fp32 vs int8 on ONNX Runtime CPU, timed side by side, and the CPU's int8 flags.

ONNX Runtime's x86 int8 kernels pay with VNNI (AVX-512 VNNI or AVX-VNNI: one instruction sums
4 u8 x s8 products into 32 bits) or AMX. With AVX2 alone they need three instructions for the same
work (``vpmaddubsw``, ``vpmaddwd``, ``vpaddd``) plus the quantize / requantize steps, and on the
AVX2-only machines here int8 measured no faster than fp32: it cannot be expected to pay there.

:func:`compare_speed` creates both sessions once and times blocks of inferences alternately,
fp32 then int8, for several rounds: load from other processes hits both alike, and the per-round
ratio (fp32 time / int8 time of the same round) is the speedup; the median and the spread over
rounds are reported.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


@dataclass
class CpuInfo:
    model: str
    flags: dict[str, bool] = field(default_factory=dict)

    @property
    def vnni(self) -> bool:
        return any(self.flags.get(f) for f in ("avx512_vnni", "avx_vnni", "amx_int8"))

    def line(self) -> str:
        return f"{self.model}; " + ", ".join(f"{f} {'yes' if self.flags.get(f) else 'no'}" for f in INT8_FLAGS)

    def int8_note(self) -> str | None:
        """Why int8 cannot be expected to pay on this CPU (None when it has VNNI / AMX)."""
        if self.vnni:
            return None
        if self.flags.get("avx2"):
            return ("this CPU has AVX2 but no VNNI (avx512_vnni / avx_vnni): ONNX Runtime's int8 kernels need three "
                    "instructions per step here instead of one, so int8 cannot be expected to be faster than fp32 on it; "
                    "it pays on CPUs with VNNI")
        return "this CPU has neither AVX2 nor VNNI: int8 cannot be expected to be faster than fp32 on it"


def cpu_info(path: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """Model name and int8-relevant flags of the first CPU in ``/proc/cpuinfo`` (unknown elsewhere)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return CpuInfo("unknown CPU (no /proc/cpuinfo)", {})
    lines = text.splitlines()
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.split(":")[0].strip() == "flags"), []))
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.split(":")[0].strip() == "model name"), "unknown CPU")
    return CpuInfo(model, {f: f in flags for f in INT8_FLAGS})


@dataclass
class SpeedComparison:
    fp32_ms: list[float]              # per round: ms per frame of the fp32 block
    int8_ms: list[float]              # per round: ms per frame of the int8 block (timed right after)
    threads: int
    batch: int
    iters: int

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.fp32_ms, self.int8_ms)]

    @property
    def speedup(self) -> float:
        """int8 speed / fp32 speed: median over rounds of the paired ratio."""
        return float(np.median(self.ratios))

    def line(self) -> str:
        r = self.ratios
        return (f"int8 / fp32 speed {self.speedup:.2f}x (median of {len(r)} alternating rounds, {min(r):.2f}-{max(r):.2f}; "
                f"fp32 {np.median(self.fp32_ms):.1f} ms, int8 {np.median(self.int8_ms):.1f} ms per frame; batch "
                f"{self.batch}, {self.threads or 'default'} threads)")


def compare_speed(fp32: str | Path, int8: str | Path, frames: np.ndarray, *, rounds: int = 5, iters: int = 0,
                  threads: int = 0, batch: int = 1, block_seconds: float = 0.3) -> SpeedComparison:
    """Time ``fp32`` and ``int8`` on ONNX Runtime CPU, alternating blocks (see module doc).

    ``iters`` inferences per block (0: as many as fill ``block_seconds``, measured on fp32).
    """
    a, b = _session(fp32, threads), _session(int8, threads)
    x = np.ascontiguousarray(np.resize(frames, (batch, *frames.shape[1:])).astype(np.uint8))
    name = a.get_inputs()[0].name
    for s in (a, b):
        for _ in range(2):
            s.run(None, {name: x})
    if iters <= 0:
        t = time.perf_counter()
        a.run(None, {name: x})
        iters = int(max(1, min(50, block_seconds / max(time.perf_counter() - t, 1e-6))))
    out: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(max(1, rounds)):
        for key, s in (("fp32", a), ("int8", b)):
            t = time.perf_counter()
            for _ in range(iters):
                s.run(None, {name: x})
            out[key].append((time.perf_counter() - t) / (iters * batch) * 1000)
    return SpeedComparison(out["fp32"], out["int8"], threads, batch, iters)


def speed_report(cmp: SpeedComparison, cpu: CpuInfo | None = None) -> list[str]:
    """The lines ``novum-export --int8`` and ``novum-bench`` print: the ratio, a warning when int8 is
    not faster, and why it cannot be on a CPU without VNNI."""
    cpu = cpu or cpu_info()
    lines = [f"int8 speed on this machine ({cpu.line()}): {cmp.line()}"]
    if cmp.speedup < 1.05:
        lines.append(f"warning: int8 is not faster than fp32 here ({cmp.speedup:.2f}x)"
                     + ("" if cpu.int8_note() else "; check that nothing else loads the CPU"))
    note = cpu.int8_note()
    if note:
        lines.append(f"note: {note}")
    return lines


def _session(path: str | Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
