"""INT8 vs fp32: top-1 agreement and accuracy per split, for each int8 target, on frames never calibrated on.

    python benchmarks/int8_accuracy.py                          # the bundled demo model, both targets
    python benchmarks/int8_accuracy.py --model m.safetensors --per-class 20 --out benchmarks/results/int8_accuracy

Rerun it after retraining: nothing in it depends on the model's layers. The int8 graphs are made
exactly as ``novum-export --int8`` makes them (``novum.calibration.quantize_targets``, calibration
``--calib``, default ``demo`` = synthetic train-split frames, gate off here); fp32 and int8 then run
on ONNX Runtime CPU over

- the held-out synthetic *test* split (the kind of frames the export gate uses), clean and at
  occlusion levels L1, L2, L3: accuracy of each, the drop, and top-1 agreement;
- every frame of the demo clip (``--clip``; no labels): top-1 agreement.

For each split the table also gives the flipped frames and how close they were to a tie in fp32
(the top-1 / top-2 margin as a fraction of the top score): flips of near-ties are rounding, flips
of clear wins would be a broken graph. ``PASS`` needs agreement >= ``--threshold`` (default 99%) on
the clean held-out split and on the clip, and an accuracy drop (fp32 minus int8; negative when
int8 is more accurate) of at most ``--max-drop`` points (default 1) at L1-L3; the ``margin`` column is how far above the threshold the agreement is.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from exported import export_fp32
from report import write_report

SPLITS = (None, "L1", "L2", "L3")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="native checkpoint (default: the bundled demo model)")
    p.add_argument("--calib", default="demo", help="calibration data (default: demo = synthetic train frames)")
    p.add_argument("--samples", type=int, default=64, help="calibration frames (default 64)")
    p.add_argument("--methods", nargs="+", default=["minmax", "percentile"], help="calibration methods to compare")
    p.add_argument("--targets", nargs="+", default=["onnxruntime", "tensorrt"])
    p.add_argument("--fallback", type=int, default=0, help="--int8-fallback N (keep up to N sensitive convs fp32)")
    p.add_argument("--per-class", type=int, default=20, help="test frames per class and split (default 20)")
    p.add_argument("--clip", default="demo", help="video whose every frame is compared (default: the demo clip; '' = none)")
    p.add_argument("--threshold", type=float, default=0.99)
    p.add_argument("--max-drop", type=float, default=1.0, help="allowed accuracy drop at L1-L3, points (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1; 0 = its default)")
    p.add_argument("--workdir", help="where the ONNX files go (default: a temporary folder)")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    a = p.parse_args(argv)

    import logging

    logging.getLogger().setLevel(logging.ERROR)
    from novum.bundled import demo_clip_path
    from novum.calibration.quantize import quantize_targets
    from novum.calibration.readers import synthetic_frames, video_frames
    from novum.runtime.backends.ort import run_onnx

    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    ex = export_fp32(a.model, a.workdir, "novum-int8-acc-")
    ckpt, work, cfg, fp32 = ex.ckpt, ex.work, ex.config, ex.fp32
    n_test = a.per_class * cfg.num_classes
    t = time.perf_counter()
    sets = {s or "clean": synthetic_frames(cfg, n_test, a.seed, split="test", occlusion=s) for s in SPLITS}
    if a.clip:
        clip = demo_clip_path() if a.clip == "demo" else Path(a.clip)
        from novum.runtime.sources import VideoFileSource

        with VideoFileSource(clip) as src:
            total = src.expected_frames or sum(1 for _ in src)
        sets["clip"] = video_frames(clip, cfg.input_size, total, a.seed)[0]   # every frame, in any order
    log(f"model {ckpt.name}; {n_test} test frames per split" + (f", {len(sets['clip'])} clip frames" if a.clip else "")
        + f" in {time.perf_counter() - t:.0f}s")
    ref = {k: run_onnx(fp32, fs.frames, max_batch=8, threads=a.threads)["scores"] for k, fs in sets.items()}

    rows = []
    for method in a.methods:
        made = quantize_targets(fp32, work / f"{ckpt.stem}_{method}_int8.onnx", targets=a.targets, calib=a.calib,
                                method=method, samples=a.samples, seed=a.seed, gate=False, fallback=a.fallback, log=log)
        for target, res in made.items():
            for k, fs in sets.items():
                s = run_onnx(res.path, fs.frames, max_batch=8, threads=a.threads)["scores"]
                r = ref[k]
                top2 = np.sort(r, 1)[:, -2:]
                rel_margin = (top2[:, 1] - top2[:, 0]) / np.maximum(top2[:, 1], 1e-12)
                flips = np.flatnonzero(s.argmax(1) != r.argmax(1))
                row = {"method": method, "target": target, "split": k, "frames": len(fs),
                       "agreement": float(1 - len(flips) / len(fs)), "flips": int(len(flips)),
                       "flip_margins": [round(float(rel_margin[i]), 4) for i in flips],
                       "median_margin": float(np.median(rel_margin)),
                       "scores_max_abs": float(np.abs(s - r).max()), "fp32_layers": res.fp32_layers}
                if fs.labels is not None:
                    row["acc_fp32"] = float((r.argmax(1) == fs.labels).mean())
                    row["acc_int8"] = float((s.argmax(1) == fs.labels).mean())
                    row["drop_pts"] = 100 * (row["acc_fp32"] - row["acc_int8"])
                rows.append(row)

    lines = [f"INT8 vs fp32, model `{ckpt.name}` ({cfg.backbone.arch}, {cfg.input_size[0]}x{cfg.input_size[1]}), "
             f"calibration `{a.calib}` x{a.samples}, {n_test} held-out synthetic test frames per split"
             + (f" + all {len(sets['clip'])} frames of {Path(str(a.clip)).name if a.clip != 'demo' else 'the demo clip'}" if a.clip else "")
             + ", ONNX Runtime CPU" + (f", fallback <= {a.fallback} fp32 convs" if a.fallback else ""), "",
             "| method | target | split | frames | acc fp32 | acc int8 | drop (pts) | top-1 agreement | margin | flips (fp32 margin of each) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    verdicts = []
    for r in rows:
        lines.append(f"| {r['method']} | {r['target']} | {r['split']} | {r['frames']} | {pct(r.get('acc_fp32'))} | "
                     f"{pct(r.get('acc_int8'))} | {r['drop_pts']:+.1f} | " if "drop_pts" in r else
                     f"| {r['method']} | {r['target']} | {r['split']} | {r['frames']} | - | - | - | ")
        lines[-1] += (f"{100 * r['agreement']:.2f}% | {100 * (r['agreement'] - a.threshold):+.2f} | "
                      f"{r['flips']} ({', '.join(f'{100 * m:.1f}%' for m in r['flip_margins']) or '-'}) |")
    for method in a.methods:
        for target in a.targets:
            mr = {r["split"]: r for r in rows if r["method"] == method and r["target"] == target}
            gate_ok = all(mr[k]["agreement"] >= a.threshold for k in ("clean", "clip") if k in mr)
            drops = [mr[k]["drop_pts"] for k in ("L1", "L2", "L3")]
            drop_ok = all(d <= a.max_drop for d in drops)   # a drop: int8 less accurate (negative: more)
            held = [r for k, r in mr.items()]
            agree = sum(r["agreement"] * r["frames"] for r in held) / sum(r["frames"] for r in held)
            verdicts.append(f"- {method} / {target}: {'PASS' if gate_ok and drop_ok else 'FAIL'}: agreement clean "
                            f"{pct(mr['clean']['agreement'])}" + (f", clip {pct(mr['clip']['agreement'])}" if "clip" in mr else "")
                            + f" (threshold {pct(a.threshold)}); drop L1-L3 {', '.join(f'{d:+.1f}' for d in drops)} pts "
                            f"(max {a.max_drop}); all {sum(r['frames'] for r in held)} frames {100 * agree:.2f}%")
    text = "\n".join(lines + [""] + verdicts)
    print(text)
    if a.out:
        write_report(a.out, text + "\n", {"model": str(ckpt), "args": vars(a), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
