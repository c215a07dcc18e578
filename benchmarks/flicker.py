"""Label flicker on the demo clip, with and without temporal smoothing (novum-run --smooth / --smooth-window).

The model runs once over the clip (the same framing and backend as novum-run); every smoothing
setting is then applied to the same per-frame vote shares with novum.runtime.smoothing (what the
pipeline does frame by frame). Per setting: label changes per 100 frames (flicker), top-1 accuracy
against the clip's ground truth, and the lag: frames after each true class change until the label
follows. The clip's true classes change 6 times in 210 frames: 2.9 changes per 100 frames is the floor.

    python benchmarks/flicker.py [--model demo.safetensors] [--out benchmarks/results/flicker_demo]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from report import write_report


def clip_truth(n_frames: int) -> list[int]:
    """The demo clip's class per frame (novum.data.clip: one equal segment per class, in order)."""
    from novum.config import PASCAL3D_CLASSES
    from novum.data.clip import DEFAULT_CLIP_CLASSES

    per = n_frames // len(DEFAULT_CLIP_CLASSES)
    if per * len(DEFAULT_CLIP_CLASSES) != n_frames:
        raise SystemExit(f"the clip has {n_frames} frames, not {len(DEFAULT_CLIP_CLASSES)} equal segments")
    return [PASCAL3D_CLASSES.index(c) for c in DEFAULT_CLIP_CLASSES for _ in range(per)]


def lag(labels: list[int], truth: list[int]) -> float:
    """Mean frames from each true class change until the label equals the new class."""
    out = []
    for i in range(1, len(truth)):
        if truth[i] != truth[i - 1]:
            j = i
            while j < len(truth) and truth[j] == truth[i] and labels[j] != truth[i]:
                j += 1
            out.append(j - i)
    return float(np.mean(out)) if out else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model (default: the bundled demo model, exported to ONNX once)")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    a = p.parse_args(argv)

    from novum.runtime.backends import load
    from novum.contracts.framing import Framer
    from novum.api import resolve_model as resolve
    from novum.runtime.results import vote_shares
    from novum.runtime.smoothing import Smoother, Smoothing, flicker
    from novum.runtime.sources import open_source

    path, _ = resolve(a.model)
    with load(path, intra_op_threads=1) as b, open_source("demo") as src:
        framer = Framer(b.input_size)
        imgs = np.stack([framer(f.image)[0] for f in src])
        shares = np.concatenate([vote_shares(b.infer(imgs[i:i + 8])["scores"]) for i in range(0, len(imgs), 8)])
    truth = clip_truth(len(shares))
    settings: list[tuple[str, Smoothing | None]] = [("off (raw)", None)]
    settings += [(f"--smooth {d}", Smoothing(decay=d)) for d in (0.5, 0.7, 0.8, 0.9)]
    settings += [(f"--smooth-window {n}", Smoothing(window=n)) for n in (3, 5, 9)]
    rows = []
    for name, sm in settings:
        if sm is None:
            labels = [int(np.argmax(s)) for s in shares]
        else:
            smoother = Smoother(sm)
            labels = [int(np.argmax(smoother.update(s))) for s in shares]
        rows.append({"setting": name, "flicker": flicker(labels), "changes": int(sum(x != y for x, y in zip(labels, labels[1:]))),
                     "accuracy": float(np.mean(np.array(labels) == truth)), "lag": lag(labels, truth)})
    md = [f"# Label flicker on the demo clip ({len(shares)} frames, model {path.name})", "",
          f"True class changes: {sum(x != y for x, y in zip(truth, truth[1:]))} "
          f"(floor {flicker(truth):.1f} changes per 100 frames).", "",
          "| smoothing | label changes / 100 frames | changes | top-1 vs truth | lag after a class change (frames) |",
          "|---|---:|---:|---:|---:|"]
    md += [f"| {r['setting']} | {r['flicker']:.1f} | {r['changes']} | {100 * r['accuracy']:.1f}% | {r['lag']:.1f} |"
           for r in rows]
    text = "\n".join(md) + "\n"
    print(text, end="")
    if a.out:
        write_report(a.out, text, {"model": path.name, "frames": len(shares), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
