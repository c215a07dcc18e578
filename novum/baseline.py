"""The plain classifier baseline NOVUM is compared against: the same ResNet encoder as the NOVUM
backbone (encoder only: conv1 .. layer4, no decoder), global average pooling, a linear head,
trained with cross-entropy on the same data and budget (``novum-train --baseline``).

Saved as one ``.safetensors`` file with ``format=novum-baseline`` and the ModelConfig in metadata.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from novum.config import ModelConfig, config_from_json
from novum.errors import CheckpointError
from novum.io import atomic_path
from novum.model import preprocess_bgr
from novum.model.input_norm import normalise_input
from novum.model.resnet import ResNet

FORMAT = "novum-baseline"


class BaselineClassifier(nn.Module):
    """ResNet encoder (config.backbone) + global average pooling + Linear(C)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        bb = config.backbone
        self.encoder = ResNet(bb.block, bb.layers, bb.width)
        self.fc = nn.Linear(bb.stage_channels()[3], config.num_classes)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    def forward(self, x: Tensor) -> Tensor:
        """Normalised images [B, 3, H, W] -> logits [B, C]."""
        r = self.encoder
        x = normalise_input(x, self.config.backbone.input_norm)   # as the NOVUM backbone does
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))

    def preprocess(self, images_bgr: Tensor) -> Tensor:
        return preprocess_bgr(images_bgr, self.config.mean, self.config.std)

    @torch.no_grad()
    def predict_bgr(self, images_bgr: Tensor, boxes: Tensor | None = None) -> dict[str, Tensor]:
        """uint8 BGR frames [B, H, W, 3] -> {"scores": logits}; ``boxes`` is ignored (whole frame)."""
        return {"scores": self.forward(self.preprocess(images_bgr))}


def save_baseline(model: BaselineClassifier, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(model.config.to_dict())}
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def is_baseline_file(path: str | Path) -> bool:
    from novum.checkpoint import read_native_metadata

    p = Path(path)
    return p.suffix == ".safetensors" and p.is_file() and read_native_metadata(p).get("format") == FORMAT


def load_baseline(path: str | Path, device: str | torch.device = "cpu") -> BaselineClassifier:
    from safetensors.torch import load_file

    from novum.checkpoint import _safetensors, read_native_metadata

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: baseline checkpoint not found")
    meta = read_native_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a baseline checkpoint (metadata format is {meta.get('format')!r}, "
                              f"expected {FORMAT!r}); train one with novum-train --baseline")
    if "config" not in meta:
        raise CheckpointError(f"{path}: a baseline checkpoint without its config; train it again with novum-train --baseline")
    model = BaselineClassifier(config_from_json(meta["config"], f"{path}: metadata config", "re-save the checkpoint"))
    state = _safetensors(path, "tensors", lambda: load_file(str(path), device="cpu"))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes that differ from the config's
        raise CheckpointError(f"{path}: baseline weights do not match its config ({' '.join(str(e).split())[:160]})") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: baseline weights do not match its config "
                              f"({len(missing)} missing, {len(unexpected)} unexpected)")
    return model.to(device).eval()
