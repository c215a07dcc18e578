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
import dataclasses
import functools
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from novum.config import MAX_CLUTTER, PASCAL3D_CLASSES, BackboneConfig, PASCAL3D_N_LIST, ModelConfig, config_from_json, upstream_config
from novum.errors import CheckpointError, NovumError
from novum.io import atomic_path
from novum.model import NovumModel
from novum.model.backbone import NovumBackbone
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


def _safetensors(path: Path, what: str, fn):
    """Call into safetensors (Rust): its errors, and the panics pyo3 raises as BaseException, become
    one CheckpointError line."""
    try:
        return fn()
    except NovumError:
        raise
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable .safetensors file ({_short(e)})") from None
    except BaseException as e:  # pyo3's PanicException derives from BaseException
        if type(e).__name__ != "PanicException":
            raise
        raise CheckpointError(f"{path}: not a readable .safetensors file ({what}: {_short(e)})") from None


def read_native_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    def read() -> dict[str, str]:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})

    return _safetensors(Path(path), "header", read)


def native_config(path: str | Path, meta: dict[str, str] | None = None) -> ModelConfig:
    """The ModelConfig of a native checkpoint, checked against its schema (novum.config.MODEL_CONFIG)."""
    meta = read_native_metadata(path) if meta is None else meta
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: a .safetensors file but not a novum checkpoint (no 'format=novum' metadata)")
    return config_from_json(meta["config"], f"{path}: metadata config", "re-save the checkpoint with novum")


def load_native(path: str | Path, device: str | torch.device = "cpu") -> NovumModel:
    from safetensors.torch import load_file

    path = _existing(path)
    config = native_config(path)
    tensors = _safetensors(path, "tensors", lambda: load_file(str(path), device="cpu"))
    meshes = _native_meshes(tensors, config, path)
    try:
        model = NovumModel(config, meshes=meshes)
    except NovumError as e:
        raise CheckpointError(f"{path}: {e}") from None
    state = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    _load_strict(model.backbone, state, path, allowed_unexpected=())
    for name in ("bank", "clutter"):
        t = tensors.get(f"volumes.{name}")
        want = tuple(getattr(model.volumes, name).shape)
        if t is None or tuple(t.shape) != want:
            got = None if t is None else tuple(t.shape)
            raise CheckpointError(f"{path}: volumes.{name} has shape {got}, expected {want}")
        _check_values(f"volumes.{name}", t, path)
        getattr(model.volumes, name).copy_(t)
    return model.to(device).eval()


def _native_meshes(tensors: dict[str, torch.Tensor], config: ModelConfig, path: Path):
    """The class meshes stored in a native checkpoint (all classes or none), checked: verts
    [n_c, 3] finite floats, faces [F, 3] integer indices into them."""
    have = [i for i in range(config.num_classes) if f"mesh.{i}.verts" in tensors or f"mesh.{i}.faces" in tensors]
    if not have:
        return None
    if len(have) != config.num_classes:
        raise CheckpointError(f"{path}: meshes for {len(have)} of {config.num_classes} classes; re-save the checkpoint")
    meshes = []
    for i, n in enumerate(config.n_list):
        v, f = tensors.get(f"mesh.{i}.verts"), tensors.get(f"mesh.{i}.faces")
        if v is None or f is None:
            raise CheckpointError(f"{path}: mesh.{i} lacks its {'verts' if v is None else 'faces'}; re-save the checkpoint")
        if tuple(v.shape) != (n, 3) or not v.is_floating_point():
            raise CheckpointError(f"{path}: mesh.{i}.verts is {v.dtype} {tuple(v.shape)}, expected float ({n}, 3) "
                                  f"(n_list[{i}] = {n})")
        if f.dim() != 2 or f.shape[1] != 3 or f.dtype not in (torch.int32, torch.int64):
            raise CheckpointError(f"{path}: mesh.{i}.faces is {f.dtype} {tuple(f.shape)}, expected integer (F, 3)")
        if f.numel() and (int(f.min()) < 0 or int(f.max()) >= n):
            raise CheckpointError(f"{path}: mesh.{i}.faces index vertices outside 0..{n - 1}")
        _check_values(f"mesh.{i}.verts", v, path)
        meshes.append((v.numpy(), f.numpy()))
    return meshes


