"""--pose-every: on files every requested pose is computed and joined to its own frame, on live
sources the newest request wins (drops counted), a pose is drawn only on frames of its class, the
wireframe shows with --parts, and poses are logged in degrees (one convention with novum-pose)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakes.runtime_assets import frames, read_video, small_native, small_onnx, write_video
from novum.runtime.run import run

YELLOW = (0, 255, 255)   # the wireframe colour (novum.pose.draw default)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def slow_refiner(monkeypatch):
    """A refiner that takes ``delay`` seconds per pose (much longer than a frame) and logs its calls."""
    import novum.pose.refine as refine_mod

    class Stub:
        delay = 0.15
        calls: list[tuple[int, tuple]] = []

        def refine(self, features, label):
            time.sleep(self.delay)
            Stub.calls.append((int(label), features.shape))
            return refine_mod.PoseResult(label=int(label), azimuth=0.6, elevation=0.25, theta=0.05, distance=5.0,
                                         loss=0.1, seconds=self.delay)

    Stub.calls = []
    monkeypatch.setattr(refine_mod, "load_refiner", lambda ckpt, **kw: Stub())
    return Stub


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("posevid") / "clip.mp4", frames(12, 180, 240, seed=3), fps=10.0)


def test_video_file_every_requested_pose_is_joined_to_its_own_frame(video, tmp_path, slow_refiner):
    s = run(str(video), small_onnx(), show=False, quiet=True, pose_every=3, pose_model=small_native(),
            jsonl=tmp_path / "o.jsonl", save=tmp_path / "o.mp4", threads=1)
    recs = records(tmp_path / "o.jsonl")
    assert s.frames == 12 == len(recs)
    posed = [r for r in recs if "pose" in r]
    assert [r["frame"] for r in posed] == [0, 3, 6, 9]              # every request, none lost at the end
    for r in posed:
        p = r["pose"]
        assert p["frame"] == r["frame"] and p["class_index"] == r["class_index"] and p["label"] == r["label"]
        assert p["azimuth_deg"] == pytest.approx(np.degrees(0.6)) and p["elevation_deg"] == pytest.approx(np.degrees(0.25))
        assert "azimuth" not in p and p["distance"] == 5.0           # degrees, with the unit in the key
    assert len(slow_refiner.calls) == 4
    assert s.pose.requested == s.pose.computed == 4 and s.pose.dropped == 0
    assert "joined to its own frame" in s.line() and "4 of 4" in s.line()


def test_image_folder_with_parts_every_image_posed_and_wireframe_drawn(tmp_path, slow_refiner):
    slow_refiner.delay = 0.05
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(frames(5, 128, 160, seed=11)):
        cv2.imwrite(str(folder / f"im{i}.png"), im)
    common = dict(show=False, quiet=True, parts=True, parts_alpha=0.6, threads=1)
    s = run(str(folder), small_onnx(), pose_every=1, pose_model=small_native(), jsonl=tmp_path / "p.jsonl",
            save=tmp_path / "p.mp4", **common)
    run(str(folder), small_onnx(), save=tmp_path / "plain.mp4", **common)
    recs = records(tmp_path / "p.jsonl")
    assert s.frames == 5 and [r["pose"]["frame"] for r in recs] == [0, 1, 2, 3, 4]
    assert [r["pose"]["class_index"] for r in recs] == [r["class_index"] for r in recs]
    for a, b in zip(read_video(tmp_path / "p.mp4"), read_video(tmp_path / "plain.mp4")):
        changed = np.abs(a.astype(int) - b.astype(int)).sum(-1) > 60
        yellow = (a[..., 0] < 90) & (a[..., 1] > 190) & (a[..., 2] > 190)
        assert (changed & yellow).sum() > 30                         # the wireframe, over the part colours


def test_pose_is_drawn_and_logged_only_with_its_class(video, tmp_path, slow_refiner, monkeypatch):
    """Labels switch class every 4 frames; poses every 3 frames: each pose is drawn on its own frame
    and later frames while the label stays its class, never on a frame of another class."""
    import novum.runtime.pipeline as pl

    real = pl.predict
    count = {"n": 0}

    def scripted(outputs, i, classes, k=3):
        p = real(outputs, i, classes, k)
        c = (count["n"] // 4) % 2 + 4                                  # 4 4 4 4 5 5 5 5 4 4 4 4
        count["n"] += 1
        return pl.Prediction(classes[c], c, p.confidence, p.topk, p.coverage, p.scores)

    monkeypatch.setattr(pl, "predict", scripted)
    run(str(video), small_onnx(), show=False, quiet=True, pose_every=3, pose_model=small_native(),
        jsonl=tmp_path / "o.jsonl", save=tmp_path / "o.mp4", threads=1)
    count["n"] = 0
    run(str(video), small_onnx(), show=False, quiet=True, save=tmp_path / "plain.mp4", threads=1)
    recs = records(tmp_path / "o.jsonl")
    labels = [r["class_index"] for r in recs]
    assert labels == [4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 4]
    assert [(r["frame"], r["pose"]["class_index"]) for r in recs if "pose" in r] == [(0, 4), (3, 4), (6, 5), (9, 4)]
    # a drawn wireframe changes about 1000 yellow pixels; the codec's noise along the (yellow) vote box,
    # which differs between the two encodes, up to about 30
    drawn = [int(((np.abs(a.astype(int) - b.astype(int)).sum(-1) > 60)
                  & (a[..., 1] > 190) & (a[..., 2] > 190)).sum() > 300)
             for a, b in zip(read_video(tmp_path / "o.mp4"), read_video(tmp_path / "plain.mp4"))]
    # frames 0-3: car pose (4); 4, 5: no pose of class 5 yet; 6, 7: its pose; 8: class 4 again, the
    # old pose is not revived; 9-11: the new one
    assert drawn == [1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1]


def test_live_source_newest_request_wins_and_drops_are_counted(tmp_path, slow_refiner, monkeypatch):
    import threading

    from test_sources import FakeCamera

    from novum.runtime.backends import load
    from novum.runtime.pipeline import Pipeline, RunOptions
    from novum.runtime.pose import PoseWorker
    from novum.runtime.sources import LiveSource

    # deterministic on any machine: the first pose is held until three more requests came in; the
    # first of those waits in the mailbox, the next two each replace the one waiting (2 dropped)
    slow_refiner.delay = 0.0
    gate, submitted = threading.Event(), []
    real_refine, real_submit = slow_refiner.refine, PoseWorker.submit

    def held_refine(self, features, label):
        gate.wait(30)
        return real_refine(self, features, label)

    def counting_submit(self, *a, **k):
        real_submit(self, *a, **k)
        submitted.append(1)
        if len(submitted) == 4:
            gate.set()

    class Camera(FakeCamera):          # starts once the pipeline (and its pose refiner) is ready
        started = threading.Event()

        def read(self):
            self.started.wait(60)
            return super().read()

    monkeypatch.setattr(slow_refiner, "refine", held_refine)
    monkeypatch.setattr(PoseWorker, "submit", counting_submit)
    src = LiveSource(Camera(300, fps=150), "fake camera")
    try:
        with load(small_onnx(), intra_op_threads=1) as b:
            pipe = Pipeline(b, src, RunOptions(jsonl=tmp_path / "o.jsonl", pose_every=1, pose_checkpoint=small_native()))
            Camera.started.set()
            s = pipe.run()
    finally:
        Camera.started.set()
        src.close()
    recs = records(tmp_path / "o.jsonl")
    st = s.pose
    assert st.requested == s.frames >= 4 and st.computed >= 2 and st.dropped >= 2
    assert st.computed + st.dropped + st.failed == st.requested      # every request accounted for
    logged = [(r["frame"], r["pose"]) for r in recs if "pose" in r]
    assert logged and all(p["frame"] <= f for f, p in logged)        # logged on a later frame, with its own index
    assert len(logged) == st.logged <= st.computed                   # a pose done after the last frame: said so
    assert "dropped (live source: the newest request wins)" in s.line()
    assert ("computed but not logged" in s.line()) == (st.logged < st.computed)


def test_live_summary_names_poses_that_finished_after_the_last_frame():
    from novum.runtime.pose import PoseStats

    line = PoseStats(requested=13, computed=1, dropped=12, logged=0).line(live=True)
    assert line == ("poses: 1 of 13 requested computed, 12 dropped (live source: the newest request wins), "
                    "1 computed but not logged (finished after the last frame)")
    assert "not logged" not in PoseStats(requested=4, computed=2, dropped=2, logged=2).line(live=True)
