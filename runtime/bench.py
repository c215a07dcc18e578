"""Measuring for ``novum-bench``: one table over every backend/precision available here.

Rows: torch (the checkpoint), ONNX Runtime fp32 / fp16 / int8, TensorRT fp32 / fp16 / int8 (when
TensorRT and a GPU are present). Columns: status, file size, top-1 agreement with torch, latency p50/p99
(batch 1, model only), model-only FPS, and pipeline FPS = the whole ``novum-run`` pipeline
(decode, framing, inference, overlay, mp4 encode, JSONL) headless on a video, measured in the same
process, alternating with the model-only runs: the FPS columns are the best of ``--rounds``, the
pipeline/model column the median of the per-round ratios (pairs measured back to back, which
cancels most of a shared machine's drifting load). The closing notes give the int8 / fp32 speed on
this CPU (timed side by side, :mod:`novum.runtime.speed`), pipeline / model-only FPS and ONNX
Runtime vs torch.

This module measures model files it is given (:func:`measure`); making them (export, fp16,
int8, engines) is orchestration, in :func:`novum.api.bench`.
"""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from novum.contracts.framing import Framer
from novum.errors import NovumError
from novum.io import atomic_write_text
from novum.runtime.backends import load
from novum.runtime.pipeline import Pipeline, RunOptions
from novum.runtime.sources import VideoFileSource, open_source
from novum.runtime.speed import cpu_info


@dataclass
class Row:
    backend: str
    precision: str
    status: str = "ok"
    size_mb: float | None = None
    top1_agreement: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    model_fps: float | None = None
    pipeline_fps: float | None = None
    pipeline_busy: float | None = None     # fraction of the pipeline's wall time the model was running
    round_ratios: list[float] | None = None  # pipeline / model-only FPS of each round (measured back to back)
    device: str = ""
    file: str = ""

    @property
    def ratio(self) -> float | None:
        """Median over rounds of pipeline / model-only FPS measured back to back (pairs taken close in
        time cancel most of a shared machine's drifting load); else the ratio of the two columns."""
        if self.round_ratios:
            return float(np.median(self.round_ratios))
        return self.pipeline_fps / self.model_fps if self.pipeline_fps and self.model_fps else None


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def table(rows: list[Row]) -> str:
    head = ("| backend | precision | status | size (MB) | top-1 vs torch | p50 (ms) | p99 (ms) | model FPS | "
            "pipeline FPS | pipeline/model |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r.backend} | {r.precision} | {r.status} | {_f(r.size_mb, '.1f')} | "
                     f"{_f(None if r.top1_agreement is None else 100 * r.top1_agreement, '.1f')}{'%' if r.top1_agreement is not None else ''} | "
                     f"{_f(r.p50_ms, '.1f')} | {_f(r.p99_ms, '.1f')} | {_f(r.model_fps, '.1f')} | "
                     f"{_f(r.pipeline_fps, '.1f')} | {_f(r.ratio, '.2f')} |")
    return "\n".join(lines)


def notes(rows: list[Row], info: dict[str, Any] | None = None) -> list[str]:
    out = list(((info or {}).get("int8_speed") or {}).get("lines", []))
    for r in rows:
        if r.ratio is not None:
            rounds = ", ".join(f"{v:.2f}" for v in r.round_ratios or [])
            out.append(f"pipeline / model-only FPS, {r.backend} {r.precision}: {r.ratio:.2f} (target >= 0.9; median of "
                       f"back-to-back rounds {rounds}); within the pipeline run the model was busy "
                       f"{100 * (r.pipeline_busy or 0):.0f}% of the time")
    t = next((r for r in rows if r.backend == "torch" and r.model_fps), None)
    o = next((r for r in rows if r.backend == "onnxruntime" and r.precision == "fp32" and r.model_fps), None)
    if t and o:
        out.append(f"ONNX Runtime fp32 vs torch, model-only FPS: {o.model_fps:.1f} vs {t.model_fps:.1f} = "
                   f"{o.model_fps / t.model_fps:.2f}x; pipeline FPS: {_f(o.pipeline_fps, '.1f')} vs "
                   f"{_f(t.pipeline_fps, '.1f')}")
    return out


def video_frames(path: Path, input_size: tuple[int, int], n: int) -> np.ndarray:
    """The first ``n`` frames of a video, framed for the model (the agreement and latency inputs)."""
    framer = Framer(input_size)
    with open_source(path) as src:
        if not isinstance(src, VideoFileSource):
            raise NovumError(f"{path}: novum-bench needs a video file as --source")
        return np.stack([framer(f.image)[0] for _, f in zip(range(n), src)])


def _time_model(backend, frames: np.ndarray, runs: int, warmup: int) -> tuple[float, float, float]:
    """Single-frame latency p50/p99 (ms) and FPS, on a worker thread as in the pipeline (torch's
    OpenMP pool behaves differently on the main thread; both sides are measured alike)."""
    res: list = []
    t = threading.Thread(target=lambda: res.append(_model_loop(backend, frames, runs, warmup)), name="novum-bench")
    t.start()
    t.join()
    if not res:
        raise NovumError("the timing thread failed (see above)")
    return res[0]


