"""Model configuration: architecture, classes, volumes, input format.

Everything a loader needs to rebuild a model travels with it as this config (native checkpoint
metadata, ONNX metadata_props, engine sidecar), serialised with :func:`to_dict` / :func:`from_dict`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from novum.contracts.schema import AnyJson, Int, JsonText, List, Nullable, Num, Obj, SchemaError, Str, validate

PASCAL3D_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "boat", "bottle", "bus", "car",
    "chair", "diningtable", "motorbike", "sofa", "train", "tvmonitor",
)
# Upstream per-class vertex counts (docs/upstream.md section 3) and the cuboid grid
# (xn, yn, zn) that produced them.
PASCAL3D_N_LIST: tuple[int, ...] = (1032, 1030, 1112, 1062, 1130, 1024, 1046, 1088, 1112, 1078, 1076, 1046)
PASCAL3D_GRIDS: tuple[tuple[int, int, int], ...] = (
    (17, 18, 6), (6, 23, 13), (8, 23, 12), (8, 9, 27), (8, 29, 9), (10, 24, 8),
    (11, 12, 17), (18, 13, 10), (8, 23, 12), (19, 11, 11), (6, 35, 8), (17, 11, 12),
)
# The ResNet encoders downsample by 32 at their deepest stage: a smaller side leaves that stage no cell.
MIN_INPUT_SIDE = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


INPUT_NORMS = ("none", "image", "local")   # BackboneConfig.input_norm (novum.model.input_norm)


@dataclass
class BackboneConfig:
    """ResNet encoder + DoubleConv/Up decoder ("resnetext"), upstream structure.

    ``block`` is "bottleneck" (ResNet-50 style, expansion 4) or "basic" (ResNet-18 style).
    ``width`` is the stem width (64 for torchvision ResNets). ``decoder_out`` is the decoder's
    output width before the 1x1 projection to ``feature_dim``.
    ``stages`` is how many ResNet stages the encoder runs: 4 (upstream: to stride 32, then the
    decoder back to stride 8), 3 (to stride 16, one decoder step) or 2 (stops at stride 8, no
    decoder: the most local features; ``decoder_out`` is then the stage-2 width).
    """

    arch: str = "resnetext50"
    block: str = "bottleneck"
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    decoder_out: int = 256
    feature_dim: int = 128
    stages: int = 4
    cell_mlp: int = 0
    input_norm: str = "none"

    def __post_init__(self) -> None:
        self.layers = tuple(int(v) for v in self.layers)  # type: ignore[assignment]
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"backbone input_norm must be one of {INPUT_NORMS} (got {self.input_norm!r})")
        if self.stages not in (2, 3, 4):
            raise ValueError(f"backbone stages must be 2, 3 or 4 (got {self.stages})")
        if self.stages == 2 and self.decoder_out != self.stage_channels()[1]:
            raise ValueError(f"a 2-stage backbone has no decoder: decoder_out must be the stage-2 width "
                             f"{self.stage_channels()[1]} (got {self.decoder_out})")

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    def stage_channels(self) -> tuple[int, int, int, int]:
        e = self.expansion
        return tuple(self.width * m * e for m in (1, 2, 4, 8))  # type: ignore[return-value]


@dataclass
class ModelConfig:
    """A whole NOVUM model: backbone, class volumes, input format.

    ``extents`` are per-class cuboid ranges ``(x0, x1, y0, y1, z0, z1)`` in object coordinates
    (PASCAL CAD frame, z up); ``n_list`` the vertex count of each class mesh; ``max_n`` the
    class block size in the flattened bank. ``input_size`` is (H, W) of the network input;
    ``focal`` the focal length in input pixels of the framing (upstream: 3000 at 640x800, objects
    at ``distance`` 5 centred in the crop). ``framing`` records how training framed the objects
    (:mod:`novum.data.framing`: object fill, centre offset, aspect, padding), what ``--roi`` must
    reproduce; ``trained_input_size`` is set when a model is exported at another ``input_size``
    than it was trained at (None: the same).
    """

    classes: tuple[str, ...] = PASCAL3D_CLASSES
    n_list: tuple[int, ...] = PASCAL3D_N_LIST
    max_n: int = 1130
    n_clutter: int = 2560
    extents: tuple[tuple[float, ...], ...] | None = None
    input_size: tuple[int, int] = (640, 800)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    focal: float = 3000.0
    distance: float = 5.0
    stride: int = 8
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    framing: dict[str, Any] | None = None
    trained_input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        self.n_list = tuple(int(n) for n in self.n_list)
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        if self.extents is not None:
            self.extents = tuple(tuple(float(v) for v in e) for e in self.extents)
        if self.trained_input_size is not None:
            self.trained_input_size = (int(self.trained_input_size[0]), int(self.trained_input_size[1]))
        if isinstance(self.backbone, dict):
            bb = dict(self.backbone)
            bb["layers"] = tuple(bb.get("layers", (3, 4, 6, 3)))
            self.backbone = BackboneConfig(**bb)
        if len(self.classes) != len(self.n_list):
            raise ValueError(f"config has {len(self.classes)} classes but {len(self.n_list)} vertex counts")
        if self.n_list and max(self.n_list) > self.max_n:
            raise ValueError(f"max_n={self.max_n} is smaller than the largest class mesh ({max(self.n_list)})")
        if self.input_size[0] % self.stride or self.input_size[1] % self.stride:
            raise ValueError(f"input_size {self.input_size} must be multiples of the stride {self.stride}")

    @property
    def trained_size(self) -> tuple[int, int]:
        """(H, W) the model was trained at."""
        return self.trained_input_size or self.input_size

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def feature_size(self) -> tuple[int, int]:
        return self.input_size[0] // self.stride, self.input_size[1] // self.stride

    @property
    def num_vertex_rows(self) -> int:
        """Rows of the class part of the bank (padding included): C * max_n."""
        return self.num_classes * self.max_n

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data; ``backbone.input_norm`` is left out when it is "none", so files
        of models without it stay as they were (and readable by earlier versions)."""
        d = dataclasses.asdict(self)
        if d["backbone"]["input_norm"] == "none":
            del d["backbone"]["input_norm"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model config", fix: str = "") -> "ModelConfig":
        """A config from its dict form, checked against :data:`MODEL_CONFIG` first: a bad value is
        one SchemaError line starting with ``where`` (the file and key it came from). Fields this
        version does not know are ignored (files from a newer novum load)."""
        d = check_model_config(d, where, fix)
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except (ValueError, TypeError) as e:  # a rule of __post_init__ the schema does not repeat
            raise SchemaError(" ".join(f"{where}: {e}{'; ' + fix if fix else ''}".split())) from None


def upstream_config() -> ModelConfig:
    """The official NOVUM release: ResNet-50 resnetext, 12 PASCAL3D+ classes, 640x800."""
    from novum.mesh import upstream_extents

    return ModelConfig(extents=upstream_extents())


def small_config(classes: tuple[str, ...] = PASCAL3D_CLASSES, input_size: tuple[int, int] = (128, 160),
                 extents: tuple[tuple[float, ...], ...] | None = None, vertices: int = 200,
                 width: int = 32, feature_dim: int = 64, stages: int = 4, cell_mlp: int = 0,
                 input_norm: str = "none") -> ModelConfig:
    """A CPU-sized variant of the same structure: ResNet-18-style basic blocks, narrow decoder."""
    from novum.mesh import default_extents, mesh_counts

    extents = extents or tuple(default_extents(c) for c in classes)
    n_list = tuple(mesh_counts(e, vertices) for e in extents)
    bb = BackboneConfig(arch="resnetext18s", block="basic", layers=(2, 2, 2, 2), width=width,
                        decoder_out=2 * width, feature_dim=feature_dim, stages=stages, cell_mlp=cell_mlp,
                        input_norm=input_norm)
    h = input_size[0]
    return ModelConfig(classes=tuple(classes), n_list=n_list, max_n=max(n_list), n_clutter=256,
                       extents=extents, input_size=input_size, focal=3000.0 * h / 640.0, backbone=bb)


# ----------------------------------------------------------------------------------------------
# the schema of a config in a file (checkpoint metadata, ONNX novum_config, engine sidecar,
# novum_dataset.json, a Triton model's parameters): types, ranges and what it can make us allocate.
# Generous for upstream's release (12 classes, max_n 1130, 640x800, D 128, n_clutter 2560,
# ResNet-50 widths); docs/untrusted-files.md lists the bounds.

MAX_CLASSES = 1024                # upstream: 12
MAX_CLASS_NAME = 128              # characters
MAX_VERTICES = 65536              # max_n, each n_list entry (upstream: 1130)
MAX_CLUTTER = 65536               # n_clutter (upstream: 2560)
MAX_INPUT_SIDE = 4096             # H and W (upstream: 640x800)
MAX_FEATURE_DIM = 1024            # D (upstream: 128)
MAX_BANK_VALUES = 1 << 27         # (C * max_n + n_clutter) * D: 512 MiB of float32 (upstream: 2.1 M)
MAX_BACKBONE_WEIGHTS = 1 << 28    # convolution/linear weights: 1 GiB of float32 (upstream: ~81 M)
MAX_EXTENT = 1e4                  # |cuboid coordinate| in object units (upstream: < 3)
MAX_CONFIG_JSON = 1 << 20         # bytes of a config as JSON text (upstream's: ~2.3 kB)

# a class name is a folder name in datasets and a line of Triton's labels.txt: no path
# separators, no control characters, not "." or ".."
CLASS_NAME = Str(MAX_CLASS_NAME, min_len=1, pattern=r"(?!\.\.?$)[^/\\]+",
                 what=f"a class name of 1..{MAX_CLASS_NAME} characters without / or \\, not . or ..")
CLASSES = List(CLASS_NAME, MAX_CLASSES, min_len=1, unique=True,
               what=f"a list of 1..{MAX_CLASSES} different class names")
INPUT_SIZE = List(Int(1, MAX_INPUT_SIDE), 2, 2, what=f"[H, W], integers in [1, {MAX_INPUT_SIDE}]")


def backbone_weights(bb: dict) -> int:
    """Weights of the backbone a :class:`BackboneConfig` dict describes (convs and the projection,
    the 4-stage upstream structure, an upper bound for fewer stages), without building it."""
    bb = {**dataclasses.asdict(BackboneConfig()), **bb}
    e = 4 if bb["block"] == "bottleneck" else 1
    w, total = bb["width"], 3 * bb["width"] * 49
    cin = w
    for i, n in enumerate(bb["layers"]):
        p = w * 2 ** i
        cout = p * e
        per = (lambda c: c * p + 9 * p * p + p * cout) if e == 4 else (lambda c: 9 * c * p + 9 * p * p)
        total += per(cin) + cin * cout + (n - 1) * per(cout)
        cin = cout
    c2, c3, c4 = (w * m * e for m in (2, 4, 8))
    d = bb["decoder_out"]
    total += 9 * (c4 * c3 + c3 * c3) + 9 * (2 * c3 * c3 + c3 * c2) + 9 * (2 * c2 * c2 + c2 * d) + d * bb["feature_dim"]
    m = bb.get("cell_mlp") or 0   # the per-cell MLP, then the projection from its width
    total += m * (d + m + bb["feature_dim"])
    return total


def _backbone_size(bb: dict) -> str | tuple[str, str] | None:
    full = {**dataclasses.asdict(BackboneConfig()), **bb}
    if full["stages"] == 2:
        e = 4 if full["block"] == "bottleneck" else 1
        if full["decoder_out"] != 2 * full["width"] * e:
            return "decoder_out", (f"must be the stage-2 width {2 * full['width'] * e} for a 2-stage backbone "
                                   f"(no decoder), got {full['decoder_out']}")
    n = backbone_weights(bb)
    if n > MAX_BACKBONE_WEIGHTS:
        return f"describes {n} weights, more than the {MAX_BACKBONE_WEIGHTS} allowed (width, layers, decoder_out)"
    return None


BACKBONE_CONFIG = Obj({
    "arch": Str(64, min_len=1),
    "block": Str(choices=("bottleneck", "basic")),
    "layers": List(Int(1, 64), 4, 4),
    "width": Int(1, 512),
    "decoder_out": Int(1, 8192),
    "feature_dim": Int(1, MAX_FEATURE_DIM),
    "stages": Int(2, 4),
    "cell_mlp": Int(0, 8192),
    "input_norm": Str(choices=INPUT_NORMS),
}, unknown="reject", checks=[_backbone_size])


def _model_rules(d: dict) -> str | tuple[str, str] | None:
    """What ModelConfig.__post_init__ also requires, plus the bank size, as one-line problems."""
    d = {**{f.name: f.default for f in dataclasses.fields(ModelConfig) if f.default is not dataclasses.MISSING}, **d}
    classes, n_list, max_n = d["classes"], d["n_list"], d["max_n"]
    if len(classes) != len(n_list):
        return "n_list", f"has {len(n_list)} entries for {len(classes)} classes"
    if n_list and max(n_list) > max_n:
        return "max_n", f"is {max_n}, smaller than the largest class mesh ({max(n_list)})"
    stride, size = d["stride"], d["input_size"]
    if size[0] % stride or size[1] % stride or size[0] < stride or size[1] < stride:
        return "input_size", f"{list(size)} must be multiples of the stride {stride}"
    ext = d["extents"]
    if ext is not None:
        if len(ext) != len(classes):
            return "extents", f"has {len(ext)} cuboids for {len(classes)} classes"
        for i, e in enumerate(ext):
            if not (e[0] < e[1] and e[2] < e[3] and e[4] < e[5]):
                return f"extents[{i}]", f"{show_list(e)} is not a cuboid (x0 < x1, y0 < y1, z0 < z1)"
    dim = d.get("backbone", {}).get("feature_dim", BackboneConfig.feature_dim)
    rows = len(classes) * max_n + d["n_clutter"]
    if rows * dim > MAX_BANK_VALUES:
        return "max_n", (f"makes a feature bank of {rows} x {dim} values ((classes * max_n + n_clutter) * "
                         f"feature_dim), more than the {MAX_BANK_VALUES} allowed")
    return None


def show_list(v: Any) -> str:
    return "[" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "]"


# the framing record (novum.data.framing): what --roi reproduces; Framer also checks object_fill
FRAMING = Obj({
    "object_fill": Num(0.05, 1.0),
    "centre_offset": List(Num(-10.0, 10.0), 2, 2),
    "fill_quartiles": List(Num(0.0, 10.0), 2, 2),
    "aspect": Num(0, 100, gt=True),
    "pad": Str(choices=("zero",)),
    "samples": Int(0, 1 << 40),
    "source": Str(256),
}, what="a framing record (object_fill, centre_offset, ...)")

MODEL_CONFIG = Obj({
    "classes": CLASSES,
    "n_list": List(Int(1, MAX_VERTICES), MAX_CLASSES, min_len=1),
    "max_n": Int(1, MAX_VERTICES),
    "n_clutter": Int(0, MAX_CLUTTER),
    "extents": Nullable(List(List(Num(-MAX_EXTENT, MAX_EXTENT), 6, 6), MAX_CLASSES,
                             what=f"a list of (x0, x1, y0, y1, z0, z1) cuboids, one per class")),
    "input_size": INPUT_SIZE,
    "mean": List(Num(-1e3, 1e3), 3, 3),
    "std": List(Num(0, 1e3, gt=True), 3, 3),
    "focal": Num(0, 1e7, gt=True),
    "distance": Num(0, 1e6, gt=True),
    "stride": Int(1, 64),
    "backbone": BACKBONE_CONFIG,
    "framing": Nullable(FRAMING),
    "trained_input_size": Nullable(INPUT_SIZE),
}, required=("classes", "input_size"), checks=[_model_rules])


def check_model_config(d: Any, where: str = "model config", fix: str = "", path: str = "") -> dict[str, Any]:
    """``d`` (a ModelConfig dict from a file) checked against :data:`MODEL_CONFIG`; one SchemaError
    line naming ``where`` and the field otherwise. Returns the checked dict (lists, not tuples)."""
    return validate(MODEL_CONFIG, d, where, fix, path)



MODEL_CONFIG_JSON = JsonText(MODEL_CONFIG, MAX_CONFIG_JSON)


def config_from_json(text: Any, where: str, fix: str = "") -> ModelConfig:
    """A ModelConfig from its JSON text in a file (checkpoint metadata, ``novum_config``), checked."""
    d = validate(JsonText(AnyJson(), MAX_CONFIG_JSON), text, where, fix)
    return ModelConfig.from_dict(d, where, fix)
