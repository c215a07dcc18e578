"""Data on disk: NeMo-layout writer, PASCAL3D+ loader (generated data and a real-layout fixture),
torch collate, the novum-data CLI and the demo clip."""
from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from novum.config import small_config
from novum.data.keypoints import annotate, class_mesh
from novum.data.pascal3d import Pascal3DDataset
from novum.data.synthetic import SyntheticConfig, SyntheticDataset
from novum.data.writer import write_dataset
from novum.errors import InputError

CFG = small_config(classes=("car", "chair", "tvmonitor"))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    ds = SyntheticDataset(SyntheticConfig(per_class=2, split="test", occlusion="L2"), CFG)
    write_dataset(ds, root, progress=False)
    return ds, root


def test_written_layout_round_trips_through_the_loader(written):
    ds, root = written
    for cat in CFG.classes:
        assert (root / "lists" / f"{cat}FGL2_BGL2" / "mesh01.txt").read_text().count(".png") == 2
    with np.load(next((root / "annotations" / "carFGL2_BGL2").glob("*.npz"))) as z:
        for k in ("cropped_kp_list", "visible", "kp_weights", "azimuth", "elevation", "theta", "distance", "box_obj",
                  "occluder_mask", "obj_mask"):
            assert k in z.files
    loaded = Pascal3DDataset(root, model_config=None, occlusion="L2")   # model config from novum_dataset.json
    assert loaded.model_config.n_list == CFG.n_list and len(loaded) == len(ds)
    orig = {s.name: s for s in ds}
    for s in loaded:
        o = orig[s.name]
        assert s.label == o.label
        for f in ("image", "kp", "visible", "box", "mask", "occluder"):
            np.testing.assert_array_equal(getattr(s, f), getattr(o, f), err_msg=f)
        np.testing.assert_allclose(s.pose, o.pose, rtol=1e-6)
        np.testing.assert_allclose(s.kp_weights, o.kp_weights, rtol=1e-6)


def _nemo_fixture(root, model_cfg, n_kp: int | None):
    """A tiny dataset in the real NeMo layout: 640x800 JPEG crops, annotations/ + annotations3D_single/,
    lists3D_single/, an object-array occ_mask, the original (non-5) distance."""
    ds = SyntheticDataset(SyntheticConfig(per_class=2, split="val", distance_jitter=0.0), model_cfg)
    truth = []
    for i in range(len(ds)):
        s = ds[i]
        cat = model_cfg.classes[s.label]
        big = cv2.resize(s.image, (800, 640), interpolation=cv2.INTER_LINEAR)
        for sub in ("images", "annotations", "annotations3D_single", "lists3D_single"):
            (root / sub / cat).mkdir(parents=True, exist_ok=True)
        name = f"n0000{i}_{i}"
        cv2.imwrite(str(root / "images" / cat / f"{name}.JPEG"), big, [cv2.IMWRITE_JPEG_QUALITY, 75])
        a, e, t, _ = (float(v) for v in s.pose)
        y0, y1, x0, x1 = (int(v) * 5 for v in s.box)
        np.savez(root / "annotations" / cat / f"{name}.npz", name=np.array(name), azimuth=a, elevation=e, theta=t,
                 distance=7.3, box_obj=np.array([y0, y1, x0, x1, 640, 800], np.float32),
                 occ_mask=np.array(None, dtype=object), focal=1.0, viewport=3000.0)
        n = n_kp or model_cfg.n_list[s.label]
        mesh = class_mesh(tuple(model_cfg.extents[s.label]), model_cfg.n_list[s.label])[0] if n_kp is None else \
            np.random.default_rng(i).uniform(-0.5, 0.5, (n, 3))
        ann = annotate(mesh, (a, e, t, 5.0), model_cfg.focal * 5, (640, 800))
        np.savez(root / "annotations3D_single" / cat / f"{name}.npz", cad_index=1, cropped_kp_list=ann["kp"],
                 visible=ann["visible"], kp_weights=ann["kp_weights"])
        with open(root / "lists3D_single" / cat / "mesh01.txt", "a") as f:
            f.write(f"{name}.JPEG\n")
        truth.append(s)
    return truth


