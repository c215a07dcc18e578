"""Training configuration: one dataclass, read from a JSON (or YAML, if PyYAML is installed) file
and overridable from the command line."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from novum.config import PASCAL3D_CLASSES, ModelConfig, small_config
from novum.errors import InputError


@dataclass
class DataConfig:
    """Where training data comes from: ``source`` "synthetic" (generated on the fly, cached as
    packed arrays under ``cache``) or a path to a packed ``.npz`` (:class:`PackedSamples`)."""

    source: str = "synthetic"
    per_class: int = 300           # training images per class
    val_per_class: int = 10        # held-out images per class for the per-epoch check (0: none)
    seed: int = 0
    cache: str | None = None       # packed-array cache path; None: <out>/data_<hash>.npz
    options: dict[str, Any] = field(default_factory=dict)  # passed to the generator


@dataclass
class TrainConfig:
    # model (small_config arguments)
    classes: tuple[str, ...] = PASCAL3D_CLASSES
    input_size: tuple[int, int] = (128, 160)
    vertices: int = 200
    width: int = 32
    feature_dim: int = 64
    # optimisation
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.02     # cosine decay floor, as a fraction of lr
    augment: bool = True
    # NOVUM objective
    temperature: float = 0.07
    clutter_weight: float = 0.005
    noise_weight: float = 0.1
    n_noise: int = 5
    momentum: float = 0.9
    distance_thr: float | None = None   # px; None: 48 * H / 640 (upstream's 48 px at 640x800)
    max_vertices: int | None = None     # contrastive term on <= this many visible vertices per image (None: all)
    padding_clutter: bool = False       # store clutter features in the bank's padding rows (background sink)
    # run
    seed: int = 0
    init: str | None = None        # start from this checkpoint's weights (and bank): fine-tuning
    save_every: int = 200          # steps between resumable checkpoints (also at every epoch end)
    log_every: int = 10
    threads: int | None = None     # torch.set_num_threads on CPU
    channels_last: bool = True     # memory format of the training network (faster convs on CPU and GPU)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if isinstance(self.data, dict):
            self.data = DataConfig(**self.data)

    @property
    def thr(self) -> float:
        return float(self.distance_thr) if self.distance_thr is not None else 48.0 * self.input_size[0] / 640.0

    def model_config(self) -> ModelConfig:
        return small_config(classes=self.classes, input_size=self.input_size, vertices=self.vertices,
                            width=self.width, feature_dim=self.feature_dim)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a config file (``.json``, or ``.yaml``/``.yml`` with PyYAML) and apply ``key=value``
    overrides (dotted keys reach ``data.*``; values parsed as JSON, else taken as strings)."""
    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: training config not found")
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError(f"{p}: reading YAML needs PyYAML (pip install pyyaml), or use a .json config") from None
            d = yaml.safe_load(text) or {}
        else:
            try:
                d = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"{p}: invalid JSON ({e.msg} at line {e.lineno})") from None
    for ov in overrides:
        key, sep, raw = ov.partition("=")
        if not sep:
            raise InputError(f"override {ov!r} is not key=value (e.g. --set epochs=5)")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = d
        parts = key.split(".")
        for k in parts[:-1]:
            target = target.setdefault(k, {})
        target[parts[-1]] = value
    return TrainConfig.from_dict(d)
