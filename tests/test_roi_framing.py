"""--roi is the object's box, framed the way training framed objects (the model's framing record).

Rendered scenes (novum.data's generator) with the object at the training scale placed off-centre in
a larger frame: classifying the true box must be at least as accurate as the whole frame."""
from __future__ import annotations

import json

import numpy as np
import pytest

from novum.data.framing import framing_from_boxes, generator_framing, placed_scene
from novum.contracts.framing import Framer


def test_roi_crop_reproduces_the_recorded_fill_and_offset():
    framing = {"object_fill": 0.5, "centre_offset": [0.05, -0.1]}
    fr = Framer((128, 160), roi=(100, 50, 40, 20), framing=framing)
    crop = fr.crop_for((256, 320))
    assert crop.h == pytest.approx(max(20, 40 / 1.25) / 0.5) and crop.w == pytest.approx(crop.h * 1.25)
    # the box's centre sits where training put object centres: offset by (0.05 W, -0.1 H) from the crop centre
    assert 120 - (crop.x0 + crop.w / 2) == pytest.approx(0.05 * crop.w)
    assert 60 - (crop.y0 + crop.h / 2) == pytest.approx(-0.1 * crop.h)
    img, _ = fr(np.zeros((256, 320, 3), np.uint8))
    assert img.shape == (128, 160, 3)


def test_framing_record_from_boxes():
    boxes = np.array([[32, 96, 40, 120], [40, 88, 60, 100], [0, 128, 0, 160]])   # y0 y1 x0 x1 in 128x160
    fr = framing_from_boxes(boxes, (128, 160), "test")
    assert fr["object_fill"] == pytest.approx(0.5) and fr["samples"] == 3 and fr["pad"] == "zero"
    assert fr["centre_offset"] == [0.0, 0.0] and fr["aspect"] == pytest.approx(1.25)


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    from novum.bundled import DEMO_MODEL
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    return export_onnx(load_model(DEMO_MODEL), tmp_path_factory.mktemp("roi") / "demo.onnx")


def test_true_box_is_at_least_as_accurate_as_the_whole_frame_off_centre(demo_onnx):
    from novum.config import ModelConfig
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset
    from novum.runtime.backends import load

    with load(demo_onnx, intra_op_threads=1) as b:
        config = ModelConfig.from_dict(b.metadata)
        framing = b.metadata["framing"]                          # recorded at export
        assert framing == config.framing and 0.3 < framing["object_fill"] < 1.0
        # the framing novum-train measured on the model's training data, else (older checkpoints) the
        # generator's, measured at export; the two agree closely
        from novum.bundled import DEMO_MODEL
        from novum.checkpoint import load_model
        recorded = load_model(DEMO_MODEL).config.framing
        generated = generator_framing(config)["object_fill"]
        assert framing["object_fill"] == (recorded["object_fill"] if recorded else generated)
        assert abs(framing["object_fill"] - generated) < 0.05
        ds = SyntheticDataset(SyntheticConfig(per_class=2, split="test", seed=7), config)
        H, W = b.input_size
        rng = np.random.default_rng(0)
        acc = {}
        for scale in (1.25, 2.0):                                  # frame = scale x the input, object at training scale
            fh, fw = int(scale * H), int(scale * W)
            m = min(0.5, 0.38 / scale + 0.02)
            inputs: dict[str, list] = {"whole": [], "roi": []}
            labels = []
            for i in range(len(ds)):
                img, box, label = placed_scene(ds, i, (fh, fw), (fw * rng.uniform(m, 1 - m), fh * rng.uniform(m, 1 - m)))
                inputs["whole"].append(Framer((H, W))(img)[0])
                inputs["roi"].append(Framer((H, W), box, framing)(img)[0])
                labels.append(label)
            for name, x in inputs.items():
                pred = np.concatenate([b.infer(np.stack(x[k:k + 8]))["scores"].argmax(1) for k in range(0, len(x), 8)])
                acc[f"{name}@{scale}"] = float((pred == np.array(labels)).mean())
    print(json.dumps(acc))
    for scale in (1.25, 2.0):
        assert acc[f"roi@{scale}"] >= acc[f"whole@{scale}"], acc
    assert min(acc["roi@1.25"], acc["roi@2.0"]) >= 0.6, acc


def test_placed_scene_keeps_the_training_image_at_its_centre():
    from novum.config import small_config
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset

    ds = SyntheticDataset(SyntheticConfig(per_class=1, split="test"), small_config())
    s = ds[5]
    img, box, label = placed_scene(ds, 5, (256, 320), (160, 128))   # the object's origin at the frame centre
    assert label == s.label
    np.testing.assert_allclose(img[64:192, 80:240].astype(float), s.image.astype(float), atol=20)
    y0, y1, x0, x1 = s.box
    assert box == (x0 + 80, y0 + 64, x1 - x0, y1 - y0)
    img2, box2, _ = placed_scene(ds, 5, (256, 320), (130, 170))     # moved: the same box, shifted
    assert box2 == (box[0] - 30, box[1] + 42, box[2], box[3])
