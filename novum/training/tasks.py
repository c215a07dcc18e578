"""What is trained: a NOVUM model (contrastive loss + bank updates) or the classifier baseline
(cross-entropy). Both expose the same small interface to the loop."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from novum.baseline import BaselineClassifier, load_baseline, save_baseline
from novum.checkpoint import load_native, save_native
from novum.model import NovumModel
from novum.training.bank import class_sums, fill_padding_with_clutter, momentum_update, push_clutter
from novum.training.config import TrainConfig
from novum.training.data import PackedSamples
from novum.training.degrade import degrade
from novum.training.dist import DistContext
from novum.training.loss import novum_loss, view_consistency, vote_term
from novum.training.masking import (OccluderPatches, apply_mosaic, block_masks, cell_mask, hidden_keypoints,
                                   pixel_cells)


def synthetic_occlusion(cfg: TrainConfig, patches: "OccluderPatches | None", batch: dict[str, Tensor], mc,
                        generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """The batch's images with the configured training occlusion (then degradation, ``degrade``), and
    the occluded cells [B, h*w] (None when off). Both tasks call it, so NOVUM and the baseline see the
    same images; with two views this is the second view."""
    images, occluded = batch["images"], None
    if cfg.masking > 0:
        blocks = block_masks(batch["boxes"], mc.input_size, cfg.masking, tuple(cfg.masking_frac), generator)
        images = apply_mosaic(images, blocks, generator)
        occluded = cell_mask(blocks, mc.feature_size, mc.stride)
    if patches is not None:
        images, pix = patches.paste(images, batch["boxes"], cfg.occluders, generator)
        cells = pixel_cells(pix, mc.feature_size, mc.stride)
        occluded = cells if occluded is None else occluded | cells
    if cfg.degrade > 0:
        images = degrade(images, cfg.degrade, generator)
    return images, occluded


def _wrap(module: nn.Module, dist: DistContext) -> nn.Module:
    if not dist.enabled:
        return module
    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


@torch.no_grad()
def predict(model: nn.Module, packed: PackedSamples, batch_size: int = 64, use_boxes: bool = False,
            device: str | torch.device = "cpu") -> np.ndarray:
    """Top-1 class index per sample (eval mode), optionally restricted to the GT boxes (NOVUM only)."""
    was = model.training
    model.eval()
    preds = []
    for i in range(0, len(packed), batch_size):
        b = packed.batch(np.arange(i, min(i + batch_size, len(packed))), device)
        out = model.predict_bgr(b["images"], b["boxes"] if use_boxes else None)
        preds.append(out["scores"].argmax(1).cpu().numpy())
    model.train(was)
    return np.concatenate(preds)


class NovumTask:
    """NOVUM: bias-free features (the inference path), contrastive loss, momentum bank, clutter ring."""

    kind = "novum"

    def __init__(self, cfg: TrainConfig, dist: DistContext, seed: int) -> None:
        self.cfg = cfg
        self.dist = dist
        mc = cfg.model_config()
        self.model = NovumModel(mc, generator=torch.Generator().manual_seed(seed)).to(dist.device)
        bias = self.model.backbone.out_layer.bias
        with torch.no_grad():
            bias.zero_()  # trained and used bias-free, like inference (upstream trained with it)
        bias.requires_grad_(False)
        if cfg.channels_last:
            self.model.backbone.to(memory_format=torch.channels_last)
        dist.broadcast_(self.model.volumes.bank)
        dist.broadcast_(self.model.volumes.clutter)
        self.net = _wrap(self.model.backbone, dist)
        self.patches = OccluderPatches(seed=cfg.seed) if cfg.occluders > 0 else None
        self.clutter_ptr = 0
        self._last = None

    def _input(self, images: Tensor) -> Tensor:
        x = self.model.preprocess(images)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.backbone.parameters() if p.requires_grad]

    def train(self) -> None:
        self.model.train()

    def _loss(self, f: Tensor, batch: dict[str, Tensor], visible: Tensor, occluded: Tensor | None,
              generator: torch.Generator):
        mc = self.model.config
        return novum_loss(f, batch["kp"], visible, batch["labels"], batch["background"],
                          self.model.volumes.memory(), mc.n_list, mc.max_n, mc.stride, self.cfg.thr,
                          self.cfg.temperature, self.cfg.clutter_weight, self.cfg.noise_weight,
                          self.cfg.n_noise, generator, with_accuracy=True, max_vertices=self.cfg.max_vertices,
                          clutter_loss=self.cfg.clutter_loss, occluded=occluded, class_loss=self.cfg.class_loss)

    def step(self, batch: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        mc = self.model.config
        visible = batch["visible"]
        images, occluded = synthetic_occlusion(self.cfg, self.patches, batch, mc, generator)
        if occluded is not None:
            visible = visible & ~hidden_keypoints(batch["kp"].cpu(), occluded, mc.feature_size, mc.stride).to(visible.device)
        if self.cfg.consistency > 0:   # two views: clean and occluded, one forward pass
            B = images.shape[0]
            f = self.net(self._input(torch.cat([batch["images"], images])))
            out = self._loss(f[:B], batch, batch["visible"], None, generator)
            occ = self._loss(f[B:], batch, visible, occluded, generator)
            keep = ~batch["background"].bool()
            if occluded is not None:
                keep = keep & ~occluded.to(keep.device)
            cons = view_consistency(f[:B], f[B:], keep)
            loss = 0.5 * (out.loss + occ.loss) + self.cfg.consistency * cons
        else:
            f = self.net(self._input(images))
            out = self._loss(f, batch, visible, occluded, generator)
            loss = out.loss
        if self.cfg.vote_loss > 0:
            labels = batch["labels"].repeat(f.shape[0] // batch["labels"].shape[0])   # one per view
            vote = vote_term(f, self.model.volumes.memory(), mc.n_list, mc.max_n, labels, self.cfg.temperature)
            loss = loss + self.cfg.vote_loss * vote
        self._last = (out, batch["labels"])   # the bank learns from the (clean, if two) view's keypoint features
        stats = {"nce": float(out.contrast), "bg": float(out.background), "vacc": out.accuracy}
        if self.cfg.clutter_loss > 0:
            stats["clut"] = float(out.clutter)
        if self.cfg.consistency > 0:
            stats["cons"] = float(cons.detach())
        if self.cfg.vote_loss > 0:
            stats["vote"] = float(vote.detach())
        return loss, stats

    @torch.no_grad()
    def after_step(self) -> None:
        """Bank update from all ranks' features: all-reduced class sums/counts, gathered noise."""
        out, labels = self._last
        self._last = None
        vol = self.model.volumes
        sums, counts = class_sums(out.kp_features, labels, vol.num_classes)
        self.dist.all_reduce_(sums)
        self.dist.all_reduce_(counts)
        noise = self.dist.all_gather_cat(out.noise_features.reshape(-1, out.noise_features.shape[-1]))
        momentum_update(vol.bank, sums, counts, self.cfg.momentum)
        self.clutter_ptr = push_clutter(vol.clutter, noise, self.clutter_ptr)

    def finalize_bank(self) -> None:
        """Inference-only bank content (padding rows); training never reads padding rows."""
        if self.cfg.padding_clutter:
            vol = self.model.volumes
            fill_padding_with_clutter(vol.bank, vol.clutter, vol.valid_rows().to(vol.bank.device))

    def predict(self, packed: PackedSamples, use_boxes: bool = False) -> np.ndarray:
        self.finalize_bank()
        return predict(self.model, packed, use_boxes=use_boxes, device=self.dist.device)

    def save(self, path, metadata: dict[str, str]) -> None:
        self.finalize_bank()
        save_native(self.model, path, dict(metadata, padding_rows="clutter" if self.cfg.padding_clutter else "random"))

    def load_weights(self, path) -> None:
        m = load_native(path)
        self.model.backbone.load_state_dict(m.backbone.state_dict())
        self.model.volumes.bank.copy_(m.volumes.bank)
        self.model.volumes.clutter.copy_(m.volumes.clutter)

    def state(self) -> dict[str, Any]:
        return {"clutter_ptr": self.clutter_ptr}

    def load_state(self, s: dict[str, Any]) -> None:
        self.clutter_ptr = int(s.get("clutter_ptr", 0))


