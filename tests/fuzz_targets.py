"""Valid seed files and the readers the fuzzer aims at (tests/fuzzing.py, tests/test_fuzz.py).

Seeds are tiny on purpose (a 2-class 32x40 model, 64x80 images, a 6-frame clip) so that a few
hundred cases run in CI. A target reads one case the way novum does and checks what it got; it
returns normally (a correct result) or raises (a NovumError is the accepted way to fail). Targets
that run in a child process (``run_in_child``) find their context (seed model, key) through
environment variables, set by :func:`child_env`.
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from novum.errors import InputError

H, W = 32, 40                       # the tiny model's input
CLASSES = ("car", "bus")


@functools.lru_cache(maxsize=None)
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="novum-fuzz-seeds-"))


# ----------------------------------------------------------------------------------------------
# seeds


def tiny_config():
    from novum.config import small_config

    return small_config(classes=CLASSES, input_size=(H, W), vertices=30, width=4, feature_dim=8)


@functools.lru_cache(maxsize=None)
def tiny_native() -> Path:
    import torch

    from novum.checkpoint import save_native
    from novum.model import NovumModel

    model = NovumModel(tiny_config(), generator=torch.Generator().manual_seed(0)).eval()
    return save_native(model, workdir() / "tiny.safetensors")


@functools.lru_cache(maxsize=None)
def tiny_onnx() -> Path:
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    path = workdir() / "tiny.onnx"
    export_onnx(load_model(tiny_native()), path, features=True, max_batch=2)
    return path


@functools.lru_cache(maxsize=None)
def tiny_upstream_pth() -> Path:
    """An upstream-layout .pth with a few tensors: the layout (state, memory, timestamp, args),
    not the ResNet-50 (import_upstream then stops at the strict weight check, with one line)."""
    import argparse

    import torch

    g = torch.Generator().manual_seed(0)
    state = {"module.net.extractor.0.weight": torch.randn(4, 3, 7, 7, generator=g),
             "module.net.extractor.1.running_mean": torch.zeros(4),
             "module.out_layer.weight": torch.randn(8, 8, generator=g)}
    ck = {"state": state, "memory": torch.randn(12 * 1130 + 8, 128, generator=g)[:, :128].contiguous(),
          "timestamp": 1664150400, "args": argparse.Namespace(lr=1e-4, batch_size=38, config="config/defaults.yaml")}
    path = workdir() / "tiny_upstream.pth"
    torch.save(ck, path)
    return path


def seed_frames(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    out = np.empty((n, 64, 80, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (xx * 3 + i * 10) % 256
        out[i, ..., 1] = (yy * 4) % 256
        out[i, ..., 2] = rng.integers(0, 256, (64, 80))
    return out


@functools.lru_cache(maxsize=None)
def seed_image(fmt: str) -> bytes:
    import cv2

    ok, buf = cv2.imencode("." + fmt, seed_frames(1)[0])
    assert ok
    return buf.tobytes()


@functools.lru_cache(maxsize=None)
def seed_video() -> bytes:
    import cv2

    path = workdir() / "clip.mp4"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (80, 64))
    for f in seed_frames(6):
        wr.write(f)
    wr.release()
    return path.read_bytes()


@functools.lru_cache(maxsize=None)
def tiny_dataset() -> Path:
    """A NeMo-layout dataset of the tiny model (2 images per class), written by novum."""
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset
    from novum.data.writer import write_dataset

    ds = SyntheticDataset(SyntheticConfig(per_class=1, image_size=(H, W), supersample=1), tiny_config())
    return write_dataset(ds, workdir() / "dataset", progress=False)


# ----------------------------------------------------------------------------------------------
# targets: read one case as novum does, check the result


def native_checkpoint(path: Path) -> None:
    from novum.checkpoint import load_model

    m = load_model(path)
    cfg = m.config
    assert m.volumes.bank.shape == (cfg.num_vertex_rows, cfg.backbone.feature_dim)
    for v, f in m.volumes.meshes or []:
        assert v.ndim == 2 and v.shape[1] == 3 and f.ndim == 2 and f.shape[1] == 3


def upstream_checkpoint(path: Path) -> None:
    from novum.checkpoint import import_upstream

    import_upstream(path)


def onnx_model(path: Path) -> None:
    """The ONNX file as novum-run opens it (metadata, ONNX Runtime, one frame)."""
    from novum.contracts.onnx_file import read_metadata
    from novum.runtime.backends import load

    read_metadata(path)
    with load(path, intra_op_threads=1) as b:
        h, w = b.input_size
        out = b.infer(np.zeros((1, h, w, 3), np.uint8))
        assert out["scores"].shape == (1, len(b.classes))


def _frames_of(spec: Path) -> None:
    from novum.contracts.framing import Framer
    from novum.runtime.sources import open_source

    framer = Framer((H, W))
    with open_source(spec) as src:
        n = 0
        for f in src:
            assert f.image.dtype == np.uint8 and f.image.ndim == 3 and f.image.shape[2] == 3
            x, _ = framer(f.image)
            assert x.shape == (H, W, 3)
            n += 1
            if n > 1000:
                raise AssertionError("more than 1000 frames from a 6-frame clip")
        if src.error:
            raise InputError(src.error)


def image_file(path: Path) -> None:
    _frames_of(path)


def video_file(path: Path) -> None:
    _frames_of(path)


def child_env() -> dict[str, str]:
    return {"OMP_NUM_THREADS": "1", "OPENCV_FFMPEG_LOGLEVEL": "-8", "OPENCV_LOG_LEVEL": "SILENT"}


# ----------------------------------------------------------------------------------------------
# JSON files: seeds (what novum writes) and targets (what novum does with them)


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=1))
    return path


def seed_model_config() -> dict:
    from novum.config import upstream_config

    return upstream_config().to_dict()


def model_config_text(path: Path) -> None:
    """A checkpoint's ``config`` metadata (JSON text), read as load_native reads it; the config is
    then used the way the model uses it (bank shape, meshes)."""
    from novum.config import config_from_json

    cfg = config_from_json(path.read_bytes().decode("utf-8", "replace"), f"{path}: metadata config")
    assert cfg.num_vertex_rows == cfg.num_classes * cfg.max_n
    assert len(cfg.n_list) == cfg.num_classes and max(cfg.n_list) <= cfg.max_n
    assert (cfg.num_vertex_rows + cfg.n_clutter) * cfg.backbone.feature_dim <= 1 << 27


SIDECAR_TRT = "10.13.0.35"
SIDECAR_GPU = ("NVIDIA GeForce RTX 4090", (8, 9))


def seed_sidecar() -> dict:
    """The sidecar novum-export writes (export.tensorrt.sidecar_info) for the tiny model."""
    from novum.contracts.sidecar import SIDECAR_VERSION

    cfg = tiny_config().to_dict()
    return {"sidecar_version": SIDECAR_VERSION, "tensorrt_version": SIDECAR_TRT, "gpu_name": SIDECAR_GPU[0],
            "compute_capability": list(SIDECAR_GPU[1]), "precision": "fp16", "strict_fp32": False,
            "version_compatible": False, "hardware_compatibility": "none",
            "profile": {"images": [[1, H, W, 3], [2, H, W, 3], [2, H, W, 3]]},
            "onnx": "tiny_fp16.onnx", "onnx_sha256": "ab" * 32, "source_sha256": "cd" * 32,
            "classes": list(CLASSES), "input_size": [H, W], "input_format": "uint8 BGR NHWC",
            "outputs": ["scores", "vertex", "vertex_score"], "config": json.loads(json.dumps(cfg)),
            "novum_version": "0.1.0", "rebuild_command": "novum-export --checkpoint tiny.safetensors --engine --fp16"}


def sidecar_file(path: Path) -> None:
    """A sidecar as the TensorRT backend reads it before deserialising the plan: checked against
    this machine (the seed's TensorRT and GPU), then its model config."""
    from novum.contracts.sidecar import check_sidecar, sidecar_config

    engine = path.with_suffix(".engine")
    side_path = Path(str(engine) + ".json")
    os.replace(path, side_path)
    try:
        side = check_sidecar(engine, SIDECAR_TRT, SIDECAR_GPU[0], SIDECAR_GPU[1])
        cfg = sidecar_config(side, engine)
    finally:
        os.replace(side_path, path)
    assert 0 < len(cfg["classes"]) and len(cfg["input_size"]) == 2
    assert isinstance(side["warnings"], list)


CACHE_KEY = "0f" * 32


def seed_cache() -> dict:
    """A calibration cache as novum.calibration.cache.save writes it, around ONNX Runtime's own
    TensorsData JSON (save_tensors_data) with min/max and histogram entries."""
    import numpy as np
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData, save_tensors_data

    rng = np.random.default_rng(0)
    data = {}
    for i in range(3):
        lo, hi = np.float32(-rng.random()), np.float32(rng.random() + 0.5)
        data[f"/backbone/conv{i}/Conv_output_0"] = TensorData(lowest=np.array(lo), highest=np.array(hi))
    hist = rng.integers(0, 50, 16).astype(np.int64)
    data["images_cast"] = TensorData(lowest=np.array(np.float32(0)), highest=np.array(np.float32(255)), hist=hist,
                                     hist_edges=np.linspace(0, 255, 17).astype(np.float32), bins=16)
    out = workdir() / "ranges.json"
    save_tensors_data(TensorsData(CalibrationMethod.Percentile, data), out)
    return {"key": CACHE_KEY, "method": "percentile", "samples": ["demo:0", "demo:1"],
            "tensors": json.loads(out.read_text())}


def cache_file(path: Path) -> None:
    """A cache entry as quantize_int8 uses it: loaded (None = stale, calibrate again), its ranges
    handed to ONNX Runtime's reader (TensorsData.from_dict), each tensor's range read."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    from novum.calibration import cache as calib_cache

    entry = calib_cache.load(path, CACHE_KEY)
    if entry is None:
        return
    ranges = path.with_suffix(".ranges")
    ranges.write_text(json.dumps(entry.tensors))
    try:
        td = load_tensors_data(ranges)
    finally:
        ranges.unlink()
    for name, t in td.data.items():
        lo, hi = t.range_value
        assert float(np.min(lo)) <= float(np.max(hi)), name


def seed_dataset_meta() -> dict:
    return json.loads((tiny_dataset() / "novum_dataset.json").read_text())


def dataset_meta_file(path: Path) -> None:
    """``novum_dataset.json`` as the Pascal3D loader reads it (the tiny dataset, this file swapped
    in): the dataset opens and yields its first sample in the model's framing."""
    from novum.data.pascal3d import Pascal3DDataset

    root = tiny_dataset()
    meta = root / "novum_dataset.json"
    keep = meta.read_bytes()
    meta.write_bytes(path.read_bytes())
    try:
        ds = Pascal3DDataset(root)
        if len(ds):
            s = ds[0]
            assert s.image.shape[:2] == tuple(ds.model_config.input_size)
    finally:
        meta.write_bytes(keep)


# ----------------------------------------------------------------------------------------------
# ONNX metadata: value-level mutations written into the tiny export


def onnx_metadata_cases(n: int, seed: int) -> list[tuple[bytes, str]]:
    """``n`` copies of the tiny export whose metadata_props (JSON values decoded) were mutated."""
    import onnx

    import fuzzing as F

    proto = onnx.load(str(tiny_onnx()))
    raw = {p.key: p.value for p in proto.metadata_props}
    decoded = {}
    for k, v in raw.items():
        try:
            decoded[k] = json.loads(v)
        except ValueError:
            decoded[k] = v

    def dump(obj) -> bytes:
        del proto.metadata_props[:]
        for k, v in obj.items():
            p = proto.metadata_props.add()
            p.key = str(k)[:1000]
            p.value = v if isinstance(v, str) else json.dumps(v)
        return proto.SerializeToString()

    return F.json_cases(decoded, n, seed, dump=dump, byte_share=0.0)
