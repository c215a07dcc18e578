"""Training configuration: one dataclass, read from a JSON (or YAML, if PyYAML is installed) file
and overridable from the command line."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from novum.config import INPUT_NORMS, MIN_INPUT_SIDE, PASCAL3D_CLASSES, ModelConfig, small_config
from novum.contracts.schema import parse_json, parse_yaml, read_text, show
from novum.errors import InputError

STRIDE = 8   # the feature stride of every novum backbone
MAX_CONFIG_BYTES = 1 << 20

# what a run folder holds (novum.training.loop writes them)
MODEL_FILE = "model.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "train_state.pt"
LOG_FILE = "log.jsonl"


def resume_files(out: Path) -> tuple[Path, Path]:
    """What --resume reads: the training state and the last weights."""
    return Path(out) / STATE_FILE, Path(out) / LAST_FILE


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
    stages: int = 4                # backbone depth: 4 = upstream (stride 32 + decoder), 2 = stride 8, no decoder
    cell_mlp: int = 0              # width of a 1x1-conv MLP before the projection (0: none, as upstream)
    input_norm: str = "none"       # contrast normalisation inside the network: none (upstream) | image | local
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
    clutter_loss: float = 0.0           # weight of the clutter-vs-object term (0 = upstream's objective)
    class_loss: float = 0.0             # weight of the class-level term (0 = upstream's objective)
    masking: float = 0.0                # share of training images given block-mosaic masking (novum.training.masking)
    masking_frac: tuple[float, float] = (0.2, 0.7)   # range of the share of object-box blocks masked
    occluders: float = 0.0              # share of training images given pasted occluder patches (held-out family)
    consistency: float = 0.0            # > 0: train on a clean and an occluded view of each image; weight of the term
                                        # pulling visible-cell features of the occluded view to the clean view's
    vote_loss: float = 0.0              # weight of the whole-image soft-vote cross-entropy (0 = upstream's objective)
    degrade: float = 0.0                # share of training images given a held-out photometric degradation
                                        # (novum.training.degrade; the occluded view when there are two)
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
        if isinstance(self.data, dict):
            unknown = sorted(set(self.data) - {f.name for f in dataclasses.fields(DataConfig)})
            if unknown:
                raise InputError(f"unknown training config keys {['data.' + k for k in unknown]}; valid data keys: "
                                 f"{sorted(f.name for f in dataclasses.fields(DataConfig))}")
            self.data = DataConfig(**self.data)
        if not isinstance(self.data, DataConfig):
            raise InputError(f"invalid training config: data must be an object (source, per_class, ...), got "
                             f"{json.dumps(self.data, default=str)}")
        validate(self)
        self.classes = tuple(self.classes)
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))

    @property
    def thr(self) -> float:
        return float(self.distance_thr) if self.distance_thr is not None else 48.0 * self.input_size[0] / 640.0

    def model_config(self) -> ModelConfig:
        return small_config(classes=self.classes, input_size=self.input_size, vertices=self.vertices,
                            width=self.width, feature_dim=self.feature_dim, stages=self.stages,
                            cell_mlp=self.cell_mlp, input_norm=self.input_norm)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)


# ----------------------------------------------------------------------------------------------
# validation: the whole config is checked when it is made, before any data is rendered


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# field -> (accepts the value, what it must be)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "classes": (lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(c, str) and c for c in v)
                and len(set(v)) == len(v), "a non-empty list of distinct class names"),
    "input_size": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v)
                   and all(x >= MIN_INPUT_SIDE and x % STRIDE == 0 for x in v),
                   f"[H, W]: integers >= {MIN_INPUT_SIDE}, multiples of {STRIDE}"),
    "vertices": (lambda v: _is_int(v) and v >= 8, "an integer >= 8"),
    "width": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "feature_dim": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "stages": (lambda v: _is_int(v) and v in (2, 3, 4), "2, 3 or 4"),
    "cell_mlp": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: none)"),
    "input_norm": (lambda v: v in INPUT_NORMS, " or ".join(f'"{m}"' for m in INPUT_NORMS)),
    "epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "warmup_steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "min_lr_ratio": (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "augment": (lambda v: isinstance(v, bool), "true or false"),
    "temperature": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "clutter_weight": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "noise_weight": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "n_noise": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "clutter_loss": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "class_loss": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "masking": (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "masking_frac": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_num(x) for x in v)
                     and 0 <= v[0] <= v[1] <= 1, "[lo, hi] with 0 <= lo <= hi <= 1"),
    "occluders": (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "consistency": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "vote_loss": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "degrade": (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "momentum": (lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
    "distance_thr": (lambda v: v is None or (_is_num(v) and v > 0), "null or a number > 0"),
    "max_vertices": (lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1"),
    "padding_clutter": (lambda v: isinstance(v, bool), "true or false"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "init": (lambda v: v is None or (isinstance(v, str) and v != ""), "null or a checkpoint path"),
    "save_every": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: only at epoch ends)"),
    "log_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "threads": (lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1"),
    "channels_last": (lambda v: isinstance(v, bool), "true or false"),
    "data.source": (lambda v: isinstance(v, str) and v != "", "'synthetic' or the path of a packed .npz"),
    "data.per_class": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "data.val_per_class": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "data.seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "data.cache": (lambda v: v is None or (isinstance(v, str) and v != ""), "null or a folder"),
    "data.options": (lambda v: isinstance(v, dict), "an object of synthetic generator options"),
}


def config_problems(cfg: "TrainConfig") -> list[str]:
    """Every value that is of the wrong type or out of range, as ``key: must be ..., got ...``."""
    out = []
    for key, (ok, what) in _RULES.items():
        obj, name = (cfg.data, key[5:]) if key.startswith("data.") else (cfg, key)
        v = getattr(obj, name)
        if not ok(v):
            out.append(f"{key} must be {what}, got {json.dumps(v, default=str)}")
    if not out:
        out += _synthetic_option_problems(cfg)
        h, w = cfg.input_size
        cells = (h // STRIDE) * (w // STRIDE)
        if cfg.consistency > 0 and cfg.masking == 0 and cfg.occluders == 0:
            out.append("consistency needs an occluded view: set masking or occluders > 0 (e.g. --set occluders=1)")
        if cfg.n_noise > cells:
            out.append(f"n_noise must be <= the {cells} feature cells of a {h}x{w} input, got {cfg.n_noise}")
        if cfg.data.source == "synthetic" and cfg.data.per_class * len(cfg.classes) < cfg.batch_size:
            out.append(f"batch_size {cfg.batch_size} is more than the {cfg.data.per_class * len(cfg.classes)} "
                       f"training images (data.per_class x classes)")
    return out


def _synthetic_option_problems(cfg: "TrainConfig") -> list[str]:
    if cfg.data.source != "synthetic":
        return [] if not cfg.data.options else ["data.options apply to data.source 'synthetic' only"]
    from novum.data.synthetic import SyntheticConfig

    names = {f.name for f in dataclasses.fields(SyntheticConfig)} - {"per_class", "split", "seed"}
    unknown = sorted(set(cfg.data.options) - names)
    if unknown:
        return [f"unknown data.options {unknown}; valid: {sorted(names)}"]
    try:
        SyntheticConfig(per_class=cfg.data.per_class, **cfg.data.options)
    except InputError as e:
        return [f"data.options: {e}"]
    except (TypeError, ValueError) as e:
        return [f"data.options: {' '.join(str(e).split())}"]
    return []


def validate(cfg: "TrainConfig") -> None:
    """Raise one :class:`InputError` line naming every bad value (types, ranges), before any work."""
    problems = config_problems(cfg)
    if problems:
        raise InputError("invalid training config: " + "; ".join(problems) + " (fix the config file or --set KEY=VALUE)")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a config file (``.json``, or ``.yaml``/``.yml`` with PyYAML) and apply ``key=value``
    overrides (dotted keys reach ``data.*``; values parsed as JSON, else taken as strings)."""
    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: training config not found")
        text = read_text(p, MAX_CONFIG_BYTES, "training config")
        if p.suffix in (".yaml", ".yml"):
            try:
                import yaml  # noqa: F401
            except ImportError:
                raise InputError(f"{p}: reading YAML needs PyYAML (pip install pyyaml), or use a .json config") from None
            d = parse_yaml(text, str(p), what="training config") or {}   # JSON types only, aliases bounded
        else:
            d = parse_json(text, str(p), what="training config")
        if not isinstance(d, dict):
            raise InputError(f"{p}: a training config is an object of keys (e.g. {{\"epochs\": 5}}), not {show(d)}")
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
