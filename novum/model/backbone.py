"""The upstream "resnetext" feature extractor (NetE2E): ResNet to layer4, DoubleConv/Up decoder
back to stride 8, a 1x1 projection to D channels, per-pixel L2 normalisation.

Module names match upstream (``net.extractor.0`` ... ``net.upsample2``, ``out_layer``) so an
upstream ``state`` dict loads after stripping ``module.``; :func:`resnet_to_extractor_keys`
maps a torchvision ResNet state dict (ImageNet weights) onto the encoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from novum.config import BackboneConfig
from novum.model.input_norm import normalise_input
from novum.model.resnet import ResNet


class DoubleConv(nn.Module):
    """(conv3x3 -> BN -> ReLU) x 2; convs have biases (upstream)."""

    def __init__(self, cin: int, cout: int, mid: int | None = None) -> None:
        super().__init__()
        mid = mid or cout
        self.doubleconv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.doubleconv(x)


class Up(nn.Module):
    """Bilinear x2 (align_corners) of the deep input, pad/crop to the skip, cat([skip, up]), DoubleConv."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.doubleconv = DoubleConv(cin, cout, mid)

    def forward(self, deep: Tensor, skip: Tensor) -> Tensor:
        up = F.interpolate(deep, scale_factor=2.0, mode="bilinear", align_corners=True)
        dy = skip.shape[2] - up.shape[2]
        dx = skip.shape[3] - up.shape[3]
        if dy or dx:  # static at export time; a negative pad crops, as upstream
            up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.doubleconv(torch.cat([skip, up], dim=1))


class ResNetExt(nn.Module):
    """Encoder to stride 8 (``extractor``), then, with 3-4 stages, deeper stages and the decoder
    back to stride 8. ``stages=2`` stops at stride 8: each feature sees only its neighbourhood
    (receptive field about 100 px), so hiding one part of an object leaves the others' features as
    they were."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.stages = cfg.stages
        r = ResNet(cfg.block, cfg.layers, cfg.width, cfg.stages)
        self.extractor = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2)
        _, c2, c3, c4 = cfg.stage_channels()
        if cfg.stages == 4:
            self.extractor1 = r.layer3
            self.extractor2 = r.layer4
            self.upsample0 = DoubleConv(c4, c3)
            self.upsample1 = Up(2 * c3, c3, c2)
            self.upsample2 = Up(2 * c2, c2, cfg.decoder_out)
        elif cfg.stages == 3:
            self.extractor1 = r.layer3
            self.upsample2 = Up(c3 + c2, c2, cfg.decoder_out)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.extractor(x)
        if self.stages == 2:
            return x1
        x2 = self.extractor1(x1)
        if self.stages == 3:
            return self.upsample2(x2, x1)
        x3 = self.extractor2(x2)
        return self.upsample2(self.upsample1(self.upsample0(x3), x2), x1)


class CellMLP(nn.Module):
    """Two 1x1 conv -> BN -> ReLU layers: more capacity per feature cell without widening what it sees."""

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(cin, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                                    nn.Conv2d(hidden, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class NovumBackbone(nn.Module):
    """NetE2E: ``net`` (ResNetExt) + ``out_layer`` Linear(decoder_out, D); with ``cell_mlp`` > 0 a
    :class:`CellMLP` sits between them (not in upstream's structure)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = ResNetExt(cfg)
        width = cfg.decoder_out
        if cfg.cell_mlp:
            self.cell_mlp = CellMLP(cfg.decoder_out, cfg.cell_mlp)
            width = cfg.cell_mlp
        self.out_layer = nn.Linear(width, cfg.feature_dim)

    def forward(self, x: Tensor, bias: bool = False) -> Tensor:
        """Unit features [B, D, H/8, W/8] from a normalised image batch.

        Inference (upstream ``forward_test``) applies the projection WITHOUT its bias; upstream's
        training path applied it with the bias (``bias=True`` reproduces that).
        """
        m = self.net(normalise_input(x, self.cfg.input_norm))
        if self.cfg.cell_mlp:
            m = self.cell_mlp(m)
        w = self.out_layer.weight[:, :, None, None]
        m = F.conv2d(m, w, self.out_layer.bias if bias else None)
        return F.normalize(m, p=2, dim=1)


def resnet_to_extractor_keys(state: dict[str, Tensor], prefix: str = "net.") -> dict[str, Tensor]:
    """Rename a torchvision ResNet state dict to the encoder's keys (``fc.*`` dropped)."""
    stem = {"conv1": "extractor.0", "bn1": "extractor.1", "layer1": "extractor.4",
            "layer2": "extractor.5", "layer3": "extractor1", "layer4": "extractor2"}
    out = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head in stem:
            out[f"{prefix}{stem[head]}.{rest}"] = v
    return out
