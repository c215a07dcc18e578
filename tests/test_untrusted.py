"""Files that travel with models are untrusted: each reader's schema refuses wrong and hostile
values with one NovumError line naming the file and the field (issue 14). Cases the fuzzer found
(tests/test_fuzz.py) are kept here as named regressions."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import fuzz_targets as T
from novum.config import MAX_VERTICES, ModelConfig, check_model_config, config_from_json, upstream_config
from novum.contracts.schema import SchemaError, parse_json, parse_yaml
from novum.errors import CheckpointError, InputError, NovumError


def one_line(exc: pytest.ExceptionInfo, *words: str) -> str:
    msg = str(exc.value)
    assert isinstance(exc.value, NovumError)
    assert "\n" not in msg and len(msg) < 600, msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


# ----------------------------------------------------------------------------------------------
# the model config (checkpoint metadata, ONNX novum_config, sidecar, dataset, Triton parameters)

def _cfg(**change) -> dict:
    d = json.loads(json.dumps(upstream_config().to_dict()))
    d.update(change)
    return d


@pytest.mark.parametrize("change, words", [
    ({"max_n": 10 ** 9}, ["max_n", "65536"]),
    ({"max_n": -3}, ["max_n"]),
    ({"input_size": [-640, 800]}, ["input_size[0]", "[1, 4096]"]),
    ({"input_size": [641, 800]}, ["input_size", "multiples of the stride"]),
    ({"classes": ["car"] * 3}, ["classes[1]", "repeats"]),
    ({"classes": [f"c{i}" for i in range(10 ** 6)]}, ["classes", "1024"]),
    ({"classes": ["../../etc"] + list(upstream_config().classes[1:])}, ["classes[0]", "without /"]),
    ({"classes": ["ca\x1b[31mr"] + list(upstream_config().classes[1:])}, ["classes[0]", "control characters"]),
    ({"n_list": [1130] * 11}, ["n_list", "11 entries for 12 classes"]),
    ({"n_clutter": 10 ** 7}, ["n_clutter"]),
    ({"extents": [[0, 1, 0, 1, 1, 0]] * 12}, ["extents[0]", "not a cuboid"]),
    ({"std": [0.2, 0.0, 0.2]}, ["std[1]", "> 0"]),
    ({"focal": 1e300}, ["focal"]),
    ({"backbone": {"width": 512, "layers": [64, 64, 64, 64]}}, ["backbone", "weights"]),
    ({"backbone": {"feature_dim": 1024}, "max_n": 65536, "classes": [f"c{i}" for i in range(12)]}, ["max_n", "feature bank"]),
    ({"backbone": {"arch": "x", "cmd": "rm -rf /"}}, ["backbone.cmd", "not a known field"]),
    ({"framing": {"object_fill": 50, "centre_offset": [0, 0]}}, ["framing.object_fill"]),
    ({"framing": "centre"}, ["framing", "framing record"]),
    ({"trained_input_size": [0, 5]}, ["trained_input_size[0]"]),
    ({"backbone": {"stages": 2, "decoder_out": 7}}, ["backbone.decoder_out", "2-stage"]),
    ({"backbone": {"stages": 5}}, ["backbone.stages"]),
])
def test_model_config_schema_refuses(change, words):
    with pytest.raises(SchemaError) as e:
        ModelConfig.from_dict(_cfg(**change), "m.safetensors: metadata config", "re-save it")
    msg = one_line(e, "m.safetensors: metadata config", *words)
    assert len(msg) < 400   # values shown shortened, never dumped whole


def test_model_config_accepts_what_novum_writes():
    for cfg in (upstream_config(), T.tiny_config()):
        d = json.loads(json.dumps(cfg.to_dict()))
        assert ModelConfig.from_dict(d) == cfg
    assert ModelConfig.from_dict({**_cfg(), "from_a_newer_novum": 1}).max_n == 1130   # unknown top-level keys ignored


@pytest.mark.parametrize("text, words", [
    ("{", ["not valid JSON"]),
    ('{"classes": NaN}', ["not valid JSON", "NaN"]),
    ('{"max_n": 1e999}', ["not valid JSON", "out of range"]),
    ("[" * 100_000 + "]" * 100_000, ["not valid JSON", "nested too deeply"]),
    ("1" * 5000, ["not valid JSON"]),                 # an integer of 5000 digits
    ("[1, 2]", ["must be an object"]),
])
def test_config_json_text_refused(text, words):
    with pytest.raises(SchemaError) as e:
        config_from_json(text, "m.onnx: novum_config")
    one_line(e, "m.onnx: novum_config", *words)


def test_config_json_text_too_big():
    with pytest.raises(SchemaError) as e:
        config_from_json(" " * (2 << 20) + "{}", "m.safetensors: metadata config")
    one_line(e, "at most", "bytes")


def test_check_model_config_shows_values_short():
    with pytest.raises(SchemaError) as e:
        check_model_config(_cfg(classes="x" * 100_000), "f.json")
    one_line(e, "100000 characters")


# ----------------------------------------------------------------------------------------------
# ONNX metadata_props


def _props(**change) -> dict[str, str]:
    from novum.contracts.onnx_file import read_raw_metadata

    props = dict(read_raw_metadata(T.tiny_onnx()))
    props.update(change)
    return props


def test_onnx_metadata_of_an_export_decodes():
    from novum.contracts.onnx_file import decode_metadata

    meta = decode_metadata(_props(), "tiny.onnx")
    assert meta["config"].framing["pad"] == "zero"      # the export records the framing
    assert dataclasses.replace(meta["config"], framing=None) == T.tiny_config()
    assert meta["classes"] == list(T.CLASSES) and meta["input_size"] == [T.H, T.W] and meta["max_batch"] == 2


@pytest.mark.parametrize("change, words", [
    ({"novum_config": "{not json"}, ["novum_config", "not valid JSON"]),
    ({"max_n": "1000000000"}, ["max_n", "integer in [1, 65536]"]),
    ({"max_n": "-5"}, ["max_n"]),
    ({"max_batch": "0"}, ["max_batch"]),
    ({"precision": "int4"}, ["precision", "fp32"]),
    ({"input_size": "[-32, 40]"}, ["input_size"]),
    ({"input_size": "[64, 80]"}, ["input_size", "disagrees with novum_config"]),
    ({"classes": json.dumps(["car", "bus", "train"])}, ["classes", "disagrees"]),
    ({"classes": json.dumps(["x"] * 10 ** 6)}, ["classes", "characters, more than"]),
    ({"outputs": '["scores", "rm"]'}, ["outputs[1]"]),
    ({"source_sha256": "../../x"}, ["source_sha256", "sha256"]),
    ({"opset": "17; rm"}, ["opset"]),
    ({"precision": "int8", "int8_target": "cuda"}, ["int8_target"]),
])
def test_onnx_metadata_schema_refuses(change, words):
    from novum.contracts.onnx_file import decode_metadata

    with pytest.raises(SchemaError) as e:
        decode_metadata(_props(**change), "m.onnx")
    one_line(e, "m.onnx", *words, "re-export")


def test_onnx_metadata_bounds_entries_and_sizes():
    from novum.contracts.onnx_file import MAX_PROPS, decode_metadata

    with pytest.raises(SchemaError) as e:
        decode_metadata({**_props(), **{f"k{i}": "v" for i in range(MAX_PROPS)}}, "m.onnx")
    one_line(e, "metadata_props entries")
    with pytest.raises(SchemaError) as e:
        decode_metadata({**_props(), "k" * 1000: "v"}, "m.onnx")
    one_line(e, "key of 1000 characters")
    with pytest.raises(NovumError) as e:
        decode_metadata({"producer": "someone else"}, "m.onnx")
    one_line(e, "without novum metadata")


def _onnx_with(tmp_path: Path, **change) -> Path:
    import onnx

    proto = onnx.load(str(T.tiny_onnx()))
    del proto.metadata_props[:]
    for k, v in _props(**change).items():
        p = proto.metadata_props.add()
        p.key, p.value = k, v
    path = tmp_path / "hostile.onnx"
    onnx.save(proto, str(path))
    return path


def test_onnx_backend_refuses_hostile_metadata(tmp_path):
    """novum-run's ONNX Runtime backend: one line before any allocation the metadata asks for."""
    from novum.runtime.backends import load

    cfg = json.loads(_props()["novum_config"])
    cfg["max_n"] = 10 ** 9
    with pytest.raises(NovumError) as e:
        load(_onnx_with(tmp_path, novum_config=json.dumps(cfg)), intra_op_threads=1)
    one_line(e, "hostile.onnx", "novum_config.max_n")


