"""Pose counts per source kind (novum-run --pose-every N): requested, computed, dropped, joined.

Three sources, the bundled demo model and its own checkpoint as the pose refiner:

- video file: the demo clip (every requested pose is computed and joined to its own frame);
- image folder: the first ``--images`` frames of the demo clip written as PNGs (the same);
- live: the demo clip played ``--live-loops`` times as a camera at its frame rate (newest request
  wins; the requests still waiting when a newer one comes are dropped and counted).

Per source: frames output, poses requested / computed / dropped, poses logged on their own frame
(JSONL ``pose.frame == frame``), poses logged on a frame labelled with another class (files: 0),
and the summary line novum-run prints.

    python benchmarks/pose_schedule.py [--every 30] [--live-every 5] [--live-loops 3] [--out benchmarks/results/pose_schedule_demo]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from report import write_report


class _PacedClip:
    """The demo clip read ``loops`` times at its frame rate, like a camera (cv2.VideoCapture's read/get/release)."""

    def __init__(self, path: Path, loops: int) -> None:
        import cv2

        self.cap = cv2.VideoCapture(str(path))
        self.dt = 1.0 / (self.cap.get(cv2.CAP_PROP_FPS) or 15.0)
        self.next = time.monotonic()
        self.loops = loops

    def read(self):
        import cv2

        self.next += self.dt
        time.sleep(max(0.0, self.next - time.monotonic()))
        ok, img = self.cap.read()
        if not ok and self.loops > 1:
            self.loops -= 1
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
        return ok, img

    def get(self, prop):
        return self.cap.get(prop)

    def release(self) -> None:
        self.cap.release()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--every", type=int, default=30, help="--pose-every for the files (default: 30)")
    p.add_argument("--images", type=int, default=6, help="images in the folder, each posed (default: 6)")
    p.add_argument("--live-every", type=int, default=5, help="--pose-every for the live source (default: 5)")
    p.add_argument("--live-loops", type=int, default=3, help="plays of the clip for the live source (default: 3)")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    a = p.parse_args(argv)

    import cv2

    from novum.api import resolve_model
    from novum.bundled import DEMO_CLIP, DEMO_MODEL
    from novum.runtime.backends import load
    from novum.runtime.pipeline import Pipeline, RunOptions
    from novum.runtime.sources import LiveSource, open_source

    path, _ = resolve_model(None, features=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        with open_source("demo") as src:
            for f in src:
                if f.index >= a.images:
                    break
                cv2.imwrite(str(folder / f"{f.index:03d}.png"), f.image)
        sources = [("video file", lambda: open_source(str(DEMO_CLIP)), a.every),
                   ("image folder", lambda: open_source(str(folder)), 1),
                   ("live (clip at its frame rate)", lambda: LiveSource(_PacedClip(DEMO_CLIP, a.live_loops), "paced clip"),
                    a.live_every)]
        for kind, make, every in sources:
            log = Path(tmp) / "o.jsonl"
            with load(path, intra_op_threads=1) as b:
                src = make()
                try:
                    s = Pipeline(b, src, RunOptions(jsonl=log, pose_every=every, pose_checkpoint=DEMO_MODEL)).run()
                finally:
                    src.close()
            recs = [json.loads(line) for line in log.read_text().splitlines()]
            posed = [r for r in recs if "pose" in r]
            st = s.pose
            rows.append({"source": kind, "pose_every": every, "frames": s.frames, "requested": st.requested,
                         "computed": st.computed, "dropped": st.dropped, "failed": st.failed, "logged": len(posed),
                         "on_own_frame": sum(r["pose"]["frame"] == r["frame"] for r in posed),
                         "other_class": sum(r["pose"]["class_index"] != r["class_index"] for r in posed),
                         "summary": s.line()})
            print(f"{kind}: {s.line()}", flush=True)
    md = [f"# Pose counts per source kind (novum-run --pose-every, model {path.name})", "",
          "| source | --pose-every | frames | requested | computed | dropped | logged | on own frame | other class |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {r['source']} | {r['pose_every']} | {r['frames']} | {r['requested']} | {r['computed']} | {r['dropped']} "
           f"| {r['logged']} | {r['on_own_frame']} | {r['other_class']} |" for r in rows]
    md += ["", "Files: every pose is logged on its own frame. Live: a pose is logged on the first frame output after "
           "it finished, with its own frame index and class (`pose.frame`, `pose.class_index`), so that frame's label "
           "may differ ('other class'); it is drawn only on frames of its class."]
    text = "\n".join(md) + "\n"
    print(text, end="")
    if a.out:
        write_report(a.out, text, {"model": path.name, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
