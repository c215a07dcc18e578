"""novum-run end to end: generated videos through ONNX Runtime and torch, JSONL equal to the
backend's own outputs, the demo clip, bad inputs, Ctrl-C and broken streams leave valid outputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fakes.runtime_assets import frames, read_video, small_native, small_onnx, write_video
from novum.api import run
from novum.contracts.framing import Framer
from novum.runtime.backends import load
from novum.runtime.cli import main
from novum.runtime.results import predict, vote_shares
from novum.runtime.run import StreamError
from novum.runtime.sources import open_source
from novum.runtime.votes import vote_box


def framed(video: Path, input_size, roi=None, framing=None) -> np.ndarray:
    framer = Framer(input_size, roi, framing)
    with open_source(video) as src:
        return np.stack([framer(f.image)[0] for f in src])


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_records(recs: list[dict], outputs: dict[str, np.ndarray], classes: list[str], k: int, atol: float) -> None:
    assert [r["frame"] for r in recs] == list(range(len(outputs["scores"])))
    for i, r in enumerate(recs):
        sc = outputs["scores"][i]
        order = np.argsort(-sc, kind="stable")[:k]
        assert r["class_index"] == int(order[0]) and r["label"] == classes[order[0]]
        assert [t["index"] for t in r["topk"]] == [int(j) for j in order]
        np.testing.assert_allclose([t["score"] for t in r["topk"]], sc[order], atol=atol)
        np.testing.assert_allclose([t["share"] for t in r["topk"]], vote_shares(sc)[order], atol=1e-5 + 100 * atol)
        assert r["confidence"] == pytest.approx(r["topk"][0]["share"])
        assert r["coverage"] == pytest.approx(float((outputs["vertex"][i] >= 0).mean()), abs=1e-6)
        assert r["latency_ms"]["model"] > 0 and r["latency_ms"]["pipeline"] >= r["latency_ms"]["model"]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("vid") / "clip.mp4", frames(8, 180, 240, seed=7), fps=8.0)


def test_onnxruntime_end_to_end_jsonl_equals_model_outputs(video, tmp_path):
    s = run(str(video), small_onnx(), show=False, quiet=True, topk=3, threads=1,
            save=tmp_path / "out.mp4", jsonl=tmp_path / "out.jsonl")
    assert s.frames == 8 and not s.interrupted and s.stream_error is None
    with load(small_onnx(), intra_op_threads=1) as b:
        ref = b.infer(framed(video, b.input_size))
        classes = b.classes
    check_records(records(tmp_path / "out.jsonl"), ref, classes, 3, atol=1e-6)
    out = read_video(tmp_path / "out.mp4")
    assert len(out) == 8 and out[0].shape == (180, 240, 3)
    assert not list(tmp_path.glob(".*partial*"))                # the temporary file was renamed away


def test_torch_end_to_end_with_roi(video, tmp_path):
    from novum.runtime.pipeline import roi_framing

    roi = (60, 50, 60, 45)
    s = run(str(video), small_native(), backend="torch", show=False, quiet=True, topk=5, roi=roi,
            jsonl=tmp_path / "out.jsonl")
    assert s.frames == 8
    with load(small_native(), device="cpu") as b:
        framing, _ = roi_framing(b.metadata)      # the checkpoint records none: measured on the generator
        ref = b.infer(framed(video, b.input_size, roi, framing))
        classes, max_n, (H, W) = b.classes, int(b.metadata["max_n"]), b.input_size
    recs = records(tmp_path / "out.jsonl")
    check_records(recs, ref, classes, 5, atol=1e-6)
    # the vote box: the cells voting for the label, mapped from the model input back into the frame
    for i, r in enumerate(recs):
        v = vote_box(ref["vertex"][i], r["class_index"], max_n, 8)
        x, y, w, h = r["crop"]
        want = None if v is None else [x + v[0] * w / W, y + v[1] * h / H, x + v[2] * w / W, y + v[3] * h / H]
        assert "box" in r and (r["box"] is None) == (want is None)
        if want is not None:
            assert r["box"] == pytest.approx(want, abs=0.1)
    x, y, w, h = recs[0]["crop"]                  # the box's dominant side fills object_fill of the crop
    assert max(45 / h, 60 / w) == pytest.approx(framing["object_fill"], abs=0.01)


def test_native_checkpoint_is_exported_once_and_run_on_onnxruntime(video, tmp_path, monkeypatch):
    monkeypatch.setenv("NOVUM_CACHE", str(tmp_path / "cache"))
    s1 = run(str(video), small_native(), show=False, quiet=True, max_frames=2, jsonl=tmp_path / "a.jsonl")
    cached = list((tmp_path / "cache" / "exports").glob("*.onnx"))
    assert len(cached) == 1 and s1.frames == 2
    mtime = cached[0].stat().st_mtime_ns
    run(str(video), small_native(), show=False, quiet=True, max_frames=2, jsonl=tmp_path / "b.jsonl")
    assert cached[0].stat().st_mtime_ns == mtime                  # reused, not re-exported
    assert records(tmp_path / "a.jsonl") == [dict(r, latency_ms=r2["latency_ms"]) for r, r2 in
                                             zip(records(tmp_path / "b.jsonl"), records(tmp_path / "a.jsonl"))]


def test_parts_overlay_colours_the_crop(video, tmp_path):
    run(str(video), small_onnx(), show=False, quiet=True, save=tmp_path / "plain.mp4", max_frames=2)
    run(str(video), small_onnx(), show=False, quiet=True, save=tmp_path / "parts.mp4", max_frames=2, parts=True,
        parts_alpha=0.8)
    a, b = read_video(tmp_path / "plain.mp4")[1], read_video(tmp_path / "parts.mp4")[1]
    diff = np.abs(a.astype(int) - b.astype(int)).sum(-1)
    assert (diff[100:, :] > 30).mean() > 0.05                     # below the text box: coloured parts


def test_demo_source(tmp_path):
    from novum.bundled import DEMO_CLIP

    assert DEMO_CLIP.is_file(), f"the bundled demo clip is missing: {DEMO_CLIP}"
    s = run("demo", small_onnx(), show=False, quiet=True, max_frames=5, jsonl=tmp_path / "o.jsonl",
            save=tmp_path / "o.mp4")
    assert s.frames == 5
    with open_source("demo") as src:
        assert src.expected_frames and src.expected_frames > 5 and src.fps
        first = next(iter(src)).image
    assert read_video(tmp_path / "o.mp4")[0].shape == first.shape
    with load(small_onnx(), intra_op_threads=1) as b:
        ref = b.infer(Framer(b.input_size)(first)[0][None])
    assert records(tmp_path / "o.jsonl")[0]["topk"][0]["score"] == pytest.approx(float(ref["scores"][0].max()), abs=1e-6)


def test_demo_source_with_the_bundled_model(tmp_path, monkeypatch):
    from novum.bundled import DEMO_CLIP, DEMO_MODEL

    assert DEMO_CLIP.is_file() and DEMO_MODEL.is_file(), f"bundled demo assets missing: {DEMO_CLIP}, {DEMO_MODEL}"
    monkeypatch.setenv("NOVUM_CACHE", str(tmp_path / "cache"))
    rc = main(["--source", "demo", "--save", str(tmp_path / "out.mp4"), "--jsonl", str(tmp_path / "out.jsonl"),
               "--no-show", "--max-frames", "6", "--quiet"])
    assert rc == 0
    recs = records(tmp_path / "out.jsonl")
    assert len(recs) == 6 == len(read_video(tmp_path / "out.mp4"))
    assert all(r["label"] in r["topk"][0]["label"] for r in recs)


def test_bad_input_one_line_errors(tmp_path, capsys, video):
    def err(argv, show="--no-show") -> str:
        rc = main(argv + [show, "--quiet"])
        e = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(e) == 1 and e[0].startswith("error: "), e
        return e[0]

    onnx = str(small_onnx())
    assert "no camera at index 0" in err(["--model", onnx, "--source", "0"])
    assert "source not found" in err(["--model", onnx, "--source", str(tmp_path / "nope.mp4")])
    (tmp_path / "corrupt.mp4").write_bytes(os.urandom(3000))
    assert "cannot open as a video" in err(["--model", onnx, "--source", str(tmp_path / "corrupt.mp4")])
    assert "model not found" in err(["--model", str(tmp_path / "m.onnx"), "--source", str(video)])
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        assert "--show: DISPLAY and WAYLAND_DISPLAY are unset" in err(["--model", onnx, "--source", str(video)],
                                                                       show="--show")


def test_roi_mostly_outside_the_frame_is_warned_about(capsys, video):
    """The README's example --roi (for a larger camera frame) on a smaller video: said once, the run goes on."""
    for roi, warned in (((160, 120, 160, 120), True), ((60, 50, 60, 45), False), ((180, 140, 80, 60), False)):
        rc = main(["--model", str(small_onnx()), "--source", str(video), "--roi", *map(str, roi), "--max-frames", "2",
                   "--no-show", "--quiet"])
        err = capsys.readouterr().err
        assert rc == 0
        assert (err.count("warning: only 25% of --roi 160 120 160 120 lies inside the 240x180 frame") == 1) == warned, err
        assert ("lies inside" in err) == warned, err


