"""The training loop: Adam with warmup + cosine decay, DistributedSampler batches, progress bar with
loss and throughput, resumable checkpoints (native weights + a weights_only side file)."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from novum.errors import InputError
from novum.io import atomic_path, atomic_write_text
from novum.training.config import LAST_FILE, LOG_FILE, MODEL_FILE, STATE_FILE, TrainConfig, resume_files  # noqa: F401
from novum.training.data import PackedSamples
from novum.training.dist import DistContext, init_distributed
from novum.training.tasks import BaselineTask, NovumTask



@dataclass
class TrainResult:
    model_path: Path
    steps: int
    epochs: int
    loss: float
    val_accuracy: float | None
    seconds: float
    images_per_s: float


def lr_factor(step: int, total: int, warmup: int, floor: float) -> float:
    """Linear warmup to 1, then cosine decay to ``floor`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def epoch_batches(n: int, cfg: TrainConfig, dist: DistContext, epoch: int) -> list[np.ndarray]:
    """This rank's batches for an epoch (DistributedSampler order, seeded by cfg.seed + epoch)."""
    sampler = DistributedSampler(range(n), num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    sampler.set_epoch(epoch)
    idx = np.fromiter(iter(sampler), dtype=np.int64)
    nb = len(idx) // cfg.batch_size
    if nb == 0:
        raise InputError(f"{n} training samples over {dist.world} process(es) is less than one batch of "
                         f"{cfg.batch_size}; lower batch_size or generate more data")
    return [idx[i * cfg.batch_size:(i + 1) * cfg.batch_size] for i in range(nb)]


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 97 + rank)


def train(cfg: TrainConfig, out: str | Path, data: tuple[PackedSamples, PackedSamples | None],
          baseline: bool = False, resume: bool = False, device: str | None = None, command: str = "",
          progress: bool = True, dist: DistContext | None = None, max_steps: int | None = None) -> TrainResult:
    """Train a NOVUM model (or the baseline) on packed data; write ``out/model.safetensors``.

    ``resume`` continues from ``out/last.safetensors`` + ``out/train_state.pt`` at the saved step.
    ``max_steps`` stops early (tests, smoke runs); the schedule still spans the configured epochs.
    """
    out = Path(out)
    own_dist = dist is None
    dist = dist or init_distributed(device)
    try:
        return _train(cfg, out, data, baseline, resume, command, progress, dist, max_steps)
    finally:
        if own_dist:
            dist.close()


def _train(cfg, out: Path, data, baseline, resume, command, progress, dist: DistContext, max_steps):
    if cfg.threads and dist.device.type == "cpu":
        torch.set_num_threads(int(cfg.threads))
    train_data, val_data = data
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    task = (BaselineTask if baseline else NovumTask)(cfg, dist, cfg.seed)
    _record_framing(task, train_data)
    params = task.parameters()
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(epoch_batches(len(train_data), cfg, dist, 0))
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.warmup_steps, cfg.min_lr_ratio))
    step, epoch, batch_in_epoch = 0, 0, 0
    if cfg.init and not resume:
        if not Path(cfg.init).is_file():
            raise InputError(f"{cfg.init}: init checkpoint not found; fix 'init' in the config")
        task.load_weights(cfg.init)
    if resume:
        step, epoch, batch_in_epoch = _resume(out, task, opt, sched, cfg, dist)
    meta_base = {"train_command": command, "train_config": json.dumps(cfg.to_dict()), "task": task.kind}
    if dist.is_main:
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    log = open(out / LOG_FILE, "a") if dist.is_main else None
    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, desc=f"train {task.kind}", unit="step", dynamic_ncols=True,
                   mininterval=2.0)
    t_start = time.perf_counter()
    images_seen, loss_ema, val_acc = 0, None, None
    task.train()
    try:
        while epoch < cfg.epochs:
            batches = epoch_batches(len(train_data), cfg, dist, epoch)
            for bi in range(batch_in_epoch, len(batches)):
                if max_steps is not None and step >= max_steps:
                    break
                t0 = time.perf_counter()
                gen = _step_generator(cfg.seed, step, dist.rank)
                batch = train_data.batch(batches[bi], dist.device, augment=cfg.augment, generator=gen)
                batch["background"] = batch["background"].cpu()
                loss, stats = task.step(batch, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                task.after_step()
                step += 1
                dt = time.perf_counter() - t0
                n_img = len(batches[bi]) * dist.world
                images_seen += n_img
                lv = float(loss.detach())
                loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_ema:.3f}", img_s=f"{n_img / dt:.1f}", epoch=epoch, refresh=False)
                    bar.update(1)
                if log is not None and (step % cfg.log_every == 0 or step == 1):
                    rec = {"step": step, "epoch": epoch, "loss": lv, "loss_ema": loss_ema, "lr": sched.get_last_lr()[0],
                           "img_s": n_img / dt, "elapsed_s": time.perf_counter() - t_start, **stats}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                batch_in_epoch = bi + 1
                if cfg.save_every and step % cfg.save_every == 0:
                    _save_resume(out, task, opt, sched, step, epoch, batch_in_epoch, cfg, dist, meta_base)
            else:
                epoch += 1
                batch_in_epoch = 0
                if val_data is not None and len(val_data):
                    val_acc = _validate(task, val_data, dist)
                    if log is not None:
                        log.write(json.dumps({"step": step, "epoch": epoch, "val_top1": val_acc}) + "\n")
                        log.flush()
                    if bar is not None:
                        bar.write(f"epoch {epoch}/{cfg.epochs}: step {step}, loss {loss_ema:.4f}, val top-1 {val_acc:.4f}")
                _save_resume(out, task, opt, sched, step, epoch, batch_in_epoch, cfg, dist, meta_base)
                continue
            break  # max_steps reached inside the epoch
        if max_steps is not None and step >= max_steps:
            _save_resume(out, task, opt, sched, step, epoch, batch_in_epoch, cfg, dist, meta_base)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    seconds = time.perf_counter() - t_start
    model_path = out / MODEL_FILE
    if dist.is_main:
        meta = dict(meta_base, steps=str(step), epochs=str(epoch))
        if val_acc is not None:
            meta["val_top1"] = f"{val_acc:.4f}"
        task.save(model_path, meta)
    dist.barrier()
    return TrainResult(model_path, step, epoch, float(loss_ema or 0.0), val_acc, seconds,
                       images_seen / seconds if seconds > 0 else 0.0)


def _record_framing(task, train_data: PackedSamples) -> None:
    """The saved config records how the training images framed their objects (novum-run --roi uses it)."""
    from novum.data.framing import framing_from_boxes

    config = getattr(task.model, "config", None)
    if config is not None and len(train_data):
        config.framing = framing_from_boxes(train_data.boxes, config.input_size,
                                            f"training data ({len(train_data)} images)")


def _validate(task, val_data: PackedSamples, dist: DistContext) -> float:
    acc = 0.0
    if dist.is_main:
        pred = task.predict(val_data)
        acc = float((pred == val_data.labels).mean())
        task.train()
    t = dist.broadcast_(torch.tensor([acc], dtype=torch.float64, device=dist.device))
    return float(t[0])


def _save_resume(out: Path, task, opt, sched, step: int, epoch: int, batch_in_epoch: int, cfg, dist, meta) -> None:
    """Weights to last.safetensors (native format) and the rest to train_state.pt (rank 0)."""
    if dist.is_main:
        task.save(out / LAST_FILE, dict(meta, steps=str(step), epochs=str(epoch)))
        state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "task": task.state(), "world": dist.world,
                 "kind": task.kind, "config": json.dumps(cfg.to_dict())}
        with atomic_path(out / STATE_FILE) as tmp:
            torch.save(state, tmp)
    dist.barrier()


def _resume(out: Path, task, opt, sched, cfg: TrainConfig, dist: DistContext) -> tuple[int, int, int]:
    sp, wp = resume_files(out)
    if not sp.is_file() or not wp.is_file():
        raise InputError(f"{out}: nothing to resume ({STATE_FILE} / {LAST_FILE} missing); drop --resume to start fresh")
    state = torch.load(sp, map_location="cpu", weights_only=True)
    if state.get("kind") != task.kind:
        raise InputError(f"{out}: the saved run trains a {state.get('kind')} model, not {task.kind}; "
                         f"use another --out or match --baseline")
    if state.get("world", 1) != dist.world:
        raise InputError(f"{out}: saved with {state.get('world')} process(es), resumed with {dist.world}; "
                         f"resume with the same --nproc_per_node")
    task.load_weights(wp)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    task.load_state(state.get("task", {}))
    return int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