def test_onnx_metadata_copies_must_agree_with_novum_config(tmp_path):
    """Keys that repeat a config value for tools reading one key (classes, input_size, n_list,
    max_n) may not say something else than novum_config."""
    from novum.runtime.backends import load

    cfg = json.loads(_props()["novum_config"])
    cfg.update(classes=["car", "bus", "train"], n_list=cfg["n_list"] + [30], extents=cfg["extents"] + cfg["extents"][:1])
    with pytest.raises(NovumError) as e:
        load(_onnx_with(tmp_path, novum_config=json.dumps(cfg)), intra_op_threads=1)
    one_line(e, "hostile.onnx", "classes", "disagrees with novum_config")


def test_read_metadata_of_a_damaged_file(tmp_path):
    from novum.contracts.onnx_file import read_metadata

    p = tmp_path / "m.onnx"
    p.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(NovumError) as e:
        read_metadata(p)
    one_line(e, "m.onnx")


# ----------------------------------------------------------------------------------------------
# engine sidecars


def _sidecar(tmp_path: Path, obj) -> Path:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    text = obj if isinstance(obj, str) else json.dumps(obj)
    (tmp_path / "m.engine.json").write_text(text)
    return engine


def test_sidecar_novum_writes_reads(tmp_path):
    from novum.contracts.sidecar import check_sidecar, sidecar_config

    engine = _sidecar(tmp_path, T.seed_sidecar())
    side = check_sidecar(engine, T.SIDECAR_TRT, *T.SIDECAR_GPU)
    assert sidecar_config(side, engine)["classes"] == list(T.CLASSES)