@pytest.mark.parametrize("n_kp", [None, 1000])
def test_loader_reads_the_real_nemo_layout(tmp_path, n_kp):
    """Matching vertex counts: annotated keypoints, scaled 640x800 -> 128x160. Other counts (the
    upstream meshes): keypoints recomputed from the angles with the model's cuboid."""
    truth = _nemo_fixture(tmp_path, CFG, n_kp)
    ds = Pascal3DDataset(tmp_path, classes=CFG.classes, model_config=CFG)
    assert len(ds) == len(truth)
    by_name = {s.name: s for s in ds}
    for i, t in enumerate(truth):
        s = by_name[f"n0000{i}_{i}"]
        assert s.image.shape == t.image.shape and s.label == t.label
        assert np.abs(s.image.astype(float) - t.image).mean() < 6
        np.testing.assert_array_equal(s.box, t.box)
        assert s.pose[3] == pytest.approx(CFG.distance)   # the crop's framing distance, not the original 7.3
        agree = np.all(s.kp == t.kp, axis=1).mean()
        assert agree >= 0.97, agree                         # float32 angles may move a vertex across a pixel edge
        assert (s.visible == t.visible).mean() >= 0.97
        assert s.mask is None
    strict = Pascal3DDataset(tmp_path, classes=("car",), model_config=CFG, keypoints="annotation")
    if n_kp:   # annotated keypoints of another mesh cannot be used as they are
        with pytest.raises(InputError):
            strict[0]
    else:
        assert strict[0].kp.shape == (CFG.n_list[0], 2)


def test_loader_errors_are_one_line(tmp_path, written):
    _, root = written
    cases = [lambda: Pascal3DDataset(tmp_path / "nope", model_config=CFG),
             lambda: Pascal3DDataset(root, classes=("car",), model_config=CFG),           # no unoccluded car
             lambda: Pascal3DDataset(root, classes=("boat",), model_config=CFG, occlusion="L2"),
             lambda: Pascal3DDataset(root, model_config=CFG, occlusion="L2", keypoints="magic")]
    for make in cases:
        with pytest.raises(InputError) as e:
            make()
        assert "\n" not in str(e.value)


def test_collate_pads_keypoints(written):
    import torch

    from novum.data.torch_data import collate

    ds, _ = written
    batch = collate([ds[0], ds[5]], CFG.max_n)
    assert batch["images"].dtype == torch.uint8 and tuple(batch["images"].shape) == (2, 128, 160, 3)
    assert batch["labels"].tolist() == [0, 2]
    n0 = CFG.n_list[0]
    assert tuple(batch["kp"].shape) == (2, CFG.max_n, 2)
    assert batch["visible"][0, n0:].sum() == 0 and (batch["kp"][0, n0:] == -1).all()
    assert batch["visible"][0, :n0].tolist() == ds[0].visible.tolist()
    assert tuple(batch["pose"].shape) == (2, 4) and tuple(batch["box"].shape) == (2, 4)


def test_cli_generate_and_errors(tmp_path, capsys):
    from novum.data.cli import main

    out = tmp_path / "gen"
    assert main(["generate", "--out", str(out), "--split", "test", "--per-class", "1", "--classes", "car,bus",
                 "--corruption", "jpeg", "--no-progress"]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["bus", "car"]
    meta = json.loads((out / "novum_dataset.json").read_text())
    assert meta["synthetic"]["corruption"] == "jpeg" and meta["classes"] == ["car", "bus"]
    assert len(Pascal3DDataset(out)) == 2
    capsys.readouterr()
    assert main(["generate", "--out", str(out), "--classes", "car,spaceship"]) == 2
    assert main(["generate", "--out", str(out), "--severity", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)


def test_clip_generator_writes_a_readable_video(tmp_path):
    from novum.data.clip import make_clip

    out = make_clip(tmp_path / "c.mp4", classes=("car", "chair"), seconds_per_class=0.4, fps=10, image_size=(64, 80),
                    truth=tmp_path / "c.json")
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 8 and frames[0].shape == (64, 80, 3)
    assert np.abs(frames[0].astype(float) - frames[3]).mean() > 1   # the object turns
    truth = json.loads((tmp_path / "c.json").read_text())
    assert [f["class"] for f in truth["frames"]] == ["car"] * 4 + ["chair"] * 4


def test_bundled_demo_clip():
    from novum.bundled import DEMO_CLIP

    assert DEMO_CLIP.is_file() and DEMO_CLIP.stat().st_size < 2_000_000
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    ok, frame = cap.read()
    assert ok and frame.shape[0] * 5 == frame.shape[1] * 4
    assert 10 <= n / fps <= 15


def test_npz_annotations_do_not_need_pickle(written):
    _, root = written
    data = next((root / "annotations" / "chairFGL2_BGL2").glob("*.npz")).read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert z["cropped_kp_list"].dtype == np.int64 and z["visible"].dtype == bool


def test_cli_bench_reports_every_variant(capsys):
    from novum.data.cli import main

    assert main(["bench", "-n", "2", "--imgsz", "64", "80"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0].strip() for ln in lines] == ["clean", "L2", "blur"]
    assert all(float(ln.split()[1]) > 0 for ln in lines)
