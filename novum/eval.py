"""``novum-eval``: top-1 accuracy per split (clean, occlusion L1/L2/L3, corruptions) as a table.

Models: any file the runtime accepts (``.safetensors`` / upstream ``.pth`` through torch, ``.onnx``
through ONNX Runtime, ``.engine`` through TensorRT; via novum.runtime.backends) plus the plain
classifier baseline (``novum-train --baseline``), side by side. Data: the synthetic generator's held-out
``test`` split, the same scenes for every split (occluders / corruptions applied to them), rendered
once and cached.

Protocol: whole frames (what the runtime sees): every feature cell votes. ``--boxes`` restricts NOVUM
to the ground-truth box (upstream's ``mask_out_padded`` protocol; torch models only); the baseline
always sees the whole frame.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from novum.cli_util import run_cli
from novum.config import ModelConfig
from novum.errors import InputError
from novum.extras import require
from novum.io import atomic_path, atomic_write_text
from novum.runtime.backends import load

OCCLUSIONS = ("L1", "L2", "L3")
CORRUPTIONS = ("noise", "blur", "contrast", "jpeg")
SPLITS = ("clean",) + OCCLUSIONS + CORRUPTIONS
CORRUPTED = "corrupted"   # the mean over CORRUPTIONS, reported as its own row


@dataclass
class EvalSplit:
    name: str
    images: np.ndarray   # uint8 [N, H, W, 3] BGR
    labels: np.ndarray   # int64 [N]
    boxes: np.ndarray    # int64 [N, 4]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, images=self.images, labels=self.labels, boxes=self.boxes)

    @classmethod
    def load(cls, name: str, path: Path) -> "EvalSplit":
        with np.load(path, allow_pickle=False) as z:
            return cls(name, z["images"], z["labels"].astype(np.int64), z["boxes"].astype(np.int64))


@dataclass
class Predictor:
    """A model seen as ``scores(images uint8 [B,H,W,3], boxes [B,4] | None) -> [B, C]``."""

    name: str
    path: Path
    kind: str                      # "novum-torch", "novum-<backend>", "baseline"
    config: ModelConfig
    scores: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    close: Callable[[], None] = lambda: None
    uses_boxes: bool = False


@dataclass
class EvalReport:
    splits: dict[str, int] = field(default_factory=dict)                 # split -> images
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> split -> top-1
    models: dict[str, dict[str, str]] = field(default_factory=dict)      # model -> {path, kind}
    protocol: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"splits": self.splits, "accuracy": self.accuracy, "models": self.models,
                           "protocol": self.protocol}, indent=2) + "\n"


def split_options(name: str, severity: int) -> dict:
    if name == "clean":
        return {}
    if name in OCCLUSIONS:
        return {"occlusion": name}
    if name in CORRUPTIONS:
        return {"corruption": name, "severity": int(severity)}
    raise InputError(f"unknown split '{name}'; choose from {', '.join(SPLITS)}")


def _render_split(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cfg_dict, kw, lo, hi = args
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    ds = SyntheticDataset(SyntheticConfig(**kw), ModelConfig.from_dict(cfg_dict))
    samples = [ds[i] for i in range(lo, hi)]
    return (np.stack([s.image for s in samples]), np.array([s.label for s in samples], np.int64),
            np.stack([np.asarray(s.box, np.int64) for s in samples]))


def synthetic_splits(model_cfg: ModelConfig, names=SPLITS, per_class: int = 50, seed: int = 0, severity: int = 3,
                     cache_dir: str | Path | None = None, workers: int = 1, progress: bool = False) -> dict[str, EvalSplit]:
    """The held-out synthetic ``test`` scenes of every split (same scenes, per-split occluders/corruptions)."""
    from novum.training.datasets import bar_step, render_bar, synthetic_key

    out = {}
    n = per_class * model_cfg.num_classes
    for name in names:
        kw = {"per_class": int(per_class), "split": "test", "seed": int(seed), **split_options(name, severity)}
        path = Path(cache_dir) / f"eval_{name}_{synthetic_key(model_cfg, kw)}.npz" if cache_dir else None
        if path is not None and path.is_file():
            out[name] = EvalSplit.load(name, path)
            continue
        bounds = np.linspace(0, n, min(n, max(1, workers) * 4) + 1).astype(int)
        jobs = [(model_cfg.to_dict(), kw, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        bar = render_bar(n, f"render {name} split", progress)
        try:
            if workers > 1:
                from concurrent.futures import ProcessPoolExecutor
                with ProcessPoolExecutor(workers) as ex:
                    parts = [bar_step(bar, p, j[3] - j[2]) for j, p in zip(jobs, ex.map(_render_split, jobs))]
            else:
                parts = [bar_step(bar, _render_split(j), j[3] - j[2]) for j in jobs]
        finally:
            if bar is not None:
                bar.close()
        split = EvalSplit(name, *(np.concatenate([p[i] for p in parts]) for i in range(3)))
        if path is not None:
            split.save(path)
        out[name] = split
    return out


def open_predictor(path: str | Path, name: str | None = None, device: str = "cpu", use_boxes: bool = False,
                   threads: int = 0) -> Predictor:
    """Open a model file: the baseline (torch), or a NOVUM model through novum.runtime.backends (any
    format), or through torch for ``use_boxes`` (native / upstream checkpoints)."""
    from novum.baseline import is_baseline_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model not found")
    if threads:
        import torch
        torch.set_num_threads(int(threads))
    if is_baseline_file(path):
        from novum.baseline import load_baseline
        model = load_baseline(path, device)
        fn = _torch_scores(model, device, use_boxes=False)
        return Predictor(name or "baseline", path, "baseline", model.config, fn)
    if use_boxes:
        if path.suffix not in (".safetensors", ".pth", ".pt", ".ckpt"):
            raise InputError(f"{path}: --boxes needs a torch checkpoint (.safetensors/.pth); exported models see whole frames")
        from novum.checkpoint import load_model
        model = load_model(path, device)
        return Predictor(name or "NOVUM", path, "novum-torch", model.config,
                         _torch_scores(model, device, use_boxes), uses_boxes=use_boxes)
    backend = load(path, device="cpu" if device == "cpu" else "auto")
    cfg = ModelConfig.from_dict(dict(backend.metadata))
    limit = backend.max_batch

    def scores(images: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
        step = limit or len(images)
        return np.concatenate([np.asarray(backend.infer(images[i:i + step])["scores"])
                               for i in range(0, len(images), step)])

    return Predictor(name or "NOVUM", path, f"novum-{backend.kind}", cfg, scores, backend.close)


def _torch_scores(model, device: str, use_boxes: bool) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    import torch

    def scores(images: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
            b = torch.from_numpy(boxes).to(device) if (use_boxes and boxes is not None) else None
            return model.predict_bgr(x, b)["scores"].float().cpu().numpy()

    return scores


def evaluate(predictors: list[Predictor], splits: dict[str, EvalSplit], batch_size: int = 32,
             progress: bool = False) -> EvalReport:
    """Top-1 accuracy of every predictor on every split (and the mean over the corruption splits)."""
    rep = EvalReport(splits={k: len(s.labels) for k, s in splits.items()})
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(predictors) * sum(rep.splits.values()), desc="eval", unit="img", mininterval=2.0)
    for p in predictors:
        rep.models[p.name] = {"path": str(p.path), "kind": p.kind, "boxes": str(p.uses_boxes).lower()}
        acc = {}
        for name, s in splits.items():
            correct = 0
            for i in range(0, len(s.labels), batch_size):
                sc = p.scores(s.images[i:i + batch_size], s.boxes[i:i + batch_size])
                correct += int((np.argmax(sc, 1) == s.labels[i:i + batch_size]).sum())
                if bar is not None:
                    bar.update(len(sc))
            acc[name] = correct / max(1, len(s.labels))
        corr = [acc[c] for c in CORRUPTIONS if c in acc]
        if corr:
            acc[CORRUPTED] = float(np.mean(corr))
        rep.accuracy[p.name] = acc
    if bar is not None:
        bar.close()
    return rep


def markdown_table(rep: EvalReport) -> str:
    """Rows = splits (+ the corrupted mean), columns = models; top-1 accuracy in percent."""
    names = list(rep.accuracy)
    rows = [s for s in SPLITS if s in rep.splits] + [s for s in rep.splits if s not in SPLITS]
    if any(CORRUPTED in a for a in rep.accuracy.values()):
        rows.append(CORRUPTED)
    lines = ["| split | images | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for r in rows:
        n = rep.splits.get(r, sum(rep.splits.get(c, 0) for c in CORRUPTIONS))
        label = f"{r} (mean of {', '.join(c for c in CORRUPTIONS if c in rep.splits)})" if r == CORRUPTED else r
        cells = [f"{100 * rep.accuracy[m][r]:.1f}" if r in rep.accuracy[m] else "-" for m in names]
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def column_names(paths: list[str], kind: str, name_one: bool = False) -> list[str]:
    """Table column per model: ``kind`` alone for one model (unless ``name_one``), else ``kind:<name>``
    with as many trailing path parts as make the names distinct (two run folders'
    ``model.safetensors`` stay two columns)."""
    if not paths or (len(paths) == 1 and not name_one):
        return [kind] * len(paths)
    parts = [Path(p).parts or (str(p),) for p in paths]
    for k in range(1, max(len(x) for x in parts) + 1):
        names = ["/".join(x[-k:]) for x in parts]
        if len(set(names)) == len(names):
            break
    return [f"{kind}:{n}" for n in names]


def run(models: list[str], baselines: list[str], per_class: int = 50, seed: int = 0, severity: int = 3,
        splits=SPLITS, cache_dir: str | None = None, use_boxes: bool = False, device: str = "cpu",
        threads: int = 0, workers: int = 1, json_path: str | None = None, md_path: str | None = None,
        progress: bool = True) -> EvalReport:
    """Open the models, render/load the splits, evaluate, print and write the table."""
    preds: list[Predictor] = []
    try:
        for m, name in zip(models, column_names(models, "NOVUM")):
            preds.append(open_predictor(m, name, device, use_boxes, threads))
        for b, name in zip(baselines, column_names(baselines, "baseline")):
            p = open_predictor(b, name, device, False, threads)
            if p.kind != "baseline":
                raise InputError(f"{b}: --baseline expects a file from novum-train --baseline; pass NOVUM models with --model")
            preds.append(p)
        if not preds:
            raise InputError("nothing to evaluate: pass --model and/or --baseline")
        ref = preds[0].config
        for p in preds[1:]:
            if tuple(p.config.classes) != tuple(ref.classes) or tuple(p.config.input_size) != tuple(ref.input_size):
                raise InputError(f"{p.path}: classes/input size differ from {preds[0].path}; compare models trained "
                                 f"for the same classes and input size")
        data = synthetic_splits(ref, splits, per_class, seed, severity, cache_dir, workers, progress)
        rep = evaluate(preds, data, progress=progress)
        rep.protocol = {"data": "synthetic test split", "per_class": per_class, "seed": seed, "severity": severity,
                        "boxes": use_boxes, "classes": list(ref.classes), "input_size": list(ref.input_size)}
    finally:
        for p in preds:
            p.close()
    table = markdown_table(rep)
    print(table, end="")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, rep.to_json())
    if md_path:
        Path(md_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(md_path, table)
    return rep


def default_cache() -> str:
    """Rendered evaluation splits live in the user's novum cache folder, never in the current folder."""
    from novum.contracts.cache import cache_dir

    return str(cache_dir() / "eval")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="novum-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[],
                   help="NOVUM model (.safetensors/.pth/.onnx/.engine); repeatable; default: the bundled demo model")
    p.add_argument("--baseline", action="append", default=[], help="baseline classifier from novum-train --baseline")
    p.add_argument("--per-class", type=int, default=50, help="test images per class and split (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic test scenes")
    p.add_argument("--severity", type=int, default=3, help="corruption severity 1..5 (default 3)")
    p.add_argument("--splits", default=",".join(SPLITS), help=f"comma-separated subset of {','.join(SPLITS)}")
    p.add_argument("--cache", help="where rendered splits are cached ('' = no cache; default: the novum cache "
                                   "folder's eval/, $NOVUM_CACHE or ~/.cache/novum)")
    p.add_argument("--boxes", action="store_true", help="NOVUM votes only inside the ground-truth box (upstream protocol)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--workers", type=int, default=1, help="processes rendering the test data")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--markdown", help="also write the table here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        require("torch", "novum-eval (the test data and the baseline)")
        models = list(args.model)
        if not models:   # --model defaults to the demo model, also next to --baseline
            from novum.bundled import demo_model_path
            models = [str(demo_model_path())]
        splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
        for s in splits:
            split_options(s, args.severity)
        if args.per_class < 1:
            raise InputError("--per-class must be >= 1")
        cache = default_cache() if args.cache is None else (args.cache or None)
        run(models, list(args.baseline), args.per_class, args.seed, args.severity, splits, cache,
            args.boxes, args.device, args.threads, args.workers, args.json, args.markdown, not args.no_progress)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
