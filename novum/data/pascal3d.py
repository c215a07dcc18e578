"""PASCAL3D+ in the NeMo-preprocessed layout (docs/upstream.md section 7), as Samples.

Reads ``<root>/images/<dir>/<name>``, ``<root>/annotations/<dir>/<stem>.npz`` (merged with
``annotations3D_single/<dir>/<stem>.npz`` when present) and the list ``lists3D_single/<dir>/mesh01.txt``
(else ``lists/<dir>/mesh01.txt``, else every image in the folder); ``<dir>`` is the category, suffixed
``FGLn_BGLn`` for an OccludedPASCAL3D+ level. Works on the real NeMo data and on what
:func:`novum.data.writer.write_dataset` writes.

Images are resized to the model's input size when they differ (same aspect, e.g. the 640x800 crops
for a 128x160 model), with keypoints and box scaled. Keypoints must be the vertices of the model's
meshes: the annotated ``cropped_kp_list`` is used when it has the model's vertex count, otherwise they
are recomputed from the annotated angles with the model's cuboid and the crop framing (object at the
image centre, ``config.focal``, ``config.distance``; the NeMo crops are scaled to that distance).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from novum.config import ModelConfig, upstream_config
from novum.data.keypoints import annotate, class_mesh
from novum.data.sample import Sample
from novum.data.writer import LIST_NAME, category_dir, read_meta
from novum.errors import InputError

IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp")


def list_files(root: Path, cat_dir: str, list_name: str = LIST_NAME) -> list[str]:
    for sub in ("lists3D_single", "lists"):
        p = root / sub / cat_dir / list_name
        if p.is_file():
            try:
                names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"{p}: unreadable image list ({e}); re-generate or re-download the dataset") from None
            for n in names:   # file names in the category's folder, never paths elsewhere
                if n in (".", "..") or any(c in n for c in "/\\\0"):
                    raise InputError(f"{p}: {n[:80]!r} is not a file name; lists hold image names, one per line")
            return names
    img_dir = root / "images" / cat_dir
    if img_dir.is_dir():
        return sorted(f.name for f in img_dir.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    return []


def load_annotation(root: Path, cat_dir: str, stem: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    found = False
    for sub in ("annotations", "annotations3D_single"):
        p = root / sub / cat_dir / f"{stem}.npz"
        if p.is_file():
            found = True
            try:
                with np.load(p, allow_pickle=False) as z:
                    for k in z.files:
                        try:
                            out[k] = z[k]
                        except ValueError:  # object arrays (NeMo stores occ_mask=None); not needed here
                            pass
            except (OSError, ValueError) as e:
                raise InputError(f"{p}: unreadable annotation ({e}); re-generate or re-download it") from None
    if not found:
        raise InputError(f"{root}/annotations/{cat_dir}/{stem}.npz is missing; is {root} a NeMo-layout dataset root?")
    return out


class Pascal3DDataset:
    """A NeMo-layout dataset root as a sequence of :class:`Sample` (images resized to the model input)."""

    def __init__(self, root: str | Path, classes: Sequence[str] | None = None, model_config: ModelConfig | None = None,
                 occlusion: str | None = None, keypoints: str = "auto", list_name: str = LIST_NAME) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"dataset root {self.root} does not exist; pass the folder holding images/ and annotations/")
        if keypoints not in ("auto", "annotation", "pose"):
            raise InputError(f"keypoints='{keypoints}' is not one of auto, annotation, pose")
        self.meta = read_meta(self.root)
        if model_config is None:
            mc = self.meta.get("model_config")
            model_config = ModelConfig.from_dict(mc, f"{self.root / 'novum_dataset.json'}: model_config") if mc \
                else upstream_config()
        if model_config.extents is None:
            raise InputError("the model config has no cuboid extents; use a config made by novum.config")
        self.model_config = model_config
        self.keypoints = keypoints
        self.occlusion = occlusion
        self.novum_written = self.meta.get("writer") == "novum"
        explicit = classes is not None
        classes = tuple(classes) if explicit else tuple(model_config.classes)
        unknown = [c for c in classes if c not in model_config.classes]
        if unknown:
            raise InputError(f"classes {unknown} are not in the model's classes {list(model_config.classes)}")
        self.items: list[tuple[int, str, str]] = []
        missing = []
        for cat in classes:
            d = category_dir(cat, occlusion)
            files = list_files(self.root, d, list_name)
            if not files:
                missing.append(d)
            self.items += [(model_config.classes.index(cat), d, f) for f in files]
        if (explicit and missing) or not self.items:
            raise InputError(f"no images for {missing} under {self.root}/images; check the root, classes and occlusion level")
        self.classes = tuple(model_config.classes)
        self.present = tuple(c for c in classes if category_dir(c, occlusion) not in missing)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> Sample:
        label, d, fname = self.items[i]
        path = self.root / "images" / d / fname
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{path}: missing or not an image; re-generate or re-download the dataset")
        stem = Path(fname).stem
        ann = load_annotation(self.root, d, stem)
        h0, w0 = img.shape[:2]
        h, w = self.model_config.input_size
        s = h / h0
        if (h0, w0) != (h, w):
            if abs(w0 * s - w) > 1:
                raise InputError(f"{path}: image {h0}x{w0} does not have the model input's aspect {h}x{w}; "
                                 f"use crops made for it")
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        a, e, t = (float(np.asarray(ann.get(k, 0.0))) for k in ("azimuth", "elevation", "theta"))
        dist = float(np.asarray(ann.get("distance", self.model_config.distance))) if self.novum_written \
            else float(self.model_config.distance)
        pose = np.array([a, e, t, dist], dtype=np.float32)
        n = self.model_config.n_list[label]
        kp_ann = ann.get("cropped_kp_list")
        use_ann = self.keypoints != "pose" and kp_ann is not None and len(kp_ann) == n and "visible" in ann
        if self.keypoints == "annotation" and not use_ann:
            raise InputError(f"{path}: the annotation has no cropped_kp_list with {n} vertices for this model; "
                             f"use keypoints='pose' to recompute them from the angles")
        if use_ann:
            kp = np.floor((np.asarray(kp_ann, np.float64) + 0.5) * s).astype(np.int64)
            kp[:, 0] = np.clip(kp[:, 0], 0, h - 1)
            kp[:, 1] = np.clip(kp[:, 1], 0, w - 1)
            visible = np.asarray(ann["visible"]).astype(bool)
            kw = ann.get("kp_weights")
            weights = np.asarray(kw, np.float32) if kw is not None and len(kw) == n else None
        else:
            mesh = class_mesh(tuple(self.model_config.extents[label]), n)[0]
            r = annotate(mesh, pose.astype(np.float64), self.model_config.focal, (h, w))
            kp, visible, weights = r["kp"], r["visible"], r["kp_weights"]
        mask = self._mask(ann.get("obj_mask"), (h, w))
        occ = self._mask(ann.get("occluder_mask"), (h, w))
        if "box_obj" in ann:
            b = np.asarray(ann["box_obj"], np.float64)[:4] * s
            box = np.array([np.floor(b[0]), np.ceil(b[1]), np.floor(b[2]), np.ceil(b[3])], dtype=np.int64)
            box = np.clip(box, 0, [h, h, w, w])
        else:
            box = np.array([kp[:, 0].min(), kp[:, 0].max() + 1, kp[:, 1].min(), kp[:, 1].max() + 1], np.int64)
        return Sample(image=img, label=label, kp=kp, visible=visible, pose=pose, box=box, mask=mask, occluder=occ,
                      name=stem, kp_weights=weights)

    @staticmethod
    def _mask(m, size: tuple[int, int]) -> np.ndarray | None:
        if m is None or np.asarray(m).ndim != 2:
            return None
        m = np.asarray(m).astype(np.uint8)
        if m.shape != tuple(size):
            m = cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        return m
