"""Part-colour overlay (torch-free) and the numpy wireframe projection."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from novum.config import small_config
from novum.mesh import mesh_with_count, nocs_colors
from novum.runtime.parts import blend_parts, color_table, part_colors


@pytest.fixture(scope="module")
def cfg():
    return small_config(classes=("car", "chair", "bottle"))


def test_part_colors_of_a_constructed_vertex_map(cfg):
    d = cfg.to_dict()
    max_n = cfg.max_n
    verts = [mesh_with_count(e, n)[0] for e, n in zip(cfg.extents, cfg.n_list)]
    vertex = np.full((4, 5), -1, np.int32)
    picks = [(0, 0), (0, 17), (1, cfg.n_list[1] - 1), (2, 5)]
    for k, (c, v) in enumerate(picks):
        vertex[k, k] = c * max_n + v
    vertex[3, 4] = 3 * max_n - 1 if cfg.n_list[2] < max_n else -1     # a padding row, if any: black
    out = part_colors(vertex, d)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    for k, (c, v) in enumerate(picks):
        want = np.round(nocs_colors(verts[c])[v] * 255).astype(np.uint8)   # (x, y, z) -> (B, G, R)
        np.testing.assert_array_equal(out[k, k], want)
    assert (out[vertex < 0] == 0).all()
    assert (out[3, 4] == 0).all()
    # the two opposite corners of a cuboid are black and white
    lo = int(np.argmin(verts[0].sum(1)))
    hi = int(np.argmax(verts[0].sum(1)))
    np.testing.assert_array_equal(part_colors(np.array([[lo, hi]]), d)[0], [[0, 0, 0], [255, 255, 255]])
    assert color_table(d) is color_table(dict(d))          # cached per model


def test_blend_parts(cfg):
    d = cfg.to_dict()
    frame = np.full((128, 160, 3), 100, np.uint8)
    vertex = np.full((16, 20), -1, np.int32)
    vertex[4:8, 10:12] = 7
    out = blend_parts(frame, vertex, d, alpha=0.5)
    assert out.shape == frame.shape and out is not frame
    cell = out[32:64, 80:96]
    want = np.round(0.5 * 100 + 0.5 * part_colors(vertex, d)[4, 10].astype(float))
    assert np.abs(cell.reshape(-1, 3) - want).max() <= 1
    untouched = np.ones((128, 160), bool)
    untouched[32:64, 80:96] = False
    assert (out[untouched] == 100).all()
    assert (frame == 100).all()                             # input not modified


def test_parts_and_draw_import_no_torch():
    code = ("import sys; import novum.runtime.parts, novum.pose.draw; "
            "bad = [m for m in ('torch',) if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_numpy_projection_matches_torch_camera(cfg):
    from novum.pose.camera import project_pascal
    from novum.pose.draw import CUBOID_EDGES, cuboid_corners, project_points

    pts = cuboid_corners(cfg.extents[0])
    assert len(CUBOID_EDGES) == 12
    # every edge joins corners that differ in exactly one coordinate
    for i, j in CUBOID_EDGES:
        assert (pts[i] != pts[j]).sum() == 1
    for pose in [(0.3, 0.2, 0.1, 5.0), (4.0, -0.5, -0.6, 3.5)]:
        uv, z = project_points(pts, pose, cfg.focal, cfg.input_size)
        ref_uv, ref_z = project_pascal(torch.as_tensor(pts), *pose, cfg.focal, cfg.input_size)
        np.testing.assert_allclose(uv, ref_uv.numpy(), atol=1e-3)
        np.testing.assert_allclose(z, ref_z.numpy(), atol=1e-4)
