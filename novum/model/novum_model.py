"""NovumModel: backbone + neural object volumes + matching head, the torch reference."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from novum.config import ModelConfig
from novum.head import HeadOutput, match
from novum.model.backbone import NovumBackbone
from novum.volumes import NeuralVolumes


def preprocess_bgr(images: Tensor, mean, std) -> Tensor:
    """uint8 [B, H, W, 3] BGR frames -> normalised float [B, 3, H, W] RGB (ToTensor + Normalize)."""
    x = images[..., [2, 1, 0]].permute(0, 3, 1, 2).to(torch.float32) / 255.0
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


class NovumModel(nn.Module):
    def __init__(self, config: ModelConfig, meshes=None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = NovumBackbone(config.backbone)
        self.volumes = NeuralVolumes(config, meshes, generator)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    def preprocess(self, images_bgr: Tensor) -> Tensor:
        return preprocess_bgr(images_bgr, self.config.mean, self.config.std)

    def features(self, x: Tensor) -> Tensor:
        """Unit feature maps [B, D, h, w] from normalised images [B, 3, H, W]."""
        return self.backbone(x)

    def classify(self, features: Tensor, boxes: Tensor | None = None) -> HeadOutput:
        c = self.config
        return match(features, self.volumes.bank, c.n_list, c.max_n, boxes, c.stride)

    def forward(self, x: Tensor, boxes: Tensor | None = None) -> dict[str, Tensor]:
        """Normalised images -> {scores, vertex, vertex_score, features}."""
        f = self.features(x)
        out = self.classify(f, boxes)
        return {"scores": out.scores, "vertex": out.vertex, "vertex_score": out.vertex_score, "features": f}

    @torch.no_grad()
    def predict_bgr(self, images_bgr: Tensor, boxes: Tensor | None = None) -> dict[str, Tensor]:
        """Inference on uint8 BGR frames [B, H, W, 3] (the deployed graph's input format)."""
        return self.forward(self.preprocess(images_bgr), boxes)