def _model_loop(backend, frames: np.ndarray, runs: int, warmup: int) -> tuple[float, float, float]:
    for i in range(warmup):
        backend.infer(frames[i % len(frames)][None])
    lat = []
    t0 = time.perf_counter()
    for i in range(runs):
        t = time.perf_counter()
        backend.infer(frames[i % len(frames)][None])
        lat.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - t0
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), runs / total


def _time_pipeline(backend, video: Path, n: int, work: Path) -> tuple[float, float]:
    """(FPS of the whole pipeline, fraction of its wall time spent inside the model)."""
    with open_source(video) as src:
        s = Pipeline(backend, src, RunOptions(save=work / "pipeline.mp4", jsonl=work / "pipeline.jsonl",
                                              max_frames=n)).run()
    # the run's clock starts at the first frame's model call, measured separately, so the ratio can come out a
    # hair above 1 on a loaded machine (seen: 1.002); the model cannot be busy more than all of the time
    return s.fps, (min(1.0, sum(s.model_ms) / 1000 / s.seconds) if s.seconds else 0.0)


def measure(entries: list[tuple[str, str, Path | str]], imgs: np.ndarray, video: Path, *, frames: int = 32,
            runs: int = 50, warmup: int = 5, rounds: int = 3, threads: int = 0, workdir: Path,
            allow_engine_host_code: bool = False, log: Callable[[str], None] = print) -> list[Row]:
    """One :class:`Row` per (backend, precision, file) of ``entries``: a model file, or the reason there
    is none (the row's status); a precision of "?" is read from the file. Top-1 agreement is against
    the ``torch`` row, measured first. ``allow_engine_host_code``: for version-compatible engines."""
    rows: list[Row] = []
    ref = None
    for kind, prec, f in entries:
        row = Row(kind, prec)
        rows.append(row)
        if not isinstance(f, Path):
            row.status = f
            continue
        row.file = str(f)
        row.size_mb = sum(p.stat().st_size for p in [f, *f.parent.glob(f.name + ".data")]) / 1e6 if f.is_file() else None
        try:
            opts = {"device": "cpu"} if kind == "torch" else {}
            with load(f, intra_op_threads=threads, threads=threads, allow_engine_host_code=allow_engine_host_code,
                      **opts) as b:
                row.device, row.precision = b.device, b.precision
                step = min(8, b.max_batch or 8)   # an engine's profile may end below 8
                top1 = np.concatenate([b.infer(imgs[i:i + step])["scores"].argmax(1) for i in range(0, len(imgs), step)])
                if kind == "torch":
                    ref = top1
                row.top1_agreement = float((top1 == ref).mean()) if ref is not None else None
                # model-only and pipeline alternate, best of `rounds` each: on a shared machine the
                # other load then hits both alike, and the best round is the least disturbed one
                row.round_ratios = []
                for _ in range(max(1, rounds)):
                    p50, p99, m_fps = _time_model(b, imgs, runs, warmup)
                    if row.model_fps is None or m_fps > row.model_fps:
                        row.p50_ms, row.p99_ms, row.model_fps = p50, p99, m_fps
                    fps, busy = _time_pipeline(b, video, frames, workdir)
                    if row.pipeline_fps is None or fps > row.pipeline_fps:
                        row.pipeline_fps, row.pipeline_busy = fps, busy
                    row.round_ratios.append(fps / m_fps)
            log(f"{kind} {prec}: p50 {row.p50_ms:.1f} ms, model {row.model_fps:.1f} FPS, pipeline {row.pipeline_fps:.1f} FPS")
        except Exception as e:  # noqa: BLE001 - one failing backend must not hide the others
            row.status = f"failed: {short_error(e, 240)}"
            log(f"{kind} {row.precision}: {row.status}")
    return rows


def machine() -> dict[str, Any]:
    """What the numbers were measured on (torch is optional: the runtime runs without it)."""
    import onnxruntime as ort

    try:
        import torch
    except ModuleNotFoundError:
        torch = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "cpu": cpu_info().line(),
            "torch": torch.__version__ if torch else "not installed", "onnxruntime": ort.__version__,
            "cuda": bool(torch and torch.cuda.is_available())}


def short_error(e: BaseException, n: int = 120) -> str:
    s = " ".join(str(e).split()) or type(e).__name__
    return s if len(s) <= n else s[: n - 3] + "..."


def write(rows: list[Row], info: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md, js = out.with_suffix(".md"), out.with_suffix(".json")
    text = (f"# novum-bench\n\nmodel `{Path(info['model']).name}` (sha256 {info['model_sha256'][:12]}), frames: {info['frames']}, batch 1, "
            f"best of {info['rounds']} rounds, {info['machine']['cpus']} CPUs, torch {info['machine']['torch']}, onnxruntime {info['machine']['onnxruntime']}\n\n"
            + table(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes(rows, info)) + "\n")
    atomic_write_text(md, text)
    atomic_write_text(js, json.dumps({"info": info, "rows": [asdict(r) | {"pipeline_over_model": r.ratio} for r in rows],
                                      "notes": notes(rows, info)}, indent=2) + "\n")
    return md, js
