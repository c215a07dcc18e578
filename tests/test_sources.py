"""Sources (one grammar) and framing: files give every frame, live sources only the newest,
bad sources fail with one-line errors; frames are cropped/padded as the model expects."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from fakes.runtime_assets import frames, write_video
from novum.contracts.framing import Framer
from novum.errors import InputError
from novum.runtime.sources import ImageSource, LiveSource, VideoFileSource, open_source


def one_line_error(spec, match: str) -> None:
    with pytest.raises(InputError) as e:
        open_source(spec)
    assert "\n" not in str(e.value) and match in str(e.value), str(e.value)


def test_video_file_gives_every_frame_in_order(tmp_path):
    imgs = frames(12, 90, 120, seed=1)
    for name in ("v.mp4", "v.avi"):
        with open_source(write_video(tmp_path / name, imgs, fps=12.0)) as src:
            assert isinstance(src, VideoFileSource) and not src.live and src.expected_frames == 12
            got = list(src)
        assert [f.index for f in got] == list(range(12))
        assert [f.timestamp for f in got] == pytest.approx([i / 12 for i in range(12)])
        assert np.abs(got[5].image.astype(int) - imgs[5]).mean() < 12   # lossy codecs, same picture
        assert src.error is None


def test_images_folder_and_glob(tmp_path):
    imgs = frames(3, 60, 80, seed=2)
    for i, im in zip((2, 0, 1), imgs):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), im)
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(tmp_path) as src:
        assert isinstance(src, ImageSource)
        got = list(src)
    assert [f.name for f in got] == ["img0.png", "img1.png", "img2.png"]
    assert all(f.timestamp is None for f in got)
    np.testing.assert_array_equal(got[2].image, imgs[0])        # img2.png was written from imgs[0]
    with open_source(str(tmp_path / "img[01].png")) as src:
        assert [f.name for f in src] == ["img0.png", "img1.png"]
    with open_source(tmp_path / "img1.png") as src:
        assert len(list(src)) == 1


def test_folders_are_searched_recursively_so_novum_data_output_works(tmp_path):
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset
    from novum.data.writer import write_dataset

    ds = SyntheticDataset(SyntheticConfig(per_class=2, classes=("car", "bus"), image_size=(64, 80)))
    write_dataset(ds, tmp_path / "data", progress=False)          # images/<class>/..., annotations/<class>/...
    (tmp_path / "data" / ".hidden").mkdir()
    cv2.imwrite(str(tmp_path / "data" / ".hidden" / "x.png"), frames(1, 64, 80)[0])
    with open_source(tmp_path / "data") as src:
        got = list(src)
    assert len(got) == 4 and [f.index for f in got] == [0, 1, 2, 3]
    paths = [str(p.relative_to(tmp_path / "data")) for p in src.paths]
    assert paths == sorted(paths) and all(p.startswith("images/") for p in paths)   # not .hidden, no .npz
    with open_source(str(tmp_path / "data" / "**" / "bus*.png")) as src:      # ** globs reach any depth
        assert len(list(src)) == 2


def test_bad_sources_are_one_line_errors(tmp_path):
    one_line_error("0", "no camera at index 0")                # this machine has no camera
    one_line_error("/dev/video7", "no such camera device")
    one_line_error(tmp_path / "missing.mp4", "source not found")
    one_line_error(str(tmp_path / "*.jpg"), "matches no images")
    (tmp_path / "empty").mkdir()
    one_line_error(tmp_path / "empty", "hold no images")
    # fixed garbage: FFmpeg's format probing accepts a rare random byte string as some container (the
    # source then opens and fails with "no frame could be decoded"), so os.urandom made this flaky
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    one_line_error(tmp_path / "corrupt.mp4", "cannot open as a video")
    one_line_error("rtsp://127.0.0.1:9/none", "cannot open the stream")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with open_source(tmp_path / "bad.png") as src:
        assert list(src) == [] and "cannot decode the image" in src.error


def test_truncated_video(tmp_path):
    imgs = frames(20, 90, 120, seed=3)
    for name in ("v.avi", "v.mp4"):
        data = write_video(tmp_path / name, imgs).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: int(len(data) * 0.6)])
    with open_source(tmp_path / "cut_v.avi") as src:   # AVI: opens, breaks mid-stream
        n = len(list(src))
    assert 0 < n < 20 and "broke after frame" in src.error and "of 20" in src.error
    one_line_error(tmp_path / "cut_v.mp4", "cannot open as a video")   # mp4: the index is at the end


class FakeCamera:
    """A capture that produces numbered frames at ``fps`` (the pixel value encodes the number)."""

    def __init__(self, n: int, fps: float = 200.0) -> None:
        self.n, self.dt, self.i = n, 1.0 / fps, 0
        self.released = threading.Event()

    def read(self):
        if self.i >= self.n:
            return False, None
        time.sleep(self.dt)
        img = np.full((24, 32, 3), self.i % 256, np.uint8)
        self.i += 1
        return True, img

    def get(self, prop):
        return 1.0 / self.dt if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released.set()


class SteppingCamera:
    """A capture whose frames come when the test says so: ``give(k)`` lets k more frames be read,
    ``wait_idle()`` returns once the reader has stored all of them and asks for the next."""

    def __init__(self, n: int) -> None:
        self.n, self.i, self.given = n, 0, 0
        self._allowed = threading.Semaphore(0)
        self._asking = threading.Condition()
        self.asked_for = -1              # the frame the reader is waiting for
        self.released = threading.Event()

    def give(self, k: int) -> None:
        self.given += k
        for _ in range(k):
            self._allowed.release()

    def wait_idle(self) -> None:
        with self._asking:
            assert self._asking.wait_for(lambda: self.asked_for == self.given, timeout=10)

    def read(self):
        with self._asking:
            self.asked_for = self.i
            self._asking.notify_all()
        if self.i >= self.n or not self._allowed.acquire(timeout=10):
            return False, None
        img = np.full((24, 32, 3), self.i % 256, np.uint8)
        self.i += 1
        return True, img

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released.set()


def test_live_source_keeps_only_the_newest_frame():
    """Frames arriving while the consumer is busy replace each other: it always gets the newest."""
    cam = SteppingCamera(12)
    src = LiveSource(cam, "stepping camera")
    it = iter(src)
    got = []
    for burst in (5, 3, 1, 3):           # the camera delivers a burst while the model works on a frame
        cam.give(burst)
        cam.wait_idle()                  # every frame of the burst is read and stored
        f = next(it)
        got.append(f.index)
        assert f.index == cam.i - 1 and int(f.image[0, 0, 0]) == f.index   # the newest, no lag
    assert got == [4, 7, 8, 11] and src.dropped == 12 - 4
    assert list(it) == [] and src.error and "after 12 frames" in src.error
    src.close()
    assert cam.released.is_set()


def test_live_source_every_frame_when_asked():
    src = LiveSource(FakeCamera(30), "fake camera", keep_all=True)
    got = [f.index for f in src]
    src.close()
    assert got == list(range(30)) and src.dropped == 0


# -- framing --------------------------------------------------------------------------------
def test_default_framing_is_the_centred_crop_at_the_model_aspect():
    frame = frames(1, 240, 400, seed=4)[0]
    img, crop = Framer((128, 160))(frame)
    assert img.shape == (128, 160, 3) and img.dtype == np.uint8
    assert (crop.x0, crop.y0, crop.w, crop.h) == (50, 0, 300, 240)
    ref = cv2.resize(frame[:, 50:350], (160, 128), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(img, ref)
    tall = frames(1, 400, 200, seed=5)[0]
    _, crop = Framer((128, 160))(tall)
    assert (crop.x0, crop.w) == (0, 200) and crop.h == pytest.approx(160) and crop.y0 == pytest.approx(120)


def test_roi_is_centred_and_zero_padded_outside_the_frame():
    frame = np.full((200, 300, 3), 90, np.uint8)
    cv2.circle(frame, (20, 30), 3, (255, 255, 255), -1)           # object at the frame corner
    framer = Framer((128, 160), roi=(0, 0, 40, 60))                # box around it, centre (20, 30)
    img, crop = framer(frame)
    assert crop.h == pytest.approx(60) and crop.w == pytest.approx(75)
    ys, xs = np.nonzero(img[..., 0] > 200)
    assert abs(ys.mean() - 64) < 3 and abs(xs.mean() - 80) < 3     # the object lands at the input centre
    assert (img[:10, :10] == 0).all()                              # outside the frame: zero padding, as upstream
    np.testing.assert_allclose(crop.to_frame(np.array([80.0, 64.0]), (128, 160)), [20, 30], atol=1e-9)
    with pytest.raises(InputError) as e:
        Framer((128, 160), roi=(500, 500, 10, 10))(frame)
    assert "outside" in str(e.value)
    with pytest.raises(InputError):
        Framer((128, 160), roi=(0, 0, 0, 10))


def test_paste_puts_a_model_view_back_over_the_crop():
    frame = np.zeros((200, 300, 3), np.uint8)
    framer = Framer((128, 160), roi=(100, 50, 80, 64))
    _, crop = framer(frame)
    framer.paste(frame, np.full((128, 160, 3), 255, np.uint8), crop)
    x0, y0, x1, y1 = crop.rect()
    assert (frame[y0:y1, x0:x1] == 255).all() and frame.sum() == 255 * 3 * (y1 - y0) * (x1 - x0)