@pytest.mark.parametrize("change, words", [
    ({"compute_capability": [-1, 5]}, ["compute_capability"]),
    ({"compute_capability": [8]}, ["compute_capability"]),
    ({"version_compatible": "yes"}, ["version_compatible", "true or false"]),
    ({"sidecar_version": 99}, ["sidecar_version"]),
    ({"tensorrt_version": "10.13; rm -rf /"}, ["tensorrt_version"]),
    ({"classes": [f"c{i}" for i in range(2000)]}, ["classes", "1024"]),
    ({"classes": ["car"] * 10 ** 6}, ["larger than"]),
    ({"input_size": [-32, 40]}, ["input_size"]),
    ({"input_size": [64, 80]}, ["input_size", "disagrees"]),
    ({"hardware_compatibility": "anything"}, ["hardware_compatibility"]),
    ({"profile": {"images": [[1, 32, 40, 3]]}}, ["profile.images"]),
    ({"config": {**T.tiny_config().to_dict(), "max_n": 10 ** 9}}, ["config.max_n"]),
    ({"novum_config": '{"classes": ["a"], "input_size": [8, 8], "n_list": [1], "max_n": 99999999}'}, ["novum_config"]),
    ({"gpu_name": "x" * 5000}, ["gpu_name", "5000 characters"]),
])
def test_sidecar_schema_refuses(tmp_path, change, words):
    from novum.contracts.sidecar import EngineMismatchError, read_sidecar

    side = {**T.seed_sidecar(), **change}
    if "novum_config" in change:
        del side["config"]
    with pytest.raises(EngineMismatchError) as e:
        read_sidecar(_sidecar(tmp_path, side))
    one_line(e, "m.engine.json", *words, "rebuild")


