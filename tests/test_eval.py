"""novum-eval: accuracy per split for NOVUM (through the runtime backends) and the baseline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from novum.eval import CORRUPTED, EvalReport, EvalSplit, Predictor, evaluate, main, markdown_table
from novum.training.data import pack_samples
from novum.training.loop import train
from test_train import tiny_train_config
from train_fakes import fake_samples


def _fake_predictor(name: str, correct_every: int) -> Predictor:
    """Right on every sample except each ``correct_every``-th (scores from a label lookup)."""
    from novum.config import small_config

    table = {}

    def scores(images, boxes):
        out = np.zeros((len(images), 3), np.float32)
        for i, img in enumerate(images):
            label, idx = table[img.tobytes()]
            out[i, label if idx % correct_every else (label + 1) % 3] = 1.0
        return out

    p = Predictor(name, None, "fake", small_config(classes=("a", "b", "c")), scores)
    p.table = table
    return p


def test_evaluate_counts_top1_and_corrupted_mean():
    rng = np.random.default_rng(0)
    splits = {}
    for name in ("clean", "L1", "noise", "blur"):
        imgs = rng.integers(0, 255, (12, 4, 5, 3), dtype=np.uint8)
        splits[name] = EvalSplit(name, imgs, np.arange(12) % 3, np.zeros((12, 4), np.int64))
    good, bad = _fake_predictor("good", 1000), _fake_predictor("bad", 4)
    for p in (good, bad):
        for s in splits.values():
            for i, img in enumerate(s.images):
                p.table[img.tobytes()] = (int(s.labels[i]), i)
    rep = evaluate([good, bad], splits, batch_size=5)
    assert rep.accuracy["good"]["clean"] == pytest.approx(11 / 12)    # index 0 is wrong (0 % n == 0)
    assert rep.accuracy["bad"]["L1"] == pytest.approx(9 / 12)
    assert rep.accuracy["bad"][CORRUPTED] == pytest.approx(9 / 12)
    table = markdown_table(rep)
    assert "| clean | 12 | 91.7 | 75.0 |" in table
    assert "| corrupted (mean of noise, blur) | 24 |" in table


def test_markdown_table_orders_splits():
    rep = EvalReport(splits={"L2": 5, "clean": 5}, accuracy={"m": {"L2": 0.5, "clean": 1.0}})
    lines = markdown_table(rep).splitlines()
    assert lines[2].startswith("| clean ") and lines[3].startswith("| L2 ")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("evalmodels")
    cfg = tiny_train_config(epochs=2)
    mc = cfg.model_config()
    data = (pack_samples(fake_samples(mc, 8, seed=0), mc), None)
    novum = train(cfg, d / "novum", data, progress=False).model_path
    base = train(cfg, d / "base", data, baseline=True, progress=False).model_path
    return novum, base


def test_cli_prints_table_for_tiny_models(tiny_models, tmp_path, capsys):
    novum, base = tiny_models
    js = tmp_path / "r.json"
    rc = main(["--model", str(novum), "--baseline", str(base), "--per-class", "2", "--splits", "clean,L1,blur,jpeg",
               "--cache", str(tmp_path / "cache"), "--json", str(js), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| split | images | NOVUM | baseline |"
    for row in ("| clean | 4 |", "| L1 | 4 |", "| blur | 4 |", "| corrupted (mean of blur, jpeg) | 8 |"):
        assert row in out
    rep = json.loads(js.read_text())
    assert set(rep["accuracy"]) == {"NOVUM", "baseline"}
    assert rep["models"]["NOVUM"]["kind"].startswith("novum-")
    for acc in rep["accuracy"].values():
        assert all(0.0 <= v <= 1.0 for v in acc.values())
    # cached splits are reused: same numbers again
    assert main(["--model", str(novum), "--per-class", "2", "--splits", "clean,L1,blur,jpeg", "--cache",
                 str(tmp_path / "cache"), "--no-progress", "--boxes"]) == 0
    assert "| clean | 4 |" in capsys.readouterr().out


def test_cli_errors_are_one_line(tiny_models, tmp_path, capsys):
    novum, base = tiny_models
    assert main(["--model", str(tmp_path / "missing.safetensors"), "--no-progress"]) == 2
    assert main(["--model", str(novum), "--splits", "clean,L9", "--no-progress"]) == 2
    assert main(["--baseline", str(novum), "--per-class", "1", "--splits", "clean", "--cache", "", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("error: ") for e in err)


def test_cache_goes_to_the_novum_cache_not_the_current_folder(tiny_models, tmp_path, monkeypatch, capsys):
    novum, _ = tiny_models
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("NOVUM_CACHE", str(tmp_path / "nc"))
    assert main(["--model", str(novum), "--per-class", "1", "--splits", "clean", "--no-progress"]) == 0
    assert list(work.iterdir()) == []                               # no runs/cache here
    assert list((tmp_path / "nc" / "eval").glob("eval_clean_*.npz"))


def test_baseline_alone_is_compared_with_the_demo_model(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    baseline = Path(__file__).resolve().parents[1] / "benchmarks" / "demo_baseline.safetensors"
    monkeypatch.setenv("NOVUM_CACHE", str(tmp_path / "nc"))
    assert main(["--baseline", str(baseline), "--per-class", "1", "--splits", "clean", "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "| split | images | NOVUM | baseline |"
def test_models_with_the_same_file_name_stay_separate_columns():
    from novum.eval import column_names

    assert column_names(["runs/a/model.safetensors"], "NOVUM") == ["NOVUM"]
    assert column_names(["runs/a/model.safetensors", "runs/b/model.safetensors"], "NOVUM") == [
        "NOVUM:a/model.safetensors", "NOVUM:b/model.safetensors"]
    assert column_names(["x/m1.onnx", "y/m2.onnx"], "baseline") == ["baseline:m1.onnx", "baseline:m2.onnx"]
    assert column_names(["runs/a/model.safetensors"], "NOVUM", name_one=True) == ["NOVUM:model.safetensors"]
    assert column_names([], "baseline", name_one=True) == []
