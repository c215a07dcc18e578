"""Upstream camera model in plain torch (docs/upstream.md section 5.3).

Frames: object vertices are in the PASCAL CAD frame (z up); :func:`pascal_to_view_frame` maps them
to pytorch3d's frame ((x, y, z) -> (x, z, -y), y up). The camera sits at ``C`` (spherical angles
azimuth a, elevation e, distance d), looks at the origin, then rolls by theta. Projection to image
pixels: ``u = px - f * X / Z``, ``v = py - f * Y / Z`` (pytorch3d mirrors the principal point), with
``px, py`` the image centre (W/2, H/2) and ``f`` the focal length in the same pixels. A feature map
of stride s uses ``f / s`` and its own centre.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def pascal_to_view_frame(verts: Tensor) -> Tensor:
    """(x, y, z) PASCAL (z up) -> (x, z, -y) pytorch3d (y up)."""
    return torch.stack([verts[..., 0], verts[..., 2], -verts[..., 1]], -1)


def camera_position_from_spherical_angles(distance, elevation, azimuth) -> Tensor:
    """C = [d cos(e) sin(a), d sin(e), d cos(e) cos(a)]; angles in radians; returns [N, 3]."""
    d, e, a = (torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (distance, elevation, azimuth))
    d, e, a = torch.broadcast_tensors(d, e, a)
    return torch.stack([d * torch.cos(e) * torch.sin(a), d * torch.sin(e), d * torch.cos(e) * torch.cos(a)], -1)


def camera_position_to_spherical_angle(C: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Upstream inverse: d = |C|, a = atan(Cx/Cz) % pi + pi*[Cx<0] in [0, 2pi), e = asin(Cy/d)."""
    C = C.reshape(-1, 3)
    d = C.norm(dim=-1)
    a = torch.remainder(torch.atan(C[:, 0] / C[:, 2]), math.pi) + math.pi * (C[:, 0] < 0).to(C.dtype)
    e = torch.asin(C[:, 1] / d)
    return d, e, a


def rotation_theta(theta: Tensor) -> Tensor:
    """Rz(theta) [N, 3, 3] = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]."""
    t = torch.as_tensor(theta, dtype=torch.float32).reshape(-1)
    c, s = torch.cos(t), torch.sin(t)
    z, o = torch.zeros_like(t), torch.ones_like(t)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def look_at_rotation(C: Tensor, eps: float = 1e-5) -> Tensor:
    """pytorch3d look_at_rotation (at origin, up +y): R = [x | y | z] as columns, [N, 3, 3]."""
    C = C.reshape(-1, 3)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=C.dtype, device=C.device).expand_as(C)
    z = torch.nn.functional.normalize(-C, eps=eps, dim=-1)
    x = torch.nn.functional.normalize(torch.cross(up, z, dim=-1), eps=eps, dim=-1)
    y = torch.nn.functional.normalize(torch.cross(z, x, dim=-1), eps=eps, dim=-1)
    return torch.stack([x, y, z], -1)


def campos_to_R_T(C: Tensor, theta) -> tuple[Tensor, Tensor]:
    """Upstream ``campos_to_R_T``: R = look_at(C) @ Rz(theta), T = -C^T R (row-vector convention)."""
    C = C.reshape(-1, 3)
    R = look_at_rotation(C) @ rotation_theta(theta).to(C)
    T = -torch.bmm(C[:, None, :], R)[:, 0]
    return R, T


def to_view(verts_view_frame: Tensor, R: Tensor, T: Tensor) -> Tensor:
    """X_view = v R + T for vertices [V, 3] (pytorch3d frame) and one camera (R [1,3,3], T [1,3])."""
    return verts_view_frame @ R[0] + T[0]


def project(X_view: Tensor, focal: float, principal: tuple[float, float]) -> Tensor:
    """Camera-frame points [..., 3] -> pixel coordinates [..., 2] as (u, v) = (col, row), and keep z."""
    X, Y, Z = X_view[..., 0], X_view[..., 1], X_view[..., 2]
    return torch.stack([principal[0] - focal * X / Z, principal[1] - focal * Y / Z], -1)


def project_pascal(verts_pascal: Tensor, azimuth: float, elevation: float, theta: float, distance: float,
                   focal: float, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Project PASCAL-frame vertices for a pose; returns (uv [V, 2] pixels, depth [V])."""
    C = camera_position_from_spherical_angles(distance, elevation, azimuth)
    R, T = campos_to_R_T(C, torch.tensor([theta]))
    Xv = to_view(pascal_to_view_frame(torch.as_tensor(verts_pascal, dtype=torch.float32)), R, T)
    h, w = image_size
    return project(Xv, focal, (w / 2, h / 2)), Xv[:, 2]
