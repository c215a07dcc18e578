"""Differentiable feature renderer in plain torch (docs/upstream.md sections 5.2-5.4).

The class cuboid mesh carries one feature per vertex; a camera at ``C`` (looking at the origin,
rolled by theta) sees it through the upstream perspective camera. Rasterisation follows
pytorch3d's ``MeshRasterizer`` (faces_per_pixel=1, blur 0, perspective-correct barycentrics):

* per pixel centre ``(j + 0.5, i + 0.5)``, screen-space barycentrics ``l``, perspective-corrected
  ``w_i = (l_i / z_i) / sum_j(l_j / z_j)``; the pixel is inside if every ``w_i > 0`` (strict);
* faces with ``|2 area| <= 1e-8`` in NDC units or ``max z < 0`` are skipped, as are points with
  interpolated depth ``sum w_i z_i < 0``; the nearest face wins (the lowest face index on ties);
* the pixel value is ``sum_i w_i feat(v_i)``, 0 where no face covers it (not renormalised).

Which face covers which pixel is found without gradients (it is discrete); the barycentrics of the
chosen faces are then recomputed differentiably, so gradients reach the camera position and theta
exactly as through pytorch3d. Only the pixels inside each face's bounding box are tested, so the
cost grows with the covered area, not with pixels x faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from novum.pose.camera import campos_to_R_T, pascal_to_view_frame, project, to_view


@dataclass
class Fragments:
    """The covered pixels of one view: flat pixel index, the winning face's vertex ids, and the
    perspective-correct barycentrics (differentiable w.r.t. the camera when it requires grad)."""

    pix: Tensor    # int64 [K] flat index i * w + j
    vidx: Tensor   # int64 [K, 3] vertex ids of the face covering the pixel
    bary: Tensor   # float32 [K, 3]
    face: Tensor   # int64 [K] the face index (pytorch3d's pix_to_face)
    zbuf: Tensor   # float32 [K] interpolated depth

    def interpolate(self, feats: Tensor, size: tuple[int, int]) -> Tensor:
        """Per-vertex features [V, D] -> the rendered map [D, h, w] (0 where nothing is drawn)."""
        h, w = size
        vals = (self.bary[..., None] * feats[self.vidx]).sum(1)           # [K, D]
        out = vals.new_zeros(h * w, feats.shape[1]).index_put((self.pix,), vals)
        return out.t().reshape(feats.shape[1], h, w)

    def vertex_map(self, size: tuple[int, int]) -> Tensor:
        """int64 [h, w]: per covered pixel the face vertex with the largest barycentric, else -1
        (the mesh vertex a perfect feature map would match there)."""
        h, w = size
        out = torch.full((h * w,), -1, dtype=torch.int64, device=self.pix.device)
        best = self.vidx.gather(1, self.bary.detach().argmax(1, keepdim=True))[:, 0]
        return out.index_put((self.pix,), best).reshape(h, w)


def _edge(ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Twice the signed area of (a, b, p)."""
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def _barycentric(tri_uv: Tensor, tri_z: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Screen-space barycentrics of points (px, py) in triangles [K, 3, 2] with depths [K, 3];
    returns (perspective-correct weights [K, 3], interpolated depth [K], twice the area [K])."""
    u, v = tri_uv[..., 0], tri_uv[..., 1]
    area = _edge(u[:, 0], v[:, 0], u[:, 1], v[:, 1], u[:, 2], v[:, 2])
    l0 = _edge(u[:, 1], v[:, 1], u[:, 2], v[:, 2], px, py) / area
    l1 = _edge(u[:, 2], v[:, 2], u[:, 0], v[:, 0], px, py) / area
    l2 = _edge(u[:, 0], v[:, 0], u[:, 1], v[:, 1], px, py) / area
    t = torch.stack([l0, l1, l2], -1) / tri_z
    w = t / t.sum(-1, keepdim=True)
    return w, (w * tri_z).sum(-1), area


def _raster_pairs(tuv: Tensor, tz: Tensor, size: tuple[int, int], max_pairs: int):
    """No-grad core over faces [F, 3, 2] / [F, 3] (each face may belong to another view):
    for every pixel of every face's bounding box, (face, pixel row, pixel col, depth, inside)."""
    h, w = size
    dev = tuv.device
    area = _edge(tuv[:, 0, 0], tuv[:, 0, 1], tuv[:, 1, 0], tuv[:, 1, 1], tuv[:, 2, 0], tuv[:, 2, 1])
    ndc_area = area / (min(h, w) / 2.0) ** 2
    ok = (ndc_area.abs() > 1e-8) & (tz.max(1).values >= 0) & torch.isfinite(tuv).all(2).all(1)
    lo, hi = tuv.min(1).values, tuv.max(1).values                       # [F, 2]
    # pixel centres j + 0.5 inside [lo, hi]  <=>  ceil(lo - 0.5) <= j <= floor(hi - 0.5)
    lo = torch.where(ok[:, None], lo, torch.zeros_like(lo))
    hi = torch.where(ok[:, None], hi, torch.zeros_like(hi))
    j0 = torch.ceil(lo[:, 0] - 0.5).clamp(0, w).long()
    j1 = torch.floor(hi[:, 0] - 0.5).clamp(-1, w - 1).long()
    i0 = torch.ceil(lo[:, 1] - 0.5).clamp(0, h).long()
    i1 = torch.floor(hi[:, 1] - 0.5).clamp(-1, h - 1).long()
    nx = (j1 - j0 + 1).clamp(min=0) * ok
    ny = (i1 - i0 + 1).clamp(min=0) * ok
    counts = nx * ny
    total = int(counts.sum())
    if total > max_pairs:
        raise ValueError(f"{total} pixel-face candidates: the mesh covers far more than the map "
                         f"(camera inside or too close to the object?)")
    fid = torch.repeat_interleave(torch.arange(len(tuv), device=dev), counts)
    start = torch.cumsum(counts, 0) - counts
    k = torch.arange(total, device=dev) - start[fid]
    step = nx[fid].clamp(min=1)
    jj = j0[fid] + k % step
    ii = i0[fid] + torch.div(k, step, rounding_mode="floor")
    wts, pz, _ = _barycentric(tuv[fid], tz[fid], jj.to(tuv.dtype) + 0.5, ii.to(tuv.dtype) + 0.5)
    inside = (wts > 0).all(1) & (pz >= 0) & torch.isfinite(pz)
    return fid[inside], ii[inside], jj[inside], pz[inside]


def _nearest(fid: Tensor, pix: Tensor, pz: Tensor, n_pix: int, n_faces: int) -> tuple[Tensor, Tensor]:
    """Per pixel the candidate with the smallest depth, the lowest face id on ties; sorted by pixel."""
    zbuf = torch.full((n_pix,), float("inf"), device=pz.device, dtype=pz.dtype)
    zbuf.scatter_reduce_(0, pix, pz, "amin")
    near = pz == zbuf[pix]
    fid, pix = fid[near], pix[near]
    first = torch.full((n_pix,), n_faces, device=pix.device, dtype=torch.int64)
    first.scatter_reduce_(0, pix, fid, "amin")
    keep = fid == first[pix]
    fid, pix = fid[keep], pix[keep]
    order = torch.argsort(pix)
    return fid[order], pix[order]


def rasterize(uv: Tensor, z: Tensor, faces: Tensor, size: tuple[int, int],
              max_pairs: int = 4_000_000) -> Fragments:
    """Nearest face per pixel for projected vertices ``uv`` [V, 2] (pixels, (col, row)) with view
    depth ``z`` [V]; differentiable in ``uv`` and ``z`` through the barycentrics only."""
    h, w = size
    with torch.no_grad():
        fid, ii, jj, pz = _raster_pairs(uv.detach()[faces], z.detach()[faces], size, max_pairs)
        fid, pix = _nearest(fid, ii * w + jj, pz, h * w, len(faces))
    vidx = faces[fid]
    jj = (pix % w).to(uv.dtype) + 0.5
    ii = torch.div(pix, w, rounding_mode="floor").to(uv.dtype) + 0.5
    bary, pz, _ = _barycentric(uv[vidx], z[vidx], jj, ii)
    return Fragments(pix=pix, vidx=vidx, bary=bary, face=fid, zbuf=pz)


@torch.no_grad()
def rasterize_views(uv: Tensor, z: Tensor, faces: Tensor, size: tuple[int, int],
                    max_pairs: int = 20_000_000) -> tuple[Tensor, Fragments]:
    """:func:`rasterize` for N views at once (uv [N, V, 2], z [N, V]), no gradients; returns the
    view index of each fragment [K] and the fragments (pixel indices within each view's map)."""
    N, F = uv.shape[0], len(faces)
    h, w = size
    fid, ii, jj, pz = _raster_pairs(uv[:, faces].reshape(N * F, 3, 2), z[:, faces].reshape(N * F, 3), size, max_pairs)
    view = torch.div(fid, F, rounding_mode="floor")
    gfid, gpix = _nearest(fid, view * (h * w) + ii * w + jj, pz, N * h * w, N * F)
    view, face = torch.div(gfid, F, rounding_mode="floor"), gfid % F
    pix = gpix - view * (h * w)
    vidx = faces[face]
    bary, pz, _ = _barycentric(uv[view[:, None], vidx], z[view[:, None], vidx],
                               (pix % w).to(uv.dtype) + 0.5, torch.div(pix, w, rounding_mode="floor").to(uv.dtype) + 0.5)
    return view, Fragments(pix=pix, vidx=vidx, bary=bary, face=face, zbuf=pz)


class MeshRenderer:
    """One class mesh (PASCAL-frame vertices) seen by the upstream feature-map camera.

    ``focal`` and ``size`` (h, w) are in feature-map pixels (upstream 375 and (80, 100)); the
    principal point is the map centre (w/2, h/2).
    """

    def __init__(self, verts_pascal, faces, focal: float, size: tuple[int, int],
                 device: str | torch.device = "cpu") -> None:
        self.verts = pascal_to_view_frame(torch.as_tensor(np.asarray(verts_pascal), dtype=torch.float32)).to(device)
        self.faces = torch.as_tensor(np.asarray(faces), dtype=torch.int64, device=device)
        self.focal = float(focal)
        self.size = (int(size[0]), int(size[1]))
        self.principal = (self.size[1] / 2.0, self.size[0] / 2.0)

    def view(self, C: Tensor, theta: Tensor) -> Tensor:
        """Camera-frame vertices [V, 3] for camera position C [1, 3] and roll theta [1]."""
        R, T = campos_to_R_T(C, theta)
        return to_view(self.verts, R, T)

    def fragments(self, C: Tensor, theta: Tensor) -> Fragments:
        Xv = self.view(C, theta)
        return rasterize(project(Xv, self.focal, self.principal), Xv[:, 2], self.faces, self.size)

    def fragments_views(self, C: Tensor, theta: Tensor) -> tuple[Tensor, Fragments]:
        """Fragments of N views at once (C [N, 3], theta [N]), without gradients."""
        R, T = campos_to_R_T(C, theta)
        Xv = self.verts[None] @ R + T[:, None]                              # [N, V, 3]
        return rasterize_views(project(Xv, self.focal, self.principal), Xv[..., 2], self.faces, self.size)

    def render(self, C: Tensor, theta: Tensor, feats: Tensor) -> Tensor:
        """The rendered feature map [D, h, w] for per-vertex features [V, D]."""
        return self.fragments(C, theta).interpolate(feats, self.size)
