"""Temporal smoothing of the vote shares: EMA / moving-average math, flicker, the pipeline shows
raw and smoothed labels (overlay and JSONL), smoothing stays off for image sources."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fakes.runtime_assets import frames, small_onnx, write_video
from novum.errors import InputError
from novum.runtime.run import run
from novum.runtime.smoothing import Smoother, Smoothing, flicker


def test_ema_and_window_math():
    xs = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0.0, 1.0])]
    ema = Smoother(Smoothing(decay=0.8))
    got = [ema.update(x) for x in xs]
    np.testing.assert_allclose(got[0], [1, 0])
    np.testing.assert_allclose(got[1], [0.8, 0.2])
    np.testing.assert_allclose(got[2], [0.64, 0.36])
    win = Smoother(Smoothing(window=3))
    got = [win.update(x) for x in xs]
    np.testing.assert_allclose(got[1], [0.5, 0.5])
    np.testing.assert_allclose(got[2], [1 / 3, 2 / 3])
    np.testing.assert_allclose(got[3], [0, 1])                      # the first frame has left the window
    win.reset()
    np.testing.assert_allclose(win.update(xs[0]), [1, 0])


def test_bad_smoothing_values_are_one_line_errors():
    for kw in ({"decay": 1.0}, {"decay": 0.0}, {"window": 1}, {}, {"decay": 0.5, "window": 3}):
        with pytest.raises(InputError) as e:
            Smoothing(**kw)
        assert "\n" not in str(e.value)


def test_flicker_counts_label_changes_per_100_frames():
    assert flicker([1, 1, 2, 2, 1]) == pytest.approx(100 * 2 / 5)
    assert flicker([3] * 10) == 0.0 and flicker([]) == 0.0
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], 40)
    noisy = np.where(rng.uniform(size=truth.size) < 0.2, rng.integers(0, 3, truth.size), truth)
    shares = np.eye(3)[noisy] * 0.6 + 0.4 / 3
    sm = Smoother(Smoothing(decay=0.8))
    smoothed = [int(np.argmax(sm.update(s))) for s in shares]
    assert flicker(smoothed) < flicker(noisy) / 2                   # the point of it


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("smooth") / "clip.mp4", frames(10, 120, 160, seed=21), fps=10.0)


def records(p):
    return [json.loads(line) for line in p.read_text().splitlines()]


def test_pipeline_logs_raw_and_smoothed_labels(video, tmp_path):
    raw = run(str(video), small_onnx(), show=False, quiet=True, jsonl=tmp_path / "raw.jsonl", threads=1)
    s = run(str(video), small_onnx(), show=False, quiet=True, jsonl=tmp_path / "s.jsonl", threads=1,
            smoothing=Smoothing(decay=0.7))
    a, b = records(tmp_path / "raw.jsonl"), records(tmp_path / "s.jsonl")
    assert [r["label"] for r in a] == [r["label"] for r in b]      # the raw label is kept as it was
    assert "smoothed" not in a[0] and raw.smoothing is None
    assert all(r["smoothed"]["decay"] == 0.7 and r["smoothed"]["label"] for r in b)
    assert s.smoothed_labels == [r["smoothed"]["class_index"] for r in b]
    assert s.labels == [r["class_index"] for r in b]
    assert "smoothed" in s.line() and "label changes per 100 frames" in s.line()


def test_smoothed_label_equals_the_ema_of_the_model_scores(video, tmp_path):
    from novum.runtime.backends import load
    from novum.contracts.framing import Framer
    from novum.runtime.results import vote_shares
    from novum.runtime.sources import open_source

    s = run(str(video), small_onnx(), show=False, quiet=True, jsonl=tmp_path / "s.jsonl", threads=1,
            smoothing=Smoothing(window=4))
    with load(small_onnx(), intra_op_threads=1) as b, open_source(video) as src:
        fr = Framer(b.input_size)
        scores = b.infer(np.stack([fr(f.image)[0] for f in src]))["scores"]
    sm = Smoother(Smoothing(window=4))
    expect = []
    for sc in scores:
        sh = sm.update(vote_shares(sc))
        expect.append((int(np.argmax(sh)), float(sh.max())))
    got = [(r["smoothed"]["class_index"], r["smoothed"]["confidence"]) for r in records(tmp_path / "s.jsonl")]
    assert [g[0] for g in got] == [e[0] for e in expect]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expect], atol=1e-5)
    assert s.frames == 10


def test_overlay_shows_both_labels(video, tmp_path, monkeypatch):
    import novum.runtime.overlay as ov

    texts = []
    real = cv2.putText
    monkeypatch.setattr(ov.cv2, "putText", lambda img, t, *a, **k: (texts.append(t), real(img, t, *a, **k))[1])
    run(str(video), small_onnx(), show=False, quiet=True, save=tmp_path / "o.mp4", threads=1, max_frames=3,
        smoothing=Smoothing(decay=0.8))
    assert sum("(smoothed)" in t for t in texts) == 3 and sum(t.startswith("this frame: ") for t in texts) == 3


def test_smoothing_is_off_for_image_folders(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(frames(3, 120, 160, seed=5)):
        cv2.imwrite(str(folder / f"{i}.png"), im)
    s = run(str(folder), small_onnx(), show=False, quiet=True, jsonl=tmp_path / "o.jsonl", threads=1,
            smoothing=Smoothing(decay=0.8))
    assert s.frames == 3 and not s.smoothed_labels and "off (image sources" in s.line()
    assert all("smoothed" not in r for r in records(tmp_path / "o.jsonl"))


def test_cli_flags(video, tmp_path, capsys):
    from novum.runtime.cli import main

    rc = main(["--model", str(small_onnx()), "--source", str(video), "--jsonl", str(tmp_path / "o.jsonl"),
               "--no-show", "--quiet", "--smooth-window", "3", "--max-frames", "4"])
    assert rc == 0 and records(tmp_path / "o.jsonl")[0]["smoothed"]["window"] == 3
    assert "moving average over 3 frames" in capsys.readouterr().err
    assert main(["--model", str(small_onnx()), "--source", str(video), "--no-show", "--quiet", "--smooth", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
