"""A screenshot-like novum-run frame: part colours + posed wireframe + labels, written to a PNG.

The part colours here are the ground-truth correspondences (the class mesh rasterised at the
sample's known pose), so the picture shows what a perfect model's ``vertex`` output looks like and
that the wireframe, the colours and the image agree. Set NOVUM_ARTIFACTS=DIR to keep the PNG.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from novum.config import small_config
from novum.contracts.framing import Framer
from novum.data.synthetic import SyntheticConfig, SyntheticDataset
from novum.pose import draw_wireframe
from novum.pose.camera import camera_position_from_spherical_angles
from novum.pose.draw import cuboid_corners, project_points
from novum.pose.refine import PoseResult
from novum.pose.render import MeshRenderer
from novum.runtime import overlay
from novum.runtime.parts import blend_parts, part_colors


def _gt_vertex_map(cfg, label, pose):
    from novum.mesh import mesh_with_count

    v, f = mesh_with_count(cfg.extents[label], cfg.n_list[label])
    r = MeshRenderer(v, f, cfg.focal / cfg.stride, cfg.feature_size)
    a, e, t, d = (float(x) for x in pose)
    fr = r.fragments(camera_position_from_spherical_angles(d, e, a), torch.tensor([t]))
    vm = fr.vertex_map(cfg.feature_size).numpy()
    return np.where(vm >= 0, label * cfg.max_n + vm, -1).astype(np.int32)


def test_screenshot_frame(tmp_path):
    from novum.runtime.results import predict

    cfg = small_config()
    label = cfg.classes.index("car")
    ds = SyntheticDataset(SyntheticConfig(per_class=1, split="test"), cfg)
    s = ds[label]
    vertex = _gt_vertex_map(cfg, label, s.pose)
    meta = cfg.to_dict()
    pose = PoseResult(label=label, azimuth=float(s.pose[0]), elevation=float(s.pose[1]), theta=float(s.pose[2]),
                      distance=float(s.pose[3]), loss=0.0, seconds=0.0)

    # as novum-run: part colours on the model input, then the wireframe, pasted over a larger frame
    view = blend_parts(s.image.copy(), vertex, meta, alpha=0.6)
    view = draw_wireframe(view, pose, meta, color=(0, 255, 255), thickness=1)
    frame = cv2.resize(s.image, (640, 512), interpolation=cv2.INTER_LINEAR)
    framer = Framer(cfg.input_size)
    crop = framer.crop_for(frame.shape[:2])
    scores = np.full((1, cfg.num_classes), 0.01, np.float32)
    scores[0, label] = 0.05
    pred = predict({"scores": scores, "vertex": vertex[None]}, 0, list(cfg.classes))
    shot = overlay.draw(frame, pred, crop, fps=30.0, latency_ms=4.2, model_view=view, framer=framer)
    # and a sharp wireframe drawn at frame resolution
    draw_wireframe(shot, pose, meta, color=(0, 0, 255), thickness=1)

    out_dir = Path(os.environ.get("NOVUM_ARTIFACTS") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "novum_run_pose_parts.png"
    assert cv2.imwrite(str(path), shot)
    assert cv2.imread(str(path)).shape == (512, 640, 3)

    # the coloured cells are the object: they sit inside the projected cuboid and on the object mask
    colors = part_colors(vertex, meta)
    assert (vertex >= 0).sum() > 30 and len(np.unique(colors[vertex >= 0], axis=0)) > 20
    uv, _ = project_points(cuboid_corners(cfg.extents[label]), s.pose, cfg.focal, cfg.input_size)
    hull = cv2.convexHull((uv / cfg.stride).astype(np.float32))
    ii, jj = np.nonzero(vertex >= 0)
    dist = [cv2.pointPolygonTest(hull, (float(j) + 0.5, float(i) + 0.5), True) for i, j in zip(ii, jj)]
    assert min(dist) >= -0.01
    cells = cv2.resize(s.mask, (cfg.feature_size[1], cfg.feature_size[0]), interpolation=cv2.INTER_AREA)
    assert cells[vertex >= 0].mean() > 0.5
    # the red wireframe is on the frame, at the projected corners (scaled by 4)
    red = (shot[..., 2] > 200) & (shot[..., 1] < 80) & (shot[..., 0] < 80)
    assert red.sum() > 100
    for u, v in uv * 4:
        if 2 <= u < 638 and 2 <= v < 510:
            assert red[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3].any()


def test_vote_box_is_drawn_in_the_label_colour():
    from novum.runtime.results import predict

    classes = ["a", "b"]
    frame = np.zeros((100, 120, 3), np.uint8)
    pred = predict({"scores": np.array([[0.01, 0.09]], np.float32)}, 0, classes)     # 90% of votes: green
    crop = Framer((96, 128)).crop_for(frame.shape[:2])
    overlay.draw(frame, pred, crop, None, None, show_box=False, vote_box=[60.0, 40.0, 110.0, 90.0])
    green = (frame[..., 1] > 150) & (frame[..., 0] < 120) & (frame[..., 2] < 120)
    assert green[40:90, 60].mean() > 0.9 and green[40:90, 109].mean() > 0.9       # left and right edges
    assert green[40, 60:110].mean() > 0.9 and green[89, 60:110].mean() > 0.9       # top and bottom edges
    assert not green[50:80, 70:100].any()                                          # an outline, not a fill
