"""novum-export CLI: native checkpoints, external-data ONNX files, bad input -> one-line errors."""
from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import onnx
import pytest

from factories import structured_frames
from novum.checkpoint import save_native
from novum.contracts.onnx_file import OnnxFileError, copy_onnx, onnx_files, onnx_sha256, read_metadata
from novum.export.cli import main
from novum.io import sha256_file
from novum.runtime.backends.ort import run_onnx


@pytest.fixture(scope="module")
def native_ckpt(small_model, tmp_path_factory):
    return save_native(small_model, tmp_path_factory.mktemp("native") / "small.safetensors")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_native_checkpoint_export_without_tensorrt(native_ckpt, small_model, tmp_path, capsys):
    out = tmp_path / "e"
    rc = main(["--checkpoint", str(native_ckpt), "--output-dir", str(out), "--fp16", "--features", "--batch", "2",
               "--engine", "--name", "demo"])
    text = capsys.readouterr().out
    assert rc == 0
    assert leftovers(out) == ["demo.onnx", "demo_fp16.onnx"]
    if importlib.util.find_spec("tensorrt") is None:
        assert "no TensorRT engine built: TensorRT is not installed" in text
    meta = read_metadata(out / "demo.onnx")
    assert dataclasses.replace(meta["config"], framing=None) == small_model.config and meta["max_batch"] == 2
    assert meta["outputs"][-1] == "features"
    framing = meta["config"].framing                           # measured on the generator: the checkpoint lacks it
    assert 0.2 < framing["object_fill"] < 1.0 and framing["source"].startswith("synthetic generator")
    assert json.loads(meta["framing"]) == framing and json.loads(meta["trained_input_size"]) == [128, 160]


def test_imgsz_changes_the_graph_and_focal(native_ckpt, small_model, tmp_path, capsys):
    rc = main(["--checkpoint", str(native_ckpt), "--output-dir", str(tmp_path), "--imgsz", "64", "96", "--no-engine",
               "--force-imgsz"])
    assert rc == 0
    meta = read_metadata(tmp_path / "small.onnx")
    assert meta["input_size"] == [64, 96]
    assert meta["config"].focal == pytest.approx(small_model.config.focal * 64 / 128)
    out = run_onnx(tmp_path / "small.onnx", structured_frames(2, 64, 96))
    assert out["vertex"].shape == (2, 8, 12)


def test_imgsz_other_than_trained_is_refused_unless_forced(native_ckpt, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["--checkpoint", str(native_ckpt), "--output-dir", str(out), "--imgsz", "256", "320"]) == 2
    err = one_line_error(capsys)
    assert "trained at 128x160" in err and "--force-imgsz" in err and not out.exists()
    for size in (["8", "8"], ["24", "160"]):                     # too small for the backbone, even when forced
        assert main(["--checkpoint", str(native_ckpt), "--output-dir", str(out), "--imgsz", *size,
                     "--force-imgsz"]) == 2
        assert "at least 32" in one_line_error(capsys) and not out.exists()
    assert main(["--checkpoint", str(native_ckpt), "--output-dir", str(out), "--imgsz", "128", "160"]) == 0
    capsys.readouterr()                                          # the trained size itself needs no flag
    rc = main(["--checkpoint", str(native_ckpt), "--output-dir", str(out), "--imgsz", "64", "96", "--force-imgsz",
               "--verify", "--verify-frames", "2", "--no-engine", "--name", "small64"])
    text = capsys.readouterr()
    assert rc == 0
    assert "warning: exporting at 64x96, but the model was trained at 128x160" in text.out
    assert "not verified" in text.err                            # --verify does not call it ok silently
    meta = read_metadata(out / "small64.onnx")
    assert json.loads(meta["trained_input_size"]) == [128, 160] and meta["input_size"] == [64, 96]
    assert meta["config"].trained_input_size == (128, 160)
    from novum.runtime.cli import main as run_main             # novum-run warns too, even with --quiet

    assert run_main(["--model", str(out / "small64.onnx"), "--max-frames", "1", "--no-show", "--quiet"]) == 0
    assert "exported at 64x96 but trained at 128x160" in capsys.readouterr().err
    # re-exporting that file's config at its trained size needs no flag and clears the record
    from novum.api import resized_config

    back = resized_config(meta["config"], (128, 160))
    assert back.trained_input_size is None and back.focal == pytest.approx(meta["config"].focal * 2)


