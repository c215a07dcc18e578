"""novum-bench on the small model: one row per backend/precision, real measurements, files written."""
from __future__ import annotations

import json

from fakes.runtime_assets import small_native
from novum.runtime.cli import bench_main as main


def test_bench_table_and_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))   # calibration/timing caches stay in tmp
    rc = main(["--model", str(small_native()), "--frames", "6", "--runs", "4", "--warmup", "1", "--rounds", "1",
               "--threads", "1", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "bench")])
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    rows = {(r["backend"], r["precision"]): r for r in data["rows"]}
    assert set(rows) >= {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8"),
                         ("tensorrt", "fp32")}
    for key in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16")):
        r = rows[key]
        assert r["status"] == "ok", r
        assert r["size_mb"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] and r["model_fps"] > 0 and r["pipeline_fps"] > 0
        assert r["pipeline_over_model"] == r["round_ratios"][0] > 0
        assert 0 < r["pipeline_busy"] <= 1.0
    assert rows[("torch", "fp32")]["top1_agreement"] == 1.0
    assert rows[("onnxruntime", "fp32")]["top1_agreement"] == 1.0          # same math, fp32
    assert rows[("onnxruntime", "fp16")]["size_mb"] < 0.6 * rows[("onnxruntime", "fp32")]["size_mb"]
    if rows[("tensorrt", "fp32")]["status"] != "ok":
        assert rows[("tensorrt", "fp32")]["status"].startswith("unavailable")
    md = (tmp_path / "bench.md").read_text()
    assert "| onnxruntime | fp16 | ok |" in md and "pipeline / model-only FPS" in md and "ONNX Runtime fp32 vs torch" in md
    assert "| torch | fp32 | ok |" in out
    # int8 vs fp32 timed side by side, with the CPU's int8 flags, on screen and in both files
    speed = data["info"]["int8_speed"]
    assert speed["speedup"] > 0 and len(speed["rounds"]) >= 5 and "avx512_vnni" in data["info"]["machine"]["cpu"]
    for text in (out, md):
        assert "int8 speed on this machine" in text and "int8 / fp32 speed" in text and "avx512_vnni" in text


def test_bench_removes_its_temporary_folder(tmp_path, capsys, monkeypatch):
    import tempfile

    import novum.api as api

    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(api, "quantize_targets", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("skipped in this test")))
    rc = main(["--model", str(small_native()), "--frames", "2", "--runs", "2", "--warmup", "1", "--rounds", "1",
               "--threads", "1"])
    assert rc == 0 and "| onnxruntime | fp32 | ok |" in capsys.readouterr().out
    assert list(tmp_root.iterdir()) == []                      # the exported files went with their folder
    monkeypatch.setattr(api, "_bench_frames", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    try:
        main(["--model", str(small_native()), "--frames", "2"])
    except RuntimeError:
        pass
    assert list(tmp_root.iterdir()) == []                      # also when the run fails


def test_bench_help_shows_the_defaults(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("(default: 32)", "(default: 50)", "(default: 3)", "(default: the bundled demo model)",
                 "(default: a temporary folder, removed at the end)"):
        assert text in out, text