def test_a_run_that_fails_before_any_frame_writes_no_jsonl(tmp_path, capsys, video):
    bad = tmp_path / "imgs"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "keep.jsonl").write_text('{"frame": 0}\n')
    for argv, why in ((["--source", str(bad), "--jsonl", str(tmp_path / "o.jsonl")],
                       "cannot decode the image (corrupt or not an image); no output was written"),
                      (["--source", str(video), "--roi", "900", "900", "10", "10", "--jsonl", str(tmp_path / "o.jsonl"),
                        "--save", str(tmp_path / "o.mp4")], "outside"),
                      (["--source", str(video), "--roi", "900", "900", "10", "10", "--jsonl",
                        str(tmp_path / "keep.jsonl")], "outside")):
        rc = main(["--model", str(small_onnx())] + argv + ["--no-show", "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and why in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "keep.jsonl"]       # no 0-byte JSONL, no video
    assert (tmp_path / "keep.jsonl").read_text() == '{"frame": 0}\n'                # an older file is untouched


def test_broken_stream_keeps_outputs_valid(tmp_path, capsys):
    data = write_video(tmp_path / "v.avi", frames(20, 120, 160, seed=8)).read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    rc = main(["--model", str(small_onnx()), "--source", str(tmp_path / "cut.avi"), "--save", str(tmp_path / "o.mp4"),
               "--jsonl", str(tmp_path / "o.jsonl"), "--no-show", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "broke after frame" in err[0] and "the outputs hold the" in err[0]
    recs = records(tmp_path / "o.jsonl")
    assert 0 < len(recs) < 20 and len(read_video(tmp_path / "o.mp4")) == len(recs)
    with pytest.raises(StreamError):
        run(str(tmp_path / "cut.avi"), small_onnx(), show=False, quiet=True)


def test_ctrl_c_leaves_a_valid_video_and_jsonl(tmp_path):
    video = write_video(tmp_path / "long.avi", np.repeat(frames(4, 120, 160, seed=9), 60, axis=0), fps=30.0)
    out, log = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # SIGINT as a terminal delivers it, whatever this test's parent does with it: under `nohup ... &`
    # it is ignored, and an ignored SIGINT is inherited (and rightly respected by novum-run)
    p = subprocess.Popen([sys.executable, "-m", "novum.runtime.cli", "--model", str(small_onnx()), "--source", str(video),
                          "--save", str(out), "--jsonl", str(log), "--no-show", "--threads", "1"],
                         stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while time.time() - t0 < 60 and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-1000:]
    recs = records(log)                                           # every line is complete JSON
    assert 5 <= len(recs) < 240 and [r["frame"] for r in recs] == list(range(len(recs)))
    assert len(read_video(out)) == len(recs)                      # the video is finalised, frame for frame
    assert "interrupted" in err


def test_ctrl_c_between_a_frames_video_write_and_its_jsonl_line(video, tmp_path, monkeypatch):
    """A SIGINT that arrives while a frame is being encoded ends the run after that frame's JSONL
    line, not between the two (it used to leave the video one frame longer than the log)."""
    from novum.runtime.pipeline import Pipeline, RunOptions
    from novum.runtime.sinks import VideoSink

    real = VideoSink.write
    n = {"frames": 0}

    def write_then_sigint(self, frame):
        real(self, frame)
        n["frames"] += 1
        if n["frames"] == 3:
            os.kill(os.getpid(), signal.SIGINT)   # handled right after this call returns

    monkeypatch.setattr(VideoSink, "write", write_then_sigint)
    with load(small_onnx(), intra_op_threads=1) as b, open_source(video) as src:
        s = Pipeline(b, src, RunOptions(save=tmp_path / "o.mp4", jsonl=tmp_path / "o.jsonl")).run()
    assert s.interrupted and s.frames == 3
    assert len(records(tmp_path / "o.jsonl")) == 3 == len(read_video(tmp_path / "o.mp4"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # restored after the run


def test_live_source_through_the_pipeline_drops_stale_frames(tmp_path):
    from test_sources import FakeCamera

    from novum.runtime.pipeline import Pipeline, RunOptions
    from novum.runtime.sources import LiveSource

    cam = FakeCamera(150, fps=500)
    src = LiveSource(cam, "fake camera")
    with load(small_onnx(), intra_op_threads=1) as b:
        infer = b._infer
        b._infer = lambda x: (time.sleep(0.02), infer(x))[1]   # a model 10x slower than the camera
        s = Pipeline(b, src, RunOptions(jsonl=tmp_path / "o.jsonl")).run()
    src.close()
    recs = records(tmp_path / "o.jsonl")
    idx = [r["frame"] for r in recs]
    assert idx == sorted(set(idx)) and len(idx) < 150 and s.dropped > 0
    assert s.frames == len(recs)


def test_pose_every_n_frames_is_logged_and_drawn(video, tmp_path, monkeypatch):
    """Wiring of --pose-every: features go to the refiner off the output thread, poses reach JSONL
    and the wireframe is drawn (a stub refiner stands in for the torch render-and-compare)."""
    import novum.pose.refine as refine_mod

    calls = []

    class StubRefiner:
        def refine(self, features, label):
            calls.append((features.shape, label))
            return refine_mod.PoseResult(label=int(label), azimuth=0.5, elevation=0.2, theta=0.0, distance=5.0,
                                         loss=0.1, seconds=0.01)

    monkeypatch.setattr(refine_mod, "load_refiner", lambda ckpt, **kw: StubRefiner())
    s = run(str(video), small_onnx(), show=False, quiet=True, pose_every=2, pose_model=small_native(),
            jsonl=tmp_path / "o.jsonl", save=tmp_path / "o.mp4")
    assert s.frames == 8 and calls and all(shape == (64, 16, 20) for shape, _ in calls)
    recs = records(tmp_path / "o.jsonl")
    poses = [r["pose"] for r in recs if "pose" in r]
    assert [p["frame"] for p in poses] == [0, 2, 4, 6]
    assert all(p["azimuth_deg"] == pytest.approx(np.degrees(0.5)) for p in poses)
    plain = tmp_path / "plain.mp4"
    run(str(video), small_onnx(), show=False, quiet=True, save=plain)
    drawn = [np.abs(a.astype(int) - b.astype(int)).sum(-1).max() > 100
             for a, b in zip(read_video(plain), read_video(tmp_path / "o.mp4"))]
    assert any(drawn)                           # the wireframe appears once a pose is there
    with pytest.raises(Exception) as e:
        run(str(video), small_onnx(), show=False, quiet=True, pose_every=2)   # no checkpoint for the refiner
    assert "--pose-model" in str(e.value)


def test_a_failing_backend_ends_the_run_with_valid_outputs(video, tmp_path, monkeypatch):
    from novum.errors import NovumError
    from novum.runtime.backends.ort import OrtBackend

    real = OrtBackend._infer
    n = {"calls": 0}

    def flaky(self, x):
        n["calls"] += 1
        if n["calls"] == 4:
            raise NovumError("device lost")
        return real(self, x)

    monkeypatch.setattr(OrtBackend, "_infer", flaky)
    with pytest.raises(NovumError, match="device lost"):
        run(str(video), small_onnx(), show=False, quiet=True, save=tmp_path / "o.mp4", jsonl=tmp_path / "o.jsonl")
    recs = records(tmp_path / "o.jsonl")
    assert len(recs) == 3 == len(read_video(tmp_path / "o.mp4"))


def test_window_keys_quit_pause_and_pose(video, tmp_path, monkeypatch):
    """The window path with OpenCV's GUI calls stubbed (no display here): space pauses, p asks for
    a pose, q quits; the outputs are closed as after any end."""
    import cv2

    from novum.runtime.pipeline import Pipeline, RunOptions

    shown, keys = [], iter([-1, ord(" "), -1, -1, ord(" "), ord("p"), -1, ord("q")] + [-1] * 100)
    requested = []
    windows = []
    sizes = []
    monkeypatch.setattr(cv2, "namedWindow", lambda name, flags: windows.append((name, flags)))
    monkeypatch.setattr(cv2, "resizeWindow", lambda name, w, h: sizes.append((name, w, h)))
    monkeypatch.setattr(cv2, "imshow", lambda name, img: shown.append(img.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda name, prop: 1.0)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    monkeypatch.setattr(Pipeline, "_request_pose", lambda self: requested.append(len(shown)))
    with load(small_onnx(), intra_op_threads=1) as b, open_source(video) as src:
        s = Pipeline(b, src, RunOptions(show=True, jsonl=tmp_path / "o.jsonl")).run()
    # one window without the Qt toolbar, sized to the frames (pixels 1:1); not AUTOSIZE, which with
    # GUI_NORMAL at times never paints (runtime/display.py)
    assert windows == [("novum", cv2.WINDOW_NORMAL | cv2.WINDOW_GUI_NORMAL)]
    assert sizes == [("novum", shown[0][1], shown[0][0])]
    assert requested == [3]                  # p on the third frame (the second one waited out the pause)
    assert s.frames == 5 == len(shown) == len(records(tmp_path / "o.jsonl")) and not s.interrupted
    assert s.stream_error is None            # quitting is not a broken stream


def test_pose_model_that_does_not_match_the_classifier(video, tmp_path):
    from factories import make_small_model

    from novum.checkpoint import save_native
    from novum.errors import NovumError

    other = save_native(make_small_model(1, classes=("car", "bus")), tmp_path / "two.safetensors")
    with pytest.raises(NovumError) as e:
        run(str(video), small_onnx(), show=False, quiet=True, pose_every=5, pose_model=other)
    assert "\n" not in str(e.value) and "does not match the classifier" in str(e.value)
