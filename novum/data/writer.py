"""Write a dataset of :class:`~novum.data.sample.Sample` to disk in the NeMo-preprocessed layout.

``<root>/images/<dir>/<name>.png`` (or ``.JPEG``), ``<root>/annotations/<dir>/<name>.npz`` and
``<root>/lists/<dir>/mesh01.txt`` where ``<dir>`` is the category, suffixed ``FGLn_BGLn`` for occlusion
level Ln as in OccludedPASCAL3D+. Annotation keys follow docs/upstream.md section 7
(``cropped_kp_list``, ``visible``, ``kp_weights``, ``azimuth``, ``elevation``, ``theta``, ``distance``,
``box_obj``, ``box``, ``focal``, ``principal``, ...) plus ``obj_mask`` / ``occluder_mask`` when known.
Every file is written atomically; the lists (what loaders read) are written last, so an interrupted
run never lists a half-written sample. ``novum_dataset.json`` records how the data was made.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from novum.config import CLASSES, MODEL_CONFIG
from novum.contracts.schema import AnyJson, Int, Nullable, Num, Obj, Str, load_json_file
from novum.data.sample import Sample
from novum.errors import InputError
from novum.io import atomic_write_bytes, atomic_write_text

META_FILE = "novum_dataset.json"
LIST_NAME = "mesh01.txt"
MAX_META_BYTES = 16 << 20         # novum writes ~3 kB
META_FIX = f"re-generate the dataset with novum-data, or delete {META_FILE} to read it as plain NeMo data"

# what write_dataset records; readers use model_config and writer, the rest is for people (and
# callers' extra keys, kept as they are)
DATASET_META = Obj({
    "format": Str(64),
    "writer": Str(64),
    "classes": CLASSES,
    "occlusion": Nullable(Str(16, pattern=r"L[0-9]", what="an occlusion level such as L1")),
    "focal": Nullable(Num(0, 1e7, gt=True)),
    "count": Int(0, 1 << 40),
    "image_format": Str(choices=("png", "jpg")),
    "synthetic": AnyJson((dict,), "an object"),
    "model_config": MODEL_CONFIG,
})


def read_meta(root: str | Path) -> dict:
    """``novum_dataset.json`` of a dataset root, checked against :data:`DATASET_META` ({} when the
    root has none, as plain NeMo data); a wrong value is one SchemaError line naming the field."""
    p = Path(root) / META_FILE
    if not p.is_file():
        return {}
    return load_json_file(p, DATASET_META, MAX_META_BYTES, "dataset description", META_FIX)


def category_dir(cat: str, occlusion: str | None = None) -> str:
    """``car`` or, for occlusion level ``L2``, ``carFGL2_BGL2`` (OccludedPASCAL3D+ naming)."""
    if not occlusion:
        return cat
    n = occlusion[1:]
    return f"{cat}FGL{n}_BGL{n}"


def annotation_arrays(s: Sample, focal: float | None = None) -> dict[str, np.ndarray]:
    """The section-7 annotation keys of one sample (angles in radians)."""
    h, w = s.image.shape[:2]
    a, e, t, d = (float(v) for v in s.pose)
    out = {
        "name": np.array(s.name),
        "cropped_kp_list": np.asarray(s.kp, dtype=np.int64),
        "visible": np.asarray(s.visible, dtype=bool),
        "kp_weights": (np.asarray(s.kp_weights, dtype=np.float32) if s.kp_weights is not None
                       else np.ones(len(s.kp), np.float32)),
        "azimuth": np.float64(a), "elevation": np.float64(e), "theta": np.float64(t), "distance": np.float64(d),
        "box_obj": np.array([*[int(v) for v in s.box], h, w], dtype=np.float32),
        "box": np.array([0, h, 0, w, h, w], dtype=np.float32),
        "principal": np.array([w / 2, h / 2], dtype=np.float64),
        "height": np.int64(h), "width": np.int64(w), "cad_index": np.int64(1), "label": np.int64(s.label),
    }
    if focal is not None:
        out["focal"] = np.float64(focal)
        out["viewport"] = np.float64(1.0)
    if s.mask is not None:
        out["obj_mask"] = np.asarray(s.mask, dtype=np.uint8)
    if s.occluder is not None:
        out["occluder_mask"] = np.asarray(s.occluder, dtype=np.uint8)
    return out


def encode_image(image: np.ndarray, fmt: str) -> tuple[bytes, str]:
    ext, params = (".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]) if fmt == "png" else (".JPEG", [cv2.IMWRITE_JPEG_QUALITY, 95])
    ok, buf = cv2.imencode(".png" if fmt == "png" else ".jpg", image, params)
    if not ok:
        raise InputError(f"could not encode an image of shape {image.shape} as {fmt}")
    return buf.tobytes(), ext


def write_sample(root: Path, s: Sample, cat_dir: str, fmt: str = "png", focal: float | None = None) -> str:
    """Write one sample's image and annotation; returns the listed file name (``<name>.png``)."""
    data, ext = encode_image(s.image, fmt)
    img_dir, ann_dir = root / "images" / cat_dir, root / "annotations" / cat_dir
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(img_dir / f"{s.name}{ext}", data)
    buf = io.BytesIO()
    np.savez_compressed(buf, **annotation_arrays(s, focal))
    atomic_write_bytes(ann_dir / f"{s.name}.npz", buf.getvalue())
    return f"{s.name}{ext}"


