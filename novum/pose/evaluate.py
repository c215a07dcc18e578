"""Pose accuracy on the synthetic test split (known poses), the upstream protocol (section 5.7).

Per image: the model's feature map (torch), the GT class and, by default, the GT box (upstream
evaluates pose given both), the refiner, then the rotation error against the known pose; per
occlusion level: accuracy at pi/6 and pi/18, median error in degrees, and the CPU time per
refinement. ``features='oracle'`` replaces the model's map with the class volume rendered at the
GT pose (plus noise): the refiner's own ceiling, independent of the backbone.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from novum.pose.metric import PoseAccuracy, pose_error, summarize
from novum.pose.refine import PoseRefiner


@dataclass
class LevelResult:
    level: str
    accuracy: PoseAccuracy
    ms_median: float                 # per refinement (init + iterations), warm
    ms_mean: float
    class_accuracy: float            # classification accuracy on the same images (argmax, no box)
    per_class: dict[str, PoseAccuracy] = field(default_factory=dict)
    errors_deg: list[float] = field(default_factory=list, repr=False)


@dataclass
class PoseEvalReport:
    levels: list[LevelResult]
    settings: dict

    def markdown(self) -> str:
        s = self.settings
        head = (f"Pose on the synthetic test split ({s['per_class']} images per class and level, "
                f"{'GT box' if s['box'] else 'full map'}, GT class, objective {s['objective']}"
                f"{' + clutter (' + str(s['clutter']) + ')' if s['clutter'] else ''}, {s['iterations']} Adam steps"
                f"{' x %d starts' % s['restarts'] if s['restarts'] > 1 else ''}, features: {s['features']}, "
                f"{s['threads']} CPU thread)\n\n")
        rows = ["| occlusion | n | acc pi/6 (%) | acc pi/18 (%) | median err (deg) | ms / refinement (median) | class acc (%) |",
                "|---|---|---|---|---|---|---|"]
        for r in self.levels:
            a = r.accuracy
            rows.append(f"| {r.level} | {a.n} | {100 * a.acc_pi6:.1f} | {100 * a.acc_pi18:.1f} | {a.median_deg:.1f} | "
                        f"{r.ms_median:.0f} | {100 * r.class_accuracy:.1f} |")
        out = head + "\n".join(rows) + "\n"
        clean = self.levels[0]
        if clean.per_class:
            names = list(clean.per_class)
            out += f"\nPer class ({clean.level}): " + ", ".join(
                f"{n} {100 * clean.per_class[n].acc_pi6:.0f}%/{clean.per_class[n].median_deg:.0f} deg" for n in names) + "\n"
        return out

    def to_json(self) -> str:
        d = {"settings": self.settings, "levels": []}
        for r in self.levels:
            x = asdict(r)
            d["levels"].append(x)
        return json.dumps(d, indent=1)


def _oracle_features(refiner: PoseRefiner, label: int, pose, rng: np.random.Generator, noise: float) -> np.ndarray:
    f = refiner.render(pose, label).numpy()
    f = f + rng.normal(0, noise / math.sqrt(f.shape[0]), f.shape).astype(np.float32)   # |noise| ~ noise * |f|
    n = np.linalg.norm(f, axis=0, keepdims=True)
    return np.where(n > 1e-6, f / np.maximum(n, 1e-6), 0).astype(np.float32)


def evaluate(model, per_class: int = 10, levels=(None, "L1", "L2", "L3"), iterations: int | None = None,
             objective: str = "nemo", clutter: bool | str | None = None, box: bool = True, features: str = "model",
             seed: int = 0, batch: int = 16, threads: int = 1, oracle_noise: float = 0.3, restarts: int = 1,
             progress: Callable[[str], None] | None = None) -> PoseEvalReport:
    """Evaluate pose accuracy of ``model`` (a NovumModel) on the synthetic test split."""
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset
    from novum.pose.refine import DEFAULT_ITERATIONS

    torch.set_num_threads(threads)
    cfg = model.config
    refiner = PoseRefiner(model, objective=objective, clutter=clutter, iterations=iterations or DEFAULT_ITERATIONS,
                          threads=threads, restarts=restarts)
    # warm-up: first-use costs (optimizer import, init grids) are not part of a refinement's time
    for c in range(cfg.num_classes):
        refiner.grid_cache(c)
    refiner.refine(refiner.render((0.5, 0.2, 0.0, cfg.distance), 0), 0, iterations=2)
    rng = np.random.default_rng(seed)
    results = []
    for level in levels:
        ds = SyntheticDataset(SyntheticConfig(per_class=per_class, split="test", seed=seed, occlusion=level), cfg)
        errs, secs, labels, correct = [], [], [], []
        for start in range(0, len(ds), batch):
            samples = [ds[i] for i in range(start, min(start + batch, len(ds)))]
            with torch.no_grad():
                out = model.predict_bgr(torch.from_numpy(np.stack([s.image for s in samples])))
            for k, s in enumerate(samples):
                correct.append(int(torch.argmax(out["scores"][k])) == s.label)
                if features == "oracle":
                    fmap = _oracle_features(refiner, s.label, s.pose, rng, oracle_noise)
                else:
                    fmap = out["features"][k]
                res = refiner.refine(fmap, s.label, box=s.box if box else None)
                errs.append(pose_error(res.pose, s.pose))
                secs.append(res.seconds)
                labels.append(s.label)
            if progress:
                progress(f"{level or 'clean'}: {len(errs)}/{len(ds)}, median so far "
                         f"{math.degrees(float(np.median(errs))):.1f} deg")
        errs_a, labels_a = np.array(errs), np.array(labels)
        per = {cfg.classes[c]: summarize(errs_a[labels_a == c]) for c in range(cfg.num_classes) if (labels_a == c).any()}
        results.append(LevelResult(level or "clean", summarize(errs), 1000 * float(np.median(secs)),
                                   1000 * float(np.mean(secs)), float(np.mean(correct)), per,
                                   [round(math.degrees(e), 3) for e in errs]))
    settings = {"per_class": per_class, "iterations": refiner.iterations, "objective": objective, "clutter": clutter,
                "box": box, "features": features, "seed": seed, "threads": threads, "restarts": restarts,
                "classes": list(cfg.classes), "input_size": list(cfg.input_size),
                "feature_size": list(cfg.feature_size), "grid_cache_mb": round(refiner.cache_bytes() / 1e6, 2),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    return PoseEvalReport(results, settings)