class BaselineTask:
    """The plain classifier: ResNet encoder + global average pooling + linear head, cross-entropy."""

    kind = "baseline"

    def __init__(self, cfg: TrainConfig, dist: DistContext, seed: int) -> None:
        self.cfg = cfg
        self.dist = dist
        torch.manual_seed(seed)
        self.model = BaselineClassifier(cfg.model_config()).to(dist.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net = _wrap(self.model, dist)
        self.patches = OccluderPatches(seed=cfg.seed) if cfg.occluders > 0 else None
        self.criterion = nn.CrossEntropyLoss()

    def _input(self, images: Tensor) -> Tensor:
        x = self.model.preprocess(images)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def train(self) -> None:
        self.model.train()

    def step(self, batch: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        images, _ = synthetic_occlusion(self.cfg, self.patches, batch, self.model.config, generator)
        labels = batch["labels"]
        if self.cfg.consistency > 0:   # the same two views NOVUM trains on: clean and occluded
            images, labels = torch.cat([batch["images"], images]), torch.cat([labels, labels])
        logits = self.net(self._input(images))
        loss = self.criterion(logits, labels)
        acc = float((logits.argmax(1) == labels).float().mean())
        return loss, {"acc": acc}

    def after_step(self) -> None:
        pass

    def predict(self, packed: PackedSamples, use_boxes: bool = False) -> np.ndarray:
        return predict(self.model, packed, device=self.dist.device)

    def save(self, path, metadata: dict[str, str]) -> None:
        save_baseline(self.model, path, metadata)

    def load_weights(self, path) -> None:
        self.model.load_state_dict(load_baseline(path).state_dict())

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, s: dict[str, Any]) -> None:
        pass
