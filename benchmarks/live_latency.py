"""Live sources: frame age at output with "newest frame only" (novum-run default) vs "every frame".

A synthetic camera produces frames faster than the model runs. With every frame queued, the age of
the frame being shown grows for as long as the stream runs; with the newest-frame slot it stays
about one model latency. Prints a markdown table (ages in ms, first / last quarter of the run).

    python benchmarks/live_latency.py [--model model.onnx] [--fps 60] [--seconds 6]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from novum.api import cached_onnx
from novum.bundled import demo_model_path
from novum.export.frames import render_frames
from novum.runtime.backends import load
from novum.runtime.pipeline import Pipeline, RunOptions
from novum.runtime.sources import LiveSource


class Camera:
    """Frames of a fixed size at ``fps``; records when each frame was captured."""

    def __init__(self, fps: float, seconds: float, h: int, w: int) -> None:
        self.imgs = render_frames(8, h, w, seed=0)
        self.dt, self.n, self.i = 1.0 / fps, int(fps * seconds), 0
        self.t_next = time.perf_counter()
        self.born: list[float] = []

    def read(self):
        if self.i >= self.n:
            return False, None
        self.t_next += self.dt       # the frame exists from this moment on, whether read in time or not
        time.sleep(max(0.0, self.t_next - time.perf_counter()))
        self.born.append(self.t_next)
        img = self.imgs[self.i % len(self.imgs)].copy()
        self.i += 1
        return True, img

    def get(self, prop):
        return 1.0 / self.dt

    def release(self):
        pass


def measure(model: Path, keep_all: bool, fps: float, seconds: float) -> dict:
    with load(model) as b:
        h, w = b.input_size
        cam = Camera(fps, seconds, 2 * h, 2 * w)
        src = LiveSource(cam, "synthetic camera", keep_all=keep_all)
        ages: list[float] = []
        pipe = Pipeline(b, src, RunOptions())
        orig = pipe._record

        def record(item, pred, now):
            ages.append((now - cam.born[item.frame.index]) * 1000)
            return orig(item, pred, now)
        pipe._record = record                       # age measured where JSONL would be written
        with tempfile.TemporaryDirectory() as d:
            pipe.opts.jsonl = Path(d) / "o.jsonl"
            s = pipe.run()
        src.close()
    q = max(1, len(ages) // 4)
    return {"mode": "every frame" if keep_all else "newest only", "produced": cam.n, "shown": s.frames,
            "dropped": s.dropped, "age_first": float(np.median(ages[:q])), "age_last": float(np.median(ages[-q:])),
            "age_max": float(np.max(ages))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help=".onnx model (default: the bundled demo model's cached ONNX export)")
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--seconds", type=float, default=6.0)
    a = p.parse_args()
    model = Path(a.model) if a.model else cached_onnx(demo_model_path())
    rows = [measure(model, keep, a.fps, a.seconds) for keep in (False, True)]
    print(f"camera {a.fps:g} FPS for {a.seconds:g} s, model {model.name}\n")
    print("| mode | frames produced | shown | dropped | age first quarter (ms) | age last quarter (ms) | max age (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['produced']} | {r['shown']} | {r['dropped']} | {r['age_first']:.0f} | "
              f"{r['age_last']:.0f} | {r['age_max']:.0f} |")


if __name__ == "__main__":
    main()