def _check_values(name: str, t: torch.Tensor, path: Path) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise CheckpointError(f"{path}: {name} holds NaN or infinite values (a corrupt file); re-save or re-download it")


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
        detail = _unpickling_detail(e)
        if not any(w in detail for w in ("GLOBAL", "safe_globals", "allowlist")):  # damaged bytes or unusual opcodes
            raise CheckpointError(f"{path}: refused to load: damaged, or a pickle the safe loader does not accept "
                                  f"({_short(detail)}); only tensors, containers and argparse.Namespace are accepted") from None
        raise CheckpointError(f"{path}: refused to load: it needs code outside the allow-list ({_short(detail)}); "
                              f"only tensors, containers and argparse.Namespace are accepted") from None
    except MemoryError:
        raise CheckpointError(f"{path}: corrupt checkpoint (it asks for more memory than this machine has)") from None
    except Exception as e:  # the zip reader and the unpickler raise many types on damaged files
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: {_short(e)})") from None


def _unpickling_detail(e: BaseException) -> str:
    """The line of torch's weights_only message that says what was refused (its first lines are a
    general preamble about ``weights_only``)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if not ln.startswith(("Weights only load failed", "Check the documentation")):
            return ln
    return lines[0] if lines else "unpickling failed"


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
    raw_state = ck["state"]
    if not isinstance(raw_state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                   for k, v in raw_state.items()):
        raise CheckpointError(f"{path}: 'state' is not a mapping of weight names to tensors; not an upstream NOVUM checkpoint")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in raw_state.items()}
    memory = ck["memory"]
    if not isinstance(memory, torch.Tensor) or not memory.is_floating_point():
        what = f"a {memory.dtype} tensor" if isinstance(memory, torch.Tensor) else f"a {type(memory).__name__}"
        raise CheckpointError(f"{path}: 'memory' is {what}, expected a float tensor")
    d = cfg.backbone.feature_dim
    rows = cfg.num_vertex_rows
    if memory.dim() != 2 or memory.shape[1] != d or not rows < memory.shape[0] <= rows + MAX_CLUTTER:
        raise CheckpointError(f"{path}: 'memory' has shape {tuple(memory.shape)}, expected "
                              f"({len(classes)}*{cfg.max_n} + clutter, {d}) = ({rows} + 2560, {d})")
    cfg.n_clutter = int(memory.shape[0] - rows)
    # keys and shapes first, against the architecture's shapes (nothing allocated for a wrong file)
    _check_state(_reference_shapes(json.dumps(dataclasses.asdict(cfg.backbone))), state, path,
                 IGNORED_UPSTREAM_PREFIXES, cfg.backbone.arch)
    for k, v in state.items():
        if not k.startswith(IGNORED_UPSTREAM_PREFIXES):
            _check_values(k, v, path)
    _check_values("memory", memory, path)
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


@functools.lru_cache(maxsize=4)
def _reference_shapes(backbone_json: str) -> dict[str, tuple[int, ...]]:
    """Weight names and shapes of a backbone, from a model on the meta device (built once per config)."""
    with torch.device("meta"):
        module = NovumBackbone(BackboneConfig(**json.loads(backbone_json)))
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _check_state(own: dict[str, Any], state: dict[str, torch.Tensor], path, allowed_unexpected, arch: str) -> None:
    """Every weight of ``own`` (name -> shape or tensor) is in ``state`` with its shape, nothing else
    (but the allowed prefixes)."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(tuple(allowed_unexpected))]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} missing weights, e.g. {[_short(k, 60) for k in missing[:3]]}; "
                              f"the file does not hold this architecture ({arch})")
    if unexpected:
        raise CheckpointError(f"{path}: {len(unexpected)} unexpected weights, e.g. {[_short(k, 60) for k in unexpected[:3]]}")
    for k, v in own.items():
        want = tuple(v) if isinstance(v, tuple) else tuple(v.shape)
        if tuple(state[k].shape) != want:
            raise CheckpointError(f"{path}: weight {k} has shape {tuple(state[k].shape)}, expected {want}")


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path, allowed_unexpected) -> None:
    own = module.state_dict()
    _check_state(own, state, path, allowed_unexpected, module.cfg.arch)
    try:
        module.load_state_dict({k: state[k] for k in own}, strict=True)
    except RuntimeError as e:  # e.g. a dtype that cannot be copied into a float weight
        raise CheckpointError(f"{path}: cannot load the weights ({_short(e)})") from None


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
