"""Checkpoints: the native format, import of the official upstream ``.pth``, safe loading.

Native format: one ``.safetensors`` file (no pickle at all) holding
``backbone.*`` weights, ``volumes.bank`` / ``volumes.clutter``, ``mesh.<i>.verts`` / ``mesh.<i>.faces``,
and in its metadata ``format=novum``, ``format_version`` and ``config`` (the ModelConfig as JSON).

Upstream ``.pth`` (``src/train.py:save_checkpoint``): ``{"state": DataParallel state_dict,
"memory": [12*1130 + 2560, 128], "timestamp": int, "args": argparse.Namespace}``, read with
``torch.load(weights_only=True)`` and only ``argparse.Namespace`` allow-listed.
"""
from __future__ import annotations

import argparse
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from novum.config import PASCAL3D_CLASSES, PASCAL3D_N_LIST, ModelConfig, upstream_config
from novum.errors import CheckpointError
from novum.io import atomic_path
from novum.model import NovumModel
from novum.volumes import load_off

FORMAT = "novum"
FORMAT_VERSION = "1"
NATIVE_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
# Globals a checkpoint's pickle may name, beyond torch's own weights_only set.
SAFE_GLOBALS: list[Any] = [argparse.Namespace]
# Upstream state keys that may be present but unused (heads of the e5951fc-era ResNetExt).
IGNORED_UPSTREAM_PREFIXES = ("net.classifier.", "net.pose_estimator.")


def save_native(model: NovumModel, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as one self-contained ``.safetensors`` file, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.backbone.state_dict().items():
        tensors[f"backbone.{k}"] = v.detach().cpu().contiguous()
    tensors["volumes.bank"] = model.volumes.bank.detach().cpu().contiguous()
    tensors["volumes.clutter"] = model.volumes.clutter.detach().cpu().contiguous()
    for i, (v, f) in enumerate(model.volumes.meshes or []):
        tensors[f"mesh.{i}.verts"] = torch.as_tensor(np.asarray(v, dtype=np.float32)).contiguous()
        tensors[f"mesh.{i}.faces"] = torch.as_tensor(np.asarray(f, dtype=np.int64)).contiguous()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(model.config.to_dict())}
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_native_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable .safetensors file ({_short(e)})") from None


