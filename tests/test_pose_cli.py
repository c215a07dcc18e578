"""novum-pose on an image: torch checkpoint and ONNX export (features output) + checkpoint."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from novum.export.onnx import export_onnx
from novum.pose.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_model):
    from novum.checkpoint import save_native
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    d = tmp_path_factory.mktemp("pose_cli")
    ck = save_native(small_model, d / "m.safetensors")
    s = SyntheticDataset(SyntheticConfig(per_class=1, split="test"), small_model.config)[5]
    big = cv2.resize(s.image, (320, 256))                    # larger than the input: framed like novum-run
    cv2.imwrite(str(d / "car.png"), big)
    return d, ck


def test_pose_from_checkpoint(files, capsys):
    d, ck = files
    out = d / "o.png"
    rc = main([str(d / "car.png"), "--model", str(ck), "--explain", "--out", str(out), "--iterations", "5",
               "--class", "car", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["class"] == "car" and res["overlay"] == str(out)
    assert np.isfinite([res["azimuth_deg"], res["elevation_deg"], res["theta_deg"], res["distance"]]).all()
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] >= 480 and img.shape[1] / img.shape[0] == pytest.approx(160 / 128)
    # the wireframe colour (yellow) is drawn
    assert ((img[..., 0] < 60) & (img[..., 1] > 200) & (img[..., 2] > 200)).sum() > 50


def test_pose_from_onnx_features(files, small_model, capsys):
    d, ck = files
    onnx_path = export_onnx(small_model, d / "m.onnx", features=True)
    rc = main([str(d / "car.png"), "--model", str(onnx_path), "--checkpoint", str(ck), "--out", str(d / "x.png"),
               "--iterations", "3", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    # the same image through torch gives the same class and (nearly) the same features, so the same grid init
    rc = main([str(d / "car.png"), "--model", str(ck), "--out", str(d / "y.png"), "--iterations", "3", "--json"])
    ref = json.loads(capsys.readouterr().out)
    assert res["class"] == ref["class"]
    assert res["azimuth_deg"] == pytest.approx(ref["azimuth_deg"], abs=1.0)


def test_errors_are_one_line(files, capsys):
    d, ck = files
    assert main([str(d / "missing.png"), "--model", str(ck)]) == 2
    assert "image not found" in capsys.readouterr().err
    assert main([str(d / "car.png"), "--model", str(ck), "--class", "spaceship", "--out", str(d / "z.png")]) == 2
    assert "unknown class 'spaceship'" in capsys.readouterr().err
    plain = export_onnx(__import__("factories").make_small_model(), d / "plain.onnx")
    assert main([str(d / "car.png"), "--model", str(plain), "--checkpoint", str(ck)]) == 2
    assert "no 'features' output" in capsys.readouterr().err
    assert main([str(d / "car.png"), "--model", str(plain)]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_truncated_onnx_is_reported_as_broken(files, small_model, tmp_path, capsys):
    from novum.export.onnx import export_onnx

    d, ck = files
    full = export_onnx(small_model, tmp_path / "m.onnx", features=True).read_bytes()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(full[: len(full) // 2])
    for extra in ([], ["--checkpoint", str(ck)]):                # with or without the checkpoint it names the file
        assert main([str(d / "car.png"), "--model", str(trunc), "--out", str(tmp_path / "o.png"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "trunc.onnx" in err and "the file is broken" in err, err
        assert "class meshes" not in err and not (tmp_path / "o.png").exists()


def test_json_and_runtime_jsonl_share_the_angle_convention(files, capsys):
    from novum.pose.refine import PoseResult
    from novum.runtime.pose import pose_record

    d, ck = files
    assert main([str(d / "car.png"), "--model", str(ck), "--out", str(d / "j.png"), "--iterations", "2", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    rec = pose_record(PoseResult(label=5, azimuth=1.0, elevation=0.5, theta=-0.1, distance=5.0, loss=0.2, seconds=0.1),
                      frame=3, label=5)
    angles = {"azimuth_deg", "elevation_deg", "theta_deg", "distance"}
    assert angles <= set(cli) and angles <= set(rec)
    assert not {"azimuth", "elevation", "theta"} & (set(cli) | set(rec))
    assert rec["azimuth_deg"] == pytest.approx(57.29578, rel=1e-6)