def test_external_data_files_are_handled(small_model, tmp_path):
    from novum.export.onnx import export_onnx

    single = export_onnx(small_model, tmp_path / "single.onnx")
    proto = onnx.load(str(single))
    ext = tmp_path / "ext.onnx"
    # as save_onnx writes a model above 2 GB: onnx's default threshold keeps small tensors inline (ONNX
    # Runtime cannot read an external Slice start/end while it infers shapes; the dynamo graph has them)
    onnx.save_model(proto, str(ext), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data")
    assert [p.name for p in onnx_files(ext)] == ["ext.onnx", "ext.onnx.data"]
    assert [p.name for p in onnx_files(single)] == ["single.onnx"]
    copied = copy_onnx(ext, tmp_path / "sub" / "ext.onnx")
    assert sorted(p.name for p in copied.parent.iterdir()) == ["ext.onnx", "ext.onnx.data"]
    assert onnx_sha256(copied) == onnx_sha256(ext) != onnx_sha256(single)
    assert dataclasses.replace(read_metadata(copied)["config"], framing=None) == small_model.config
    fr = structured_frames(2, 128, 160)
    a, b = run_onnx(single, fr), run_onnx(copied, fr)
    assert np.array_equal(a["scores"], b["scores"]) and np.array_equal(a["vertex"], b["vertex"])
    from novum.export.fp16 import convert_fp16

    half = convert_fp16(copied, tmp_path / "ext_fp16.onnx")  # fp16 from an external-data source
    assert run_onnx(half, fr)["scores"].shape == (2, 12)


def test_missing_checkpoint(tmp_path, capsys):
    rc = main(["--checkpoint", str(tmp_path / "nope.pth"), "--output-dir", str(tmp_path / "o" / "sub")])
    assert rc == 2
    assert "checkpoint not found" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()                         # no empty output folders left behind
    (tmp_path / "mine").mkdir()
    assert main(["--checkpoint", str(tmp_path / "nope.pth"), "--output-dir", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine").is_dir()                          # a folder that was there stays


def test_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x02garbage" * 100)
    rc = main(["--checkpoint", str(bad), "--output-dir", str(tmp_path / "o")])
    assert rc == 2
    assert "bad.pth" in one_line_error(capsys)
    assert leftovers(tmp_path / "o") == []
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    assert main(["--checkpoint", str(trunc), "--output-dir", str(tmp_path / "o")]) == 2
    assert "trunc.safetensors" in one_line_error(capsys)
    assert leftovers(tmp_path / "o") == []


def test_unwritable_output_dir(native_ckpt, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["--checkpoint", str(native_ckpt), "--output-dir", str(blocker / "sub")])
    assert rc == 2
    assert "not writable" in one_line_error(capsys)


def test_bad_imgsz(native_ckpt, tmp_path, capsys):
    assert main(["--checkpoint", str(native_ckpt), "--output-dir", str(tmp_path), "--imgsz", "100", "160"]) == 2
    assert "multiples of 8" in one_line_error(capsys)
    assert leftovers(tmp_path) == []


def test_the_torchscript_exporter_is_behind_a_flag(native_ckpt, tmp_path, capsys):
    rc = main(["--checkpoint", str(native_ckpt), "--output-dir", str(tmp_path), "--exporter", "torchscript",
               "--no-engine"])
    assert rc == 0
    assert "(fp32, torchscript exporter, opset 17)" in capsys.readouterr().out
    meta = read_metadata(tmp_path / "small.onnx")
    assert meta["exporter"] == "torchscript" and meta["opset"] == 17


def test_an_opset_the_dynamo_exporter_cannot_write(native_ckpt, tmp_path, capsys):
    rc = main(["--checkpoint", str(native_ckpt), "--output-dir", str(tmp_path), "--opset", "17", "--no-engine"])
    assert rc == 2
    err = one_line_error(capsys)
    assert "--opset 17" in err and "--opset 18" in err and "--exporter torchscript" in err
    assert leftovers(tmp_path) == []


def test_default_checkpoint_is_the_demo_model(tmp_path, capsys):
    from novum.bundled import DEMO_MODEL

    assert DEMO_MODEL.is_file(), f"the bundled demo model is missing: {DEMO_MODEL}"
    rc = main(["--output-dir", str(tmp_path), "--no-engine"])
    assert rc == 0 and (tmp_path / "demo.onnx").is_file()
    assert read_metadata(tmp_path / "demo.onnx")["source_sha256"] == sha256_file(DEMO_MODEL)


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(OnnxFileError, match="not a readable ONNX file"):
        read_metadata(bad)
    plain = tmp_path / "plain.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), str(plain))
    with pytest.raises(OnnxFileError, match="without novum metadata"):
        read_metadata(plain)


def test_readme_states_the_score_tolerances_verify_applies():
    """The README's numbers are the limits --verify checks (demo model and upstream 640x800)."""
    from pathlib import Path

    from novum.bundled import DEMO_MODEL
    from novum.checkpoint import load_model
    from novum.config import upstream_config
    from novum.export.verify import TOLERANCES

    def sci(x: float, digits: int) -> str:      # 1.1e-03 as the README writes it: 1.1e-3
        return f"{x:.{digits}e}".replace("e-0", "e-")

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    for cfg in (load_model(DEMO_MODEL).config, upstream_config()):
        cells = cfg.feature_size[0] * cfg.feature_size[1]
        for prec in ("fp16", "int8"):
            assert sci(TOLERANCES[prec].scores_limit(cells, cfg.num_vertex_rows), 1) in readme, (prec, cfg.input_size)
    assert f"fp32 scores {sci(TOLERANCES['fp32'].scores_atol, 0)}" in readme
    f16 = TOLERANCES["fp16"]
    assert f"{sci(f16.scores_atol, 0)} plus {100 * f16.scores_pixel_frac:.0f}% of the feature cells" in readme