@pytest.mark.parametrize("text, words", [
    ("not json", ["not valid JSON"]),
    ("[1, 2, 3]", ["must be an object"]),
    ('{"sidecar_version": 1, "compute_capability": [8, 6], "tensorrt_version": Infinity}', ["Infinity"]),
    ("\udcff", ["not UTF-8"]),
])
def test_sidecar_unreadable(tmp_path, text, words):
    from novum.contracts.sidecar import EngineMismatchError, read_sidecar

    engine = _sidecar(tmp_path, "{}")
    (tmp_path / "m.engine.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(EngineMismatchError) as e:
        read_sidecar(engine)
    one_line(e, *words)


def test_sidecar_size_checked_before_reading(tmp_path):
    from novum.contracts.sidecar import MAX_SIDECAR_BYTES, EngineMismatchError, read_sidecar

    engine = _sidecar(tmp_path, "{}")
    with open(tmp_path / "m.engine.json", "wb") as f:
        f.truncate(MAX_SIDECAR_BYTES + 1)     # sparse: nothing is read
    with pytest.raises(EngineMismatchError) as e:
        read_sidecar(engine)
    one_line(e, "larger than")


# ----------------------------------------------------------------------------------------------
# calibration caches


def _cache(tmp_path: Path, obj) -> Path:
    p = tmp_path / "m_int8.calib.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_calibration_cache_novum_writes_loads(tmp_path):
    from novum.calibration import cache as calib_cache

    entry = calib_cache.load(_cache(tmp_path, T.seed_cache()), T.CACHE_KEY)
    assert entry is not None and entry.method == "percentile" and len(entry.tensors["data"]) == 4
    T.cache_file(_cache(tmp_path, T.seed_cache()))
    assert calib_cache.load(_cache(tmp_path, T.seed_cache()), "1" * 64) is None        # stale: calibrate again
    assert calib_cache.load(_cache(tmp_path, "{broken"), T.CACHE_KEY) is None          # not our entry: calibrate again


def _tensor(cache: dict) -> dict:
    return cache["tensors"]["data"]["/backbone/conv0/Conv_output_0"]


@pytest.mark.parametrize("edit, words", [
    (lambda c: _tensor(c).update(lowest=5.0, highest=1.0), ["lowest", "above highest"]),
    (lambda c: _tensor(c)["highest"].update(data=[]), ["highest"]),                     # fuzz find: empty range
    (lambda c: _tensor(c)["highest"].update(dtype="object"), ["highest"]),
    (lambda c: _tensor(c)["lowest"].update(data=1e39), ["lowest"]),
    (lambda c: _tensor(c).update(rce="__import__('os')"), ["rce", "not a known field"]),
    (lambda c: c["tensors"]["data"].update({f"t{i}": _tensor(c) for i in range(70_000)}), ["tensors.data"]),
    (lambda c: c.update(method="kl"), ["method"]),
    (lambda c: c["tensors"].update(CLS="Popen"), ["tensors.CLS"]),
])
def test_calibration_cache_schema_refuses(tmp_path, edit, words):
    from novum.calibration import cache as calib_cache

    c = copy.deepcopy(T.seed_cache())
    edit(c)
    with pytest.raises(SchemaError) as e:
        calib_cache.load(_cache(tmp_path, c), T.CACHE_KEY)
    one_line(e, "m_int8.calib.json", *words, "delete it")


# ----------------------------------------------------------------------------------------------
# novum_dataset.json


def _dataset_meta(tmp_path: Path, obj) -> Path:
    (tmp_path / "novum_dataset.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return tmp_path


def test_dataset_meta_novum_writes_reads(tmp_path):
    from novum.data.writer import read_meta

    meta = read_meta(_dataset_meta(tmp_path, T.seed_dataset_meta()))
    assert meta["classes"] == list(T.CLASSES)
    assert read_meta(tmp_path / "elsewhere") == {}        # plain NeMo data: no description


@pytest.mark.parametrize("change, words", [
    ({"count": -1}, ["count"]),
    ({"focal": 0}, ["focal", "> 0"]),
    ({"classes": ["../../outside"]}, ["classes[0]"]),
    ({"image_format": "exe"}, ["image_format"]),
    ({"model_config": {"classes": ["car"], "input_size": [-8, 8]}}, ["model_config.input_size"]),
    ({"model_config": {"classes": ["car"], "input_size": [32, 40], "n_list": [10], "max_n": 10 ** 8}},
     ["model_config.max_n"]),
])
def test_dataset_meta_schema_refuses(tmp_path, change, words):
    from novum.data.pascal3d import Pascal3DDataset

    root = _dataset_meta(tmp_path, {**T.seed_dataset_meta(), **change})
    with pytest.raises(SchemaError) as e:
        Pascal3DDataset(root)
    one_line(e, "novum_dataset.json", *words, "novum-data")


def test_dataset_n_list_that_no_mesh_has(tmp_path):
    """Fuzz find (slow run, novum_dataset.json case 331: n_list[0] swapped with count = 2): a vertex
    count that no cuboid mesh of the class has ended in a ValueError traceback on the first sample."""
    from novum.data.pascal3d import Pascal3DDataset

    meta = copy.deepcopy(T.seed_dataset_meta())
    meta["model_config"]["n_list"][0] = 2
    root = T.tiny_dataset()
    path = root / "novum_dataset.json"
    keep = path.read_bytes()
    try:
        path.write_text(json.dumps(meta))
        with pytest.raises(InputError) as e:
            Pascal3DDataset(root)[0]
        one_line(e, "has 2 vertices", "n_list does not match its extents")
    finally:
        path.write_bytes(keep)


def test_dataset_image_list_holds_names_only(tmp_path):
    from novum.data.pascal3d import list_files

    d = tmp_path / "lists" / "car"
    d.mkdir(parents=True)
    (d / "mesh01.txt").write_text("a.png\n../../../etc/passwd\n")
    with pytest.raises(InputError) as e:
        list_files(tmp_path, "car")
    one_line(e, "not a file name")


# ----------------------------------------------------------------------------------------------
# checkpoints


def test_native_checkpoint_with_hostile_config(tmp_path):
    """A .safetensors whose config asks for a 10^9-row bank: refused before anything is allocated."""
    import torch
    from safetensors.torch import save_file

    from novum.checkpoint import load_model

    cfg = T.tiny_config().to_dict()
    cfg["max_n"] = 10 ** 9
    p = tmp_path / "hostile.safetensors"
    save_file({"x": torch.zeros(1)}, str(p), metadata={"format": "novum", "config": json.dumps(cfg)})
    with pytest.raises(SchemaError) as e:
        load_model(p)
    one_line(e, "hostile.safetensors", "max_n")


def test_native_checkpoint_nan_and_bad_meshes(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from novum.checkpoint import load_model

    tensors = load_file(str(T.tiny_native()))
    meta = {"format": "novum", "config": json.dumps(T.tiny_config().to_dict())}
    for name, edit, words in [
        ("nan", lambda t: t["volumes.bank"].__setitem__((0, 0), float("nan")), ["volumes.bank", "NaN"]),
        ("faces", lambda t: t["mesh.0.faces"].__setitem__((0, 0), 10 ** 6), ["mesh.0.faces", "outside"]),
        ("verts", lambda t: t.__setitem__("mesh.1.verts", torch.zeros(7, 3)), ["mesh.1.verts"]),
    ]:
        t = {k: v.clone() for k, v in tensors.items()}
        edit(t)
        p = tmp_path / f"{name}.safetensors"
        save_file(t, str(p), metadata=meta)
        with pytest.raises(CheckpointError) as e:
            load_model(p)
        one_line(e, p.name, *words)


def test_safetensors_header_damage_is_one_line(tmp_path):
    from novum.checkpoint import load_model

    data = bytearray(T.tiny_native().read_bytes())
    data[0:8] = (10 ** 12).to_bytes(8, "little")      # a header length far beyond the file
    p = tmp_path / "damaged.safetensors"
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as e:
        load_model(p)
    one_line(e, "damaged.safetensors", "not a readable .safetensors")


def test_upstream_checkpoint_refusals(tmp_path):
    import torch

    from novum.checkpoint import import_upstream

    good = torch.load(T.tiny_upstream_pth(), weights_only=False)
    for name, edit, words in [
        ("memory_int", lambda c: c.update(memory=torch.zeros(10, 128, dtype=torch.int64)), ["'memory'", "float"]),
        ("memory_rows", lambda c: c.update(memory=torch.zeros(12 * 1130 + 70_000, 128)), ["'memory' has shape"]),
        ("state_list", lambda c: c.update(state=[1, 2]), ["'state'", "mapping"]),
        ("missing", lambda c: None, ["missing weights", "resnetext50"]),
    ]:
        ck = copy.deepcopy(good)
        edit(ck)
        p = tmp_path / f"{name}.pth"
        torch.save(ck, p)
        with pytest.raises(CheckpointError) as e:
            import_upstream(p)
        one_line(e, p.name, *words)
    p = tmp_path / "garbage.pth"
    p.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(CheckpointError) as e:
        import_upstream(p)
    one_line(e, "garbage.pth", "corrupt")


def test_off_mesh_refusals(tmp_path):
    from novum.mesh import load_off, save_off

    good = tmp_path / "good.off"
    save_off(good, np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32), np.array([[0, 1, 2]]))
    v, f = load_off(good)
    assert v.shape == (3, 3) and f.tolist() == [[0, 1, 2]]
    for name, text, words in [
        ("counts", "OFF\n99999999 0 0\n", ["not a valid OFF mesh"]),
        ("faces", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", ["outside 0..2"]),
        ("nan", "OFF\n3 1 0\nnan 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", ["finite"]),
        ("text", "OFF\nthree one\n", ["not a valid OFF mesh"]),
        ("magic", "PLY\n", ["not an OFF mesh"]),
    ]:
        p = tmp_path / f"{name}.off"
        p.write_text(text)
        with pytest.raises(InputError) as e:
            load_off(p)
        one_line(e, p.name, *words)


# ----------------------------------------------------------------------------------------------
# the parsers


def test_yaml_alias_bomb_stops_early():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
    with pytest.raises(SchemaError) as e:
        parse_yaml(bomb, "train.yaml")
    one_line(e, "train.yaml", "aliases")
    with pytest.raises(SchemaError) as e:
        parse_yaml("when: 2024-01-01\n", "train.yaml")
    one_line(e, "only JSON types")
    assert parse_yaml("epochs: 3\nlr: 0.1\n", "t.yaml") == {"epochs": 3, "lr": 0.1}


def test_json_parser_refuses_non_finite_and_bad_bytes():
    assert parse_json('{"a": [1, 2.5]}', "f.json") == {"a": [1, 2.5]}
    for text in (b'{"a": -Infinity}', b"\xff\xfe{}", b'{"a": 1e400}'):
        with pytest.raises(SchemaError) as e:
            parse_json(text, "f.json")
        one_line(e, "f.json")


def test_training_config_files_are_parsed_safely(tmp_path):
    from novum.training.config import load_config

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)))
    for p, text, words in [(bomb, None, ["aliases"]), (tmp_path / "nan.json", '{"lr": NaN}', ["NaN"]),
                           (tmp_path / "list.json", "[1, 2]", ["an object of keys"])]:
        if text is not None:
            p.write_text(text)
        with pytest.raises(InputError) as e:
            load_config(p)
        one_line(e, p.name, *words)
    assert load_config(None).epochs > 0