def load_native(path: str | Path, device: str | torch.device = "cpu") -> NovumModel:
    from safetensors.torch import load_file

    path = _existing(path)
    meta = read_native_metadata(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: a .safetensors file but not a novum checkpoint (no 'format=novum' metadata)")
    try:
        config = ModelConfig.from_dict(json.loads(meta["config"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in metadata ({_short(e)})") from None
    tensors = load_file(str(path), device="cpu")
    meshes = []
    for i in range(config.num_classes):
        if f"mesh.{i}.verts" in tensors:
            meshes.append((tensors[f"mesh.{i}.verts"].numpy(), tensors[f"mesh.{i}.faces"].numpy()))
    model = NovumModel(config, meshes=meshes or None)
    state = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    _load_strict(model.backbone, state, path, allowed_unexpected=())
    for name in ("bank", "clutter"):
        t = tensors.get(f"volumes.{name}")
        want = tuple(getattr(model.volumes, name).shape)
        if t is None or tuple(t.shape) != want:
            got = None if t is None else tuple(t.shape)
            raise CheckpointError(f"{path}: volumes.{name} has shape {got}, expected {want}")
        getattr(model.volumes, name).copy_(t)
    return model.to(device).eval()


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, containers and :data:`SAFE_GLOBALS` only."""
    path = _existing(path)
    if not zipfile.is_zipfile(path):
        try:
            head = Path(path).read_bytes()[:2]
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
        if head[:1] != b"\x80" and head != b"PK":
            raise CheckpointError(f"{path}: not a checkpoint (neither a torch zip archive nor a pickle)")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unpickling failed"
        raise CheckpointError(f"{path}: refused to load: it needs code outside the allow-list ({_short(first)}); "
                              f"only tensors, containers and argparse.Namespace are accepted") from None
    except (RuntimeError, EOFError, ValueError, AttributeError, ImportError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({_short(e)})") from None


def is_upstream(obj: Any) -> bool:
    return isinstance(obj, dict) and "state" in obj and "memory" in obj


def import_upstream(path: str | Path, n_list: tuple[int, ...] | None = None, mesh_dir: str | Path | None = None,
                    classes: tuple[str, ...] = PASCAL3D_CLASSES, max_n: int | None = None) -> NovumModel:
    """Load the official NOVUM ``.pth`` into a :class:`NovumModel` (strict key and shape checks).

    ``mesh_dir`` is an upstream ``CAD_single`` folder (``<class>/01.off``): its meshes give the
    vertex counts and the exact geometry for pose. Without it, the published counts are used and
    the pose geometry is the approximate cuboid of :func:`novum.volumes.upstream_extents`.
    """
    ck = safe_torch_load(path)
    if not is_upstream(ck):
        keys = sorted(ck)[:5] if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(f"{path}: not an upstream NOVUM checkpoint (expected keys 'state' and 'memory', found {keys})")
    meshes = None
    if mesh_dir is not None:
        meshes = []
        for c in classes:
            off = Path(mesh_dir) / c / "01.off"
            if not off.is_file():
                raise CheckpointError(f"{mesh_dir}: missing mesh {off}; pass the CAD_single folder of PASCAL3D+")
            meshes.append(load_off(off))
        n_list = tuple(len(v) for v, _ in meshes)
    n_list = tuple(n_list or PASCAL3D_N_LIST)
    if len(n_list) != len(classes):
        raise CheckpointError(f"{path}: {len(classes)} classes but {len(n_list)} vertex counts")
    cfg = upstream_config()
    extents = cfg.extents if meshes is None and n_list == PASCAL3D_N_LIST else None
    cfg = ModelConfig(classes=tuple(classes), n_list=n_list, max_n=max_n or max(n_list), extents=extents,
                      input_size=cfg.input_size, backbone=cfg.backbone)
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in ck["state"].items()}
    memory = ck["memory"]
    if not isinstance(memory, torch.Tensor):
        raise CheckpointError(f"{path}: 'memory' is a {type(memory).__name__}, expected a tensor")
    d = cfg.backbone.feature_dim
    rows = cfg.num_vertex_rows
    if memory.dim() != 2 or memory.shape[1] != d or memory.shape[0] <= rows:
        raise CheckpointError(f"{path}: 'memory' has shape {tuple(memory.shape)}, expected "
                              f"({len(classes)}*{cfg.max_n} + clutter, {d}) = ({rows} + 2560, {d})")
    cfg.n_clutter = int(memory.shape[0] - rows)
    model = NovumModel(cfg, meshes=meshes)
    _load_strict(model.backbone, state, path, allowed_unexpected=IGNORED_UPSTREAM_PREFIXES)
    model.volumes.load_memory(memory.float())
    return model.eval()


def load_model(path: str | Path, device: str | torch.device = "cpu", **upstream_kw: Any) -> NovumModel:
    """Load a native ``.safetensors`` checkpoint or an upstream ``.pth`` (detected from its content)."""
    path = _existing(path)
    if path.suffix in NATIVE_SUFFIXES:
        return load_native(path, device)
    if path.suffix in TORCH_SUFFIXES:
        return import_upstream(path, **upstream_kw).to(device)
    raise CheckpointError(f"{path}: unknown checkpoint type '{path.suffix}'; expected .safetensors (novum) or .pth (upstream)")


def checkpoint_kind(path: str | Path) -> str:
    """'native' or 'upstream' from the file name, without loading it."""
    return "native" if Path(path).suffix in NATIVE_SUFFIXES else "upstream"


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path, allowed_unexpected) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(tuple(allowed_unexpected))]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} missing weights, e.g. {missing[:3]}; "
                              f"the file does not hold this architecture ({module.cfg.arch})")
    if unexpected:
        raise CheckpointError(f"{path}: {len(unexpected)} unexpected weights, e.g. {unexpected[:3]}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: weight {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    module.load_state_dict({k: state[k] for k in own}, strict=True)


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, expected a checkpoint file")
    return p


def _short(e: Any, n: int = 160) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= n else s[: n - 3] + "..."
