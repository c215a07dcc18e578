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