def write_dataset(dataset: Sequence[Sample], root: str | Path, progress: bool = True, fmt: str = "png",
                  classes: Sequence[str] | None = None, occlusion: str | None = None, focal: float | None = None,
                  meta: dict | None = None, indices: Iterable[int] | None = None, workers: int = 1) -> Path:
    """Write every sample of ``dataset`` (a sequence of Sample, e.g. a SyntheticDataset) under ``root``.

    ``classes`` name the labels (default ``dataset.classes``); ``occlusion`` and ``focal`` default to
    the dataset's own (``dataset.cfg.occlusion``, ``dataset.focal``). ``workers`` > 1 renders and
    writes in that many processes (the dataset must be picklable). Returns ``root``.
    """
    if fmt not in ("png", "jpg"):
        raise InputError(f"unknown image format '{fmt}'; use png or jpg")
    root = Path(root)
    classes = tuple(classes if classes is not None else getattr(dataset, "classes", ()))
    if not classes:
        raise InputError("write_dataset needs the class names: pass classes=[...]")
    cfg = getattr(dataset, "cfg", None)
    occlusion = occlusion if occlusion is not None else getattr(cfg, "occlusion", None)
    focal = focal if focal is not None else getattr(dataset, "focal", None)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder {root} ({e.strerror}); pick a writable --out") from None
    idx = list(range(len(dataset))) if indices is None else list(indices)
    listed: dict[str, list[str]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(idx), desc=f"writing {root}", unit="img")
    chunks = [idx[k:k + 32] for k in range(0, len(idx), 32)]
    job = (dataset, root, classes, occlusion, fmt, focal)
    if workers > 1 and len(chunks) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as ex:
            results = ex.map(_write_chunk, [(job, c) for c in chunks])
            for res in results:
                _collect(listed, res, bar)
    else:
        for c in chunks:
            _collect(listed, _write_chunk((job, c)), bar)
    if bar is not None:
        bar.close()
    for d, names in listed.items():
        lst = root / "lists" / d
        lst.mkdir(parents=True, exist_ok=True)
        atomic_write_text(lst / LIST_NAME, "".join(n + "\n" for n in names))
    info = {"format": "nemo", "writer": "novum", "classes": list(classes), "occlusion": occlusion, "focal": focal,
            "count": len(idx), "image_format": fmt}
    if cfg is not None:
        from dataclasses import asdict

        info["synthetic"] = json.loads(json.dumps(asdict(cfg), default=str))
    mc = getattr(dataset, "model_config", None)
    if mc is not None:
        info["model_config"] = json.loads(json.dumps(mc.to_dict(), default=str))
    info.update(meta or {})
    atomic_write_text(root / META_FILE, json.dumps(info, indent=1))
    return root


def _write_chunk(args) -> list[tuple[str, str]]:
    (dataset, root, classes, occlusion, fmt, focal), indices = args
    out = []
    for i in indices:
        s = dataset[i]
        d = category_dir(classes[s.label], occlusion)
        out.append((d, write_sample(root, s, d, fmt, focal)))
    return out


def _collect(listed: dict[str, list[str]], res: list[tuple[str, str]], bar) -> None:
    for d, name in res:
        listed.setdefault(d, []).append(name)
    if bar is not None:
        bar.update(len(res))