def test_onnx_external_data_outside_its_folder_is_refused(tmp_path):
    """External data may only name files next to the model: a location that climbs out of the
    folder (to read any file on the machine into a weight) is refused by both readers."""
    import onnx
    from onnx.external_data_helper import set_external_data

    from novum.runtime.backends import load

    proto = onnx.load(str(T.tiny_onnx()))
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    (tmp_path / "outside.bin").write_bytes(init.raw_data)
    set_external_data(init, location="../outside.bin", offset=0, length=len(init.raw_data))
    init.ClearField("raw_data")
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(Exception):
        onnx.load(str(path))
    with pytest.raises(NovumError) as e:
        load(path, intra_op_threads=1)
    one_line(e, "m.onnx")


def test_triton_client_checks_the_servers_novum_config():
    """novum-run --server reads classes and input size from the server's novum_config parameter:
    the same schema bounds it (a server is as untrusted as a model file)."""
    from novum.runtime.backends.triton import TritonBackend

    class Where:
        def _where(self) -> str:
            return "http://10.0.0.9:8000 model 'novum'"

    good = json.dumps(T.tiny_config().to_dict())
    assert TritonBackend._novum_config(Where(), {"novum_config": good})["classes"] == list(T.CLASSES)
    for raw, words in [(json.dumps({**T.tiny_config().to_dict(), "max_n": 10 ** 9}), ["max_n"]),
                       ("{", ["not valid JSON"]), (json.dumps({"classes": ["x"] * 5000, "input_size": [8, 8]}), ["classes"])]:
        with pytest.raises(NovumError) as e:
            TritonBackend._novum_config(Where(), {"novum_config": raw})
        one_line(e, "novum_config parameter", *words, "novum-export --triton")
