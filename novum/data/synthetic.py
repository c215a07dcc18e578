"""Synthetic posed dataset: procedural objects of the model's classes, rendered with known upstream poses.

Sample ``i`` is a pure function of (split, seed, occlusion, corruption, severity, i): the scene (object
instance, pose, light, background) depends on (split, seed, class, index) only, so the occluded and
corrupted variants of an image share its labels, and the train and test splits draw from disjoint
seed streams. Nothing is stored: ``dataset[i]`` renders on the fly (~ms on one core).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from novum.config import ModelConfig, small_config
from novum.data.backgrounds import background, texture
from novum.data.corruptions import CORRUPTIONS, corrupt
from novum.data.keypoints import annotate, class_mesh
from novum.data.objects import background_object, build_object
from novum.data.occluders import LEVELS, occlude
from novum.data.projection import camera_position_pascal
from novum.data.render import compile_shape, render
from novum.data.sample import Sample
from novum.errors import InputError

SPLITS = {"train": 11, "test": 23, "val": 37}
# Bumped whenever the pixels of a given (config, index) change: include it in cache keys.
GENERATOR_VERSION = 4


@dataclass
class SyntheticConfig:
    """What to generate. Classes, image size, focal and cuboids come from the model config when given."""

    per_class: int = 100
    split: str = "train"
    seed: int = 0
    occlusion: str | None = None          # None | "L1" | "L2" | "L3"
    corruption: str | None = None         # None | "noise" | "blur" | "contrast" | "jpeg"
    severity: int = 3                     # 1..5
    classes: tuple[str, ...] | None = None
    image_size: tuple[int, int] = (128, 160)
    focal: float | None = None            # default 3000 * H / 640 (upstream framing)
    distance: float = 5.0
    distance_jitter: float = 0.08         # distance = d * U(1 - j, 1 + j)
    elevation_deg: tuple[float, float] = (-10.0, 40.0)
    theta_deg: float = 10.0               # |theta| <= this (normal, sigma = half of it)
    supersample: int = 2
    fill: tuple[float, float] = (0.97, 1.0)
    background_objects: tuple[int, int] = (0, 0)   # rendered non-class things behind the object: U{lo..hi} per scene

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise InputError(f"unknown split '{self.split}'; choose one of {', '.join(SPLITS)}")
        if self.occlusion is not None and self.occlusion not in LEVELS:
            raise InputError(f"unknown occlusion level '{self.occlusion}'; choose one of {', '.join(LEVELS)}")
        if self.corruption is not None and self.corruption not in CORRUPTIONS:
            raise InputError(f"unknown corruption '{self.corruption}'; choose one of {', '.join(CORRUPTIONS)}")
        if not 1 <= int(self.severity) <= 5:
            raise InputError(f"severity {self.severity} is out of range; use 1..5")
        if self.per_class < 1:
            raise InputError(f"per_class must be >= 1 (got {self.per_class})")
        lo, hi = (int(v) for v in self.background_objects)
        if not 0 <= lo <= hi <= 8:
            raise InputError(f"background_objects {list(self.background_objects)} must be [lo, hi] with 0 <= lo <= hi <= 8")
        self.background_objects = (lo, hi)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))


@dataclass
class Scene:
    """Everything drawn for one sample before occlusion and corruption."""

    label: int
    pose: np.ndarray
    image: np.ndarray          # float32 BGR
    alpha: np.ndarray          # float32 coverage of the object
    annotation: dict


class SyntheticDataset:
    """``len(ds) = per_class * num_classes``; ``ds[i]`` -> :class:`Sample` (class ``i // per_class``)."""

    def __init__(self, cfg: SyntheticConfig | None = None, model_config: ModelConfig | None = None) -> None:
        self.cfg = cfg = cfg or SyntheticConfig()
        if model_config is None:
            classes = tuple(cfg.classes) if cfg.classes else None
            model_config = small_config(input_size=cfg.image_size) if classes is None else \
                small_config(classes=classes, input_size=cfg.image_size)
            if cfg.focal is not None:
                model_config.focal = float(cfg.focal)
        elif cfg.classes and tuple(cfg.classes) != tuple(model_config.classes):
            raise InputError("SyntheticConfig.classes differs from the model config's classes; leave it unset")
        if model_config.extents is None:
            raise InputError("the model config has no cuboid extents; use a config made by novum.config")
        self.model_config = model_config
        self.classes = tuple(model_config.classes)
        self.image_size = tuple(model_config.input_size)
        self.focal = float(model_config.focal)
        self.distance = float(cfg.distance if cfg.distance else model_config.distance)
        self.extents = tuple(tuple(e) for e in model_config.extents)
        self.n_list = tuple(model_config.n_list)

    def __len__(self) -> int:
        return self.cfg.per_class * len(self.classes)

    def mesh(self, label: int) -> tuple[np.ndarray, np.ndarray]:
        """The class cuboid mesh whose vertices are the keypoints."""
        return class_mesh(self.extents[label], self.n_list[label])

    def index(self, i: int) -> tuple[int, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = i % len(self)
        return i // self.cfg.per_class, i % self.cfg.per_class

    def _seed(self, label: int, j: int, *extra: int) -> list[int]:
        return [int(self.cfg.seed), SPLITS[self.cfg.split], label, j, *extra]

    def sample_pose(self, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        az = rng.uniform(0, 2 * np.pi)
        lo, hi = c.elevation_deg
        el = rng.uniform(lo, hi) if rng.uniform() < 0.9 else rng.uniform(lo - 10, hi + 20)
        th = np.clip(rng.normal(0, c.theta_deg / 2), -c.theta_deg, c.theta_deg)
        d = self.distance * rng.uniform(1 - c.distance_jitter, 1 + c.distance_jitter)
        return np.array([az, np.deg2rad(el), np.deg2rad(th), d], dtype=np.float32)

    def scene(self, label: int, j: int, size: tuple[int, int] | None = None) -> Scene:
        """Render the clean scene of class ``label``, index ``j`` (pure function of split, seed, label, j).

        ``size`` (H, W): a larger canvas around the same object (same focal and distance, so the
        object keeps the training scale, centred; :mod:`novum.data.framing` places it off-centre).
        Its centre window is the training image; the background and surface texture are drawn at
        the training size and mirrored outwards, so their pattern scale stays the training one."""
        c = self.cfg
        rng = np.random.default_rng(self._seed(label, j))
        h, w = self.image_size
        big = _pad_to(size) if size is not None and tuple(size) != (h, w) else None
        if size is not None:
            h, w = (int(v) for v in size)
        shape = build_object(self.classes[label], rng, self.extents[label], c.fill)
        model = compile_shape(shape)
        pose = self.sample_pose(rng)
        pose64 = pose.astype(np.float64)
        cam_dir = camera_position_pascal(pose64[0], pose64[1], 1.0)
        light = cam_dir * rng.uniform(0.3, 1.0) + np.array([0, 0, rng.uniform(0.3, 1.2)]) + rng.normal(0, 0.5, 3)
        light /= np.linalg.norm(light)
        jitter = 1 + rng.normal(0, 0.04, len(model.faces))
        rgb, alpha = render(model, pose64, self.focal, (h, w), light, ambient=rng.uniform(0.3, 0.6),
                            ss=c.supersample, face_jitter=jitter)
        th, tw = self.image_size
        tex, bg = texture(rng, th, tw), background(rng, th, tw)
        if big is not None:
            tex, bg = big(tex, (th, tw)), big(bg, (th, tw))
        rgb = rgb * tex
        if c.background_objects[1] > 0:   # own stream: scenes without them keep their pixels
            add_background_objects(bg, np.random.default_rng(self._seed(label, j, 3000)), c.background_objects, self.focal)
        img = bg * (1 - alpha[..., None]) + rgb
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 4))
        ann = annotate(self.mesh(label)[0], pose64, self.focal, (h, w))
        return Scene(label, pose, np.clip(img, 0, 255), alpha, ann)

    def name(self, label: int, j: int) -> str:
        c = self.cfg
        tag = f"_{c.occlusion}" if c.occlusion else ""
        tag += f"_{c.corruption}{c.severity}" if c.corruption else ""
        return f"{self.classes[label]}_{c.split}{c.seed}_{j:05d}{tag}"

    def __getitem__(self, i: int) -> Sample:
        label, j = self.index(int(i))
        c = self.cfg
        sc = self.scene(label, j)
        mask = (sc.alpha > 0.5).astype(np.uint8)
        img = sc.image
        occ = None
        if c.occlusion:
            rng = np.random.default_rng(self._seed(label, j, 1000 + list(LEVELS).index(c.occlusion)))
            img, occ, _ = occlude(img, mask.astype(bool), c.occlusion, rng)
        img = np.round(img).astype(np.uint8)
        if c.corruption:
            rng = np.random.default_rng(self._seed(label, j, 2000 + 10 * CORRUPTIONS.index(c.corruption) + int(c.severity)))
            img = corrupt(img, c.corruption, c.severity, rng)
        return Sample(image=img, label=label, kp=sc.annotation["kp"], visible=sc.annotation["visible"],
                      pose=sc.pose, box=mask_box(mask, sc.annotation), mask=mask, occluder=occ,
                      name=self.name(label, j), kp_weights=sc.annotation["kp_weights"])

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _pad_to(size: tuple[int, int]):
    """A function mirroring an image [h, w, C] outwards to ``size`` (H, W), the original centred."""
    H, W = (int(v) for v in size)

    def pad(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        h, w = hw
        if H < h or W < w:
            raise ValueError(f"canvas {H}x{W} is smaller than the image {h}x{w}")
        top, left = (H - h) // 2, (W - w) // 2
        return np.pad(img, ((top, H - h - top), (left, W - w - left), (0, 0)), mode="reflect")

    return pad


def add_background_objects(bg: np.ndarray, rng: np.random.Generator, count: tuple[int, int], focal: float) -> None:
    """Render U{count} :func:`~novum.data.objects.background_object` s into ``bg`` (in place), anywhere
    in the frame, at 0.25-0.7x the class objects' scale. They are drawn before the object, so they
    never occlude it: the scene stays unoccluded, only its clutter is richer."""
    h, w = bg.shape[:2]
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        model = compile_shape(background_object(rng))
        pose = np.array([rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(-10, 50)), np.deg2rad(rng.normal(0, 10)),
                         5.0 / rng.uniform(0.25, 0.7)])
        light = rng.normal(0, 0.5, 3) + np.array([0, 0, 1.0])
        rgb, alpha = render(model, pose, focal, (h, w), light / np.linalg.norm(light), ambient=rng.uniform(0.3, 0.6))
        shift = np.float32([[1, 0, rng.uniform(-0.45, 0.45) * w], [0, 1, rng.uniform(-0.45, 0.45) * h]])
        rgb = cv2.warpAffine(rgb * texture(rng, h, w), shift, (w, h))
        alpha = cv2.warpAffine(alpha, shift, (w, h))
        bg *= 1 - alpha[..., None]
        bg += rgb


def mask_box(mask: np.ndarray, ann: dict | None = None) -> np.ndarray:
    """[y0, y1, x0, x1] (end exclusive) of the mask; of the visible keypoints if the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        kp = ann["kp"] if ann is not None else np.zeros((1, 2), int)
        ys, xs = kp[:, 0], kp[:, 1]
    return np.array([ys.min(), ys.max() + 1, xs.min(), xs.max() + 1], dtype=np.int64)
