"""Calibration readers: folder / video / synthetic frames, framed as the runtime frames them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from novum.calibration.readers import (OrtCalibrationReader, calibration_frames, folder_frames, synthetic_frames,
                                       video_frames)
from novum.config import small_config
from novum.contracts.framing import Framer
from novum.errors import InputError

SIZE = (128, 160)


@pytest.fixture(scope="module")
def config():
    return small_config(input_size=SIZE)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from factories import structured_frames

    d = tmp_path_factory.mktemp("calib_images")
    for i, img in enumerate(structured_frames(10, 240, 320, seed=1)):
        cv2.imwrite(str(d / f"img_{i:02d}.png"), img if i % 2 else img[:, 40:280])  # two aspect ratios
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from factories import structured_frames

    path = tmp_path_factory.mktemp("calib_video") / "clip.avi"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (320, 240))  # lossless
    for img in structured_frames(20, 240, 320, seed=2):
        wr.write(img)
    wr.release()
    return path


def test_folder_reader_count_dtype_shape_and_framing(image_dir):
    calib, held = folder_frames(image_dir, SIZE, 4, seed=0, holdout=3)
    assert calib.frames.shape == (4, *SIZE, 3) and calib.frames.dtype == np.uint8
    assert held is not None and held.frames.shape == (3, *SIZE, 3)
    assert len(calib.names) == 4 and not set(calib.names) & set(held.names)   # held-out never calibrates
    # each frame is exactly what the runtime's framing makes of that file
    for name, frame in zip(calib.names, calib.frames):
        expected, _ = Framer(SIZE)(cv2.imread(str(image_dir / name)))
        np.testing.assert_array_equal(frame, expected)


def test_folder_reader_is_deterministic_in_the_seed(image_dir):
    a, _ = folder_frames(image_dir, SIZE, 5, seed=3)
    b, _ = folder_frames(image_dir, SIZE, 5, seed=3)
    c, _ = folder_frames(image_dir, SIZE, 5, seed=4)
    assert a.names == b.names and np.array_equal(a.frames, b.frames) and a.sha256() == b.sha256()
    assert a.names != c.names and a.sha256() != c.sha256()


def test_video_reader(video):
    calib, held = video_frames(video, SIZE, 6, seed=0, holdout=5)
    assert calib.frames.shape == (6, *SIZE, 3) and calib.frames.dtype == np.uint8
    assert held is not None and len(held) == 5
    idx = [int(n.split("#")[1]) for n in calib.names]
    assert all(n.startswith("clip.avi#") for n in calib.names) and idx == sorted(idx)
    assert not set(calib.names) & set(held.names)
    cap = cv2.VideoCapture(str(video))
    decoded = [cap.read()[1] for _ in range(20)]
    cap.release()
    for i, frame in zip(idx, calib.frames):
        np.testing.assert_array_equal(frame, Framer(SIZE)(decoded[i])[0])
    again, _ = video_frames(video, SIZE, 6, seed=0)
    assert again.names == calib.names and np.array_equal(again.frames, calib.frames)


def test_synthetic_reader_balanced_labelled_deterministic(config):
    a = synthetic_frames(config, 5, seed=0)
    assert a.frames.shape == (5, *SIZE, 3) and a.frames.dtype == np.uint8
    assert list(a.labels) == [k % config.num_classes for k in range(5)]
    b = synthetic_frames(config, 5, seed=0)
    assert a.names == b.names and np.array_equal(a.frames, b.frames)
    c = synthetic_frames(config, 5, seed=1)
    assert not np.array_equal(a.frames, c.frames)


def test_demo_spec_holds_out_the_test_split(config):
    calib, held = calibration_frames("demo", config, 3, seed=0, holdout=2)
    assert calib.kind == "synthetic" and "train" in calib.source and "test" in held.source
    assert held.labels is not None and not set(calib.names) & set(held.names)


def test_reader_errors(tmp_path, image_dir, config):
    with pytest.raises(InputError, match="only 10 frames"):
        folder_frames(image_dir, SIZE, 11)
    with pytest.raises(InputError, match="not found"):
        calibration_frames(tmp_path / "nope", config, 4)
    with pytest.raises(InputError, match="one image"):
        calibration_frames(image_dir / "img_00.png", config, 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        calibration_frames(empty, config, 4)


def test_ort_reader_batches_then_none():
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    r = OrtCalibrationReader(frames, "images", batch=2)
    shapes = []
    while (d := r.get_next()) is not None:
        shapes.append(d["images"].shape[0])
    assert shapes == [2, 2, 1] and r.served == 5 and len(r) == 3
