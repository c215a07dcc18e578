"""Procedural objects of the 12 PASCAL3D+ categories, each filling its class cuboid.

``build_object(name, rng, extents)`` returns a :class:`~novum.data.shapes.Shape` whose bounding box is
(almost) the cuboid ``extents`` = (x0, x1, y0, y1, z0, z1): x lateral, y front-back (front at -y),
z up. Proportions, part layout, colours and optional parts vary per instance. Unknown class names
get a generic object (a box with a random attachment) so any class list can be generated.
"""
from __future__ import annotations

import colorsys
from typing import Callable

import numpy as np

from novum.data.shapes import (Shape, beam, box, decal_on_face, ellipsoid, frustum, hexa, loft,
                               ring_points, wheel_ring)

Builder = Callable[[np.random.Generator, float, float, float], Shape]


def rand_color(rng: np.random.Generator, sat=(0.25, 0.9), val=(0.35, 0.95), hue=None) -> np.ndarray:
    """Random BGR colour (0..255) from HSV ranges."""
    h = rng.uniform(*hue) % 1.0 if hue is not None else rng.uniform()
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return np.array([b, g, r]) * 255


def gray(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    v = rng.uniform(lo, hi)
    tint = rng.uniform(-6, 6, 3)
    return np.clip(np.array([v, v, v]) + tint, 0, 255)


def glass(rng: np.random.Generator) -> np.ndarray:
    return rand_color(rng, sat=(0.1, 0.45), val=(0.12, 0.4), hue=(0.5, 0.7))


def tyre(rng: np.random.Generator) -> np.ndarray:
    return gray(rng, 18, 45)


def _wheel(s: Shape, rng, x0: float, x1: float, y: float, z: float, r: float, n: int = 12) -> None:
    """Car/bus wheel: dark cylinder along x with a lighter hub decal on both caps."""
    p = frustum(s, (x0, y, z), (x1, y, z), r, r, tyre(rng), n=n)
    hub = gray(rng, 120, 220)
    for face in (n, n + 1):
        idx = p.faces[face]
        pts = p.verts[idx]
        c = pts.mean(0)
        hp = c + (pts - c) * rng.uniform(0.45, 0.65)
        nrm = np.sign(pts[0, 0] - p.verts[:, 0].mean()) * np.array([1.0, 0, 0])
        p.decals.append((hp + nrm * 0.004, hub))


def aeroplane(rng, hx, hy, hz) -> Shape:
    s = Shape()
    body = rand_color(rng, sat=(0.0, 0.25), val=(0.6, 0.97)) if rng.uniform() < 0.7 else rand_color(rng)
    accent = rand_color(rng, sat=(0.5, 1.0), val=(0.4, 0.9))
    rf = hz * rng.uniform(0.3, 0.42)
    zc = -hz + rf
    n = 10
    y_nose, y_tail = -hy, hy
    y0, y1 = -hy + rng.uniform(0.12, 0.2) * hy * 2, hy - rng.uniform(0.2, 0.3) * hy * 2
    frustum(s, (0, y_nose, zc - rf * 0.1), (0, y0, zc), rf * 0.25, rf, body, n=n)
    fus = frustum(s, (0, y0, zc), (0, y1, zc), rf, rf, body, n=n)
    frustum(s, (0, y1, zc), (0, y_tail, zc + rf * 0.5), rf, rf * 0.3, body, n=n)
    g = glass(rng)
    for f in range(n):  # cabin windows along both sides, a cheat line below them
        centre = fus.verts[fus.faces[f]].mean(0)
        if abs(centre[0]) > rf * 0.6 and centre[2] > zc - rf * 0.2:
            decal_on_face(fus, f, 0.2, 0.8, 0.03, 0.97, g if centre[2] > zc + rf * 0.1 else accent)
    # wings: swept thin hexahedra from the fuselage to the tips
    wy = rng.uniform(-0.15, 0.1) * hy
    chord = rng.uniform(0.25, 0.38) * hy * 2
    tip_chord = chord * rng.uniform(0.3, 0.6)
    sweep = rng.uniform(0.0, 0.35) * hy * 2
    wz = zc + rf * rng.uniform(-0.6, 0.3)
    dihedral = rng.uniform(0.0, 0.35) * (hz - wz)
    t = rf * 0.22
    for sgn in (-1, 1):
        root = [(0, wy - chord / 2, wz), (0, wy + chord / 2, wz)]
        tip = [(sgn * hx, wy - tip_chord / 2 + sweep, wz + dihedral), (sgn * hx, wy + tip_chord / 2 + sweep, wz + dihedral)]
        bottom = [root[0], tip[0], tip[1], root[1]]
        top = [(x, y, z + t) for x, y, z in bottom]
        hexa(s, bottom, top, body)
        if rng.uniform() < 0.8:  # engines under the wings
            ex = sgn * hx * rng.uniform(0.3, 0.5)
            ey = wy - chord / 2 + sweep * abs(ex) / hx
            er = rf * rng.uniform(0.35, 0.5)
            frustum(s, (ex, ey - chord * 0.45, wz - er * 0.9), (ex, ey + chord * 0.35, wz - er * 0.9), er, er * 0.8,
                    gray(rng, 90, 200), n=8)
    # tail: horizontal stabiliser and vertical fin
    sy = hy - rng.uniform(0.08, 0.14) * hy * 2
    sc = chord * rng.uniform(0.4, 0.6)
    sspan = hx * rng.uniform(0.3, 0.45)
    sz = zc + rf * 0.4
    for sgn in (-1, 1):
        bottom = [(0, sy - sc / 2, sz), (sgn * sspan, sy - sc / 4 + sc * 0.3, sz), (sgn * sspan, sy + sc / 2, sz), (0, sy + sc / 2, sz)]
        hexa(s, bottom, [(x, y, z + t * 0.8) for x, y, z in bottom], body)
    fc = sc * rng.uniform(1.0, 1.4)
    hexa(s, [(-t, sy - fc / 2, zc + rf * 0.5), (t, sy - fc / 2, zc + rf * 0.5), (t, hy, zc + rf * 0.5), (-t, hy, zc + rf * 0.5)],
               [(-t, hy - fc * 0.45, hz), (t, hy - fc * 0.45, hz), (t, hy, hz), (-t, hy, hz)], accent if rng.uniform() < 0.6 else body)
    return s


def bicycle(rng, hx, hy, hz) -> Shape:
    s = Shape()
    frame = rand_color(rng, sat=(0.4, 1.0), val=(0.3, 0.95))
    dark = tyre(rng)
    r = min(hy * rng.uniform(0.4, 0.46), hz * 0.78)
    zw = -hz + r
    yr, yf = hy - r, -hy + r
    tube_w = rng.uniform(0.02, 0.03)
    for y in (yr, yf):
        wheel_ring(s, (0, y, zw), (1, 0, 0), r - tube_w / 2, tube_w, tube_w * 1.3, dark, n=14)
        frustum(s, (-0.03, y, zw), (0.03, y, zw), 0.02, 0.02, gray(rng, 120, 200), n=6)
        for k in range(3):  # spokes
            a = np.pi * k / 3 + rng.uniform(0, 1)
            d = np.array([0, np.cos(a), np.sin(a)]) * (r - tube_w)
            beam(s, np.array([0, y, zw]) - d, np.array([0, y, zw]) + d, 0.006, gray(rng, 140, 210))
    fw = rng.uniform(0.018, 0.026)
    bb = np.array([0.0, rng.uniform(-0.1, 0.05) * hy, zw - r * 0.05])
    seat_top = np.array([0.0, yr + r * rng.uniform(0.35, 0.6), hz - 0.05])
    head = np.array([0.0, yf + r * rng.uniform(0.45, 0.65), zw + r * rng.uniform(0.8, 1.05)])
    head_top = head + np.array([0, 0.02, 0.06])
    seat_post = bb + (seat_top - bb) * 0.85
    beam(s, (0, yr, zw), bb, fw, frame)                  # chain stay
    beam(s, (0, yr, zw), seat_post, fw, frame)           # seat stay
    beam(s, bb, seat_top, fw, frame)                     # seat tube
    beam(s, seat_post if rng.uniform() < 0.7 else bb + (seat_top - bb) * 0.6, head, fw, frame)  # top tube
    beam(s, bb, head, fw * 1.2, frame)                   # down tube
    beam(s, head, (0, yf, zw), fw, frame)                # fork
    beam(s, head, head_top + np.array([0, 0, hz - 0.01 - head_top[2]]), fw, frame)  # stem
    bar_z = hz - 0.01
    beam(s, (-hx, head_top[1] + 0.03, bar_z), (hx, head_top[1] + 0.03, bar_z), 0.02, gray(rng, 30, 200))
    box(s, (-0.04, seat_top[1] - 0.06, hz - 0.05), (0.04, seat_top[1] + 0.05, hz), gray(rng, 10, 80))  # saddle
    crank = rng.uniform(0.05, 0.08)
    for sgn in (-1, 1):
        beam(s, bb + [sgn * 0.03, 0, 0], bb + [sgn * 0.05, sgn * crank, -crank * 0.6], 0.015, gray(rng, 60, 180))
        box(s, (sgn * hx * 0.55 - 0.03, bb[1] + sgn * crank - 0.02, bb[2] - crank * 0.6 - 0.01),
            (sgn * hx * 0.55 + 0.03, bb[1] + sgn * crank + 0.02, bb[2] - crank * 0.6 + 0.01), gray(rng, 20, 60))
    return s


def boat(rng, hx, hy, hz) -> Shape:
    s = Shape()
    hull = rand_color(rng)
    deck_z = -hz + rng.uniform(0.3, 0.45) * 2 * hz
    bow = rng.uniform(0.4, 0.65)
    top = np.array([(0, -hy, deck_z + 0.03), (hx, -hy * bow, deck_z), (hx, hy, deck_z), (-hx, hy, deck_z), (-hx, -hy * bow, deck_z)])
    bsc = rng.uniform(0.45, 0.7)
    bottom = np.array([(0, -hy * 0.8, -hz), (hx * bsc, -hy * bow * 0.8, -hz), (hx * bsc, hy * 0.92, -hz),
                       (-hx * bsc, hy * 0.92, -hz), (-hx * bsc, -hy * bow * 0.8, -hz)])
    p = loft(s, bottom, top, hull)
    stripe = rand_color(rng)
    for f in range(5):  # waterline stripe on the hull sides
        decal_on_face(p, f, 0.0, 1.0, 0.55, 0.75, stripe)
    if rng.uniform() < 0.5:  # sailboat: mast, boom, sail
        my = rng.uniform(-0.3, 0.0) * hy
        beam(s, (0, my, deck_z), (0, my, hz), 0.018, gray(rng, 150, 240))
        sail = rand_color(rng, sat=(0.0, 0.2), val=(0.8, 1.0)) if rng.uniform() < 0.7 else rand_color(rng)
        sy1 = hy * rng.uniform(0.55, 0.85)
        tt = 0.006
        hexa(s, [(-tt, my + 0.02, deck_z + 0.05), (tt, my + 0.02, deck_z + 0.05), (tt, sy1, deck_z + 0.05), (-tt, sy1, deck_z + 0.05)],
             [(-tt, my + 0.02, hz - 0.02), (tt, my + 0.02, hz - 0.02), (tt, my + 0.05, hz - 0.02), (-tt, my + 0.05, hz - 0.02)], sail)
        box(s, (-hx * 0.4, -hy * 0.1, deck_z), (hx * 0.4, hy * 0.35, deck_z + 0.05), gray(rng, 150, 240))
    else:  # motor boat: cabin with windows, bridge
        cy0, cy1 = rng.uniform(-0.35, -0.1) * hy, rng.uniform(0.3, 0.7) * hy
        cz = deck_z + (hz - deck_z) * rng.uniform(0.45, 0.65)
        cab = box(s, (-hx * 0.75, cy0, deck_z), (hx * 0.75, cy1, cz), rand_color(rng, sat=(0, 0.3), val=(0.7, 1)))
        g = glass(rng)
        decal_on_face(cab, 2, 0.1, 0.9, 0.45, 0.85, g)
        for f in (3, 5):
            for k in range(3):
                decal_on_face(cab, f, 0.1 + 0.28 * k, 0.3 + 0.28 * k, 0.45, 0.8, g)
        box(s, (-hx * 0.45, cy0 + 0.05, cz), (hx * 0.45, cy1 - 0.08, hz - 0.04), rand_color(rng, sat=(0, 0.3), val=(0.6, 1)))
        beam(s, (0, cy1 - 0.12, hz - 0.04), (0, cy1 - 0.12, hz), 0.015, gray(rng, 30, 200))
    return s


def bottle(rng, hx, hy, hz) -> Shape:
    s = Shape()
    glass_col = [rand_color(rng, sat=(0.5, 1), val=(0.2, 0.5), hue=(0.25, 0.42)),      # green
                 rand_color(rng, sat=(0.6, 1), val=(0.2, 0.45), hue=(0.05, 0.1)),      # brown
                 rand_color(rng, sat=(0.1, 0.4), val=(0.55, 0.9), hue=(0.45, 0.65)),   # clear / blue
                 rand_color(rng)][rng.integers(4)]
    n = 12
    rx, ry = hx, hy
    z_sh = -hz + rng.uniform(0.5, 0.72) * 2 * hz
    z_neck = z_sh + rng.uniform(0.08, 0.18) * 2 * hz
    rn = rng.uniform(0.28, 0.4)
    body = frustum(s, (0, 0, -hz), (0, 0, z_sh), rx * 0.97, rx, glass_col, n=n, squash=ry / rx)
    label = rand_color(rng, val=(0.5, 1.0))
    lz0, lz1 = rng.uniform(0.15, 0.3), rng.uniform(0.6, 0.85)
    for f in range(n):
        decal_on_face(body, f, 0.0, 1.0, lz0, lz1, label)
    frustum(s, (0, 0, z_sh), (0, 0, z_neck), rx, rx * rn, glass_col, n=n, squash=ry / rx)
    frustum(s, (0, 0, z_neck), (0, 0, hz - 0.06), rx * rn, rx * rn, glass_col, n=n, squash=ry / rx)
    frustum(s, (0, 0, hz - 0.06), (0, 0, hz), rx * rn * 1.12, rx * rn * 1.12, rand_color(rng), n=n, squash=ry / rx)
    return s


def bus(rng, hx, hy, hz) -> Shape:
    s = Shape()
    col = rand_color(rng, sat=(0.3, 1.0), val=(0.5, 1.0))
    r = hz * rng.uniform(0.22, 0.3)
    zb = -hz + r * 0.3
    body = box(s, (-hx * 0.95, -hy, zb), (hx * 0.95, hy, hz), col)
    g = glass(rng)
    decks = 2 if rng.uniform() < 0.3 else 1
    nwin = int(rng.integers(5, 9))
    for side in (3, 5):  # +x and -x sides
        for d in range(decks):
            v0, v1 = (0.55, 0.88) if decks == 1 else ((0.2, 0.42), (0.62, 0.86))[d]
            for k in range(nwin):
                u0 = 0.04 + k * 0.92 / nwin
                decal_on_face(body, side, u0 + 0.01, u0 + 0.92 / nwin - 0.01, v0, v1, g)
        decal_on_face(body, side, 0.0, 1.0, 0.3 if decks == 1 else 0.48, 0.4 if decks == 1 else 0.55, rand_color(rng))
    decal_on_face(body, 2, 0.08, 0.92, 0.4, 0.92, g)   # front windscreen (-y face)
    decal_on_face(body, 4, 0.2, 0.8, 0.6, 0.88, g)     # rear window (+y face)
    for u0 in (0.08, 0.82):
        decal_on_face(body, 2, u0, u0 + 0.1, 0.08, 0.18, (200, 240, 250))
    for y in (-hy * rng.uniform(0.55, 0.7), hy * rng.uniform(0.55, 0.7)):
        _wheel(s, rng, hx * 0.75, hx, y, -hz + r, r)
        _wheel(s, rng, -hx, -hx * 0.75, y, -hz + r, r)
    return s


def car(rng, hx, hy, hz) -> Shape:
    s = Shape()
    col = rand_color(rng, sat=(0.0, 1.0), val=(0.25, 1.0))
    r = hz * rng.uniform(0.3, 0.38)
    zb = -hz + r * 0.5
    zbelt = -hz + rng.uniform(0.45, 0.6) * 2 * hz
    body = box(s, (-hx * 0.93, -hy, zb), (hx * 0.93, hy, zbelt), col)
    cy0 = -hy + rng.uniform(0.25, 0.4) * 2 * hy       # windscreen base
    cy1 = hy - rng.uniform(0.05, 0.3) * 2 * hy       # rear window base
    ty0 = cy0 + rng.uniform(0.1, 0.2) * 2 * hy
    ty1 = cy1 - rng.uniform(0.02, 0.15) * 2 * hy
    cx = hx * 0.88
    tx = hx * rng.uniform(0.65, 0.8)
    cab = hexa(s, [(-cx, cy0, zbelt), (cx, cy0, zbelt), (cx, cy1, zbelt), (-cx, cy1, zbelt)],
               [(-tx, ty0, hz), (tx, ty0, hz), (tx, ty1, hz), (-tx, ty1, hz)], col)
    g = glass(rng)
    decal_on_face(cab, 2, 0.08, 0.92, 0.08, 0.9, g)   # windscreen
    decal_on_face(cab, 4, 0.1, 0.9, 0.12, 0.85, g)    # rear window
    for f in (3, 5):
        decal_on_face(cab, f, 0.06, 0.48, 0.12, 0.82, g)
        decal_on_face(cab, f, 0.52, 0.94, 0.12, 0.82, g)
    light = rand_color(rng, sat=(0, 0.2), val=(0.85, 1.0))
    decal_on_face(body, 2, 0.05, 0.25, 0.55, 0.8, light)     # headlights (front = -y)
    decal_on_face(body, 2, 0.75, 0.95, 0.55, 0.8, light)
    decal_on_face(body, 2, 0.3, 0.7, 0.3, 0.6, gray(rng, 20, 70))  # grille
    tail = rand_color(rng, sat=(0.8, 1.0), val=(0.6, 0.9), hue=(0.98, 1.02))
    decal_on_face(body, 4, 0.05, 0.22, 0.6, 0.85, tail)
    decal_on_face(body, 4, 0.78, 0.95, 0.6, 0.85, tail)
    wy = hy * rng.uniform(0.55, 0.7)
    for y in (-wy, wy * rng.uniform(0.95, 1.05)):
        _wheel(s, rng, hx * 0.7, hx, y, -hz + r, r)
        _wheel(s, rng, -hx, -hx * 0.7, y, -hz + r, r)
    return s


def chair(rng, hx, hy, hz) -> Shape:
    s = Shape()
    wood = rand_color(rng, sat=(0.3, 0.8), val=(0.2, 0.7), hue=(0.04, 0.11)) if rng.uniform() < 0.6 else rand_color(rng)
    seat_col = wood if rng.uniform() < 0.5 else rand_color(rng)
    zs = -hz + rng.uniform(0.42, 0.52) * 2 * hz
    t = rng.uniform(0.04, 0.07)
    lw = rng.uniform(0.035, 0.055)
    back_t = rng.uniform(0.035, 0.06)
    box(s, (-hx, -hy, zs - t), (hx, hy - back_t * 0.5, zs), seat_col)
    inset = rng.uniform(0.0, 0.05)
    for x in (-hx + inset, hx - inset - lw):
        for y in (-hy + inset, hy - inset - lw):
            box(s, (x, y, -hz), (x + lw, y + lw, zs - t), wood)
    # back: two uprights and a panel (solid or slatted), slightly reclined
    lean = rng.uniform(0.0, 0.08)
    for x in (-hx + inset, hx - inset - lw):
        hexa(s, [(x, hy - back_t - lean, zs), (x + lw, hy - back_t - lean, zs), (x + lw, hy - lean, zs), (x, hy - lean, zs)],
             [(x, hy - back_t, hz), (x + lw, hy - back_t, hz), (x + lw, hy, hz), (x, hy, hz)], wood)
    pz0 = zs + (hz - zs) * rng.uniform(0.2, 0.5)
    if rng.uniform() < 0.6:
        f = (pz0 - zs) / (hz - zs)
        hexa(s, [(-hx + lw, hy - back_t - lean * (1 - f), pz0), (hx - lw, hy - back_t - lean * (1 - f), pz0),
                 (hx - lw, hy - lean * (1 - f), pz0), (-hx + lw, hy - lean * (1 - f), pz0)],
             [(-hx + lw, hy - back_t, hz - 0.01), (hx - lw, hy - back_t, hz - 0.01), (hx - lw, hy, hz - 0.01), (-hx + lw, hy, hz - 0.01)],
             seat_col)
    else:
        for k in range(3):
            z = pz0 + (hz - pz0) * k / 3
            f = (z - zs) / (hz - zs)
            box(s, (-hx + lw, hy - back_t - lean * (1 - f), z), (hx - lw, hy - lean * (1 - f), z + 0.05), wood)
    if rng.uniform() < 0.3:  # arm rests
        za = zs + (hz - zs) * 0.35
        for x in (-hx, hx - lw):
            box(s, (x, -hy * 0.8, za), (x + lw, hy - back_t, za + 0.03), wood)
            box(s, (x, -hy * 0.75, zs), (x + lw, -hy * 0.75 + lw, za), wood)
    return s


def diningtable(rng, hx, hy, hz) -> Shape:
    s = Shape()
    wood = rand_color(rng, sat=(0.3, 0.8), val=(0.25, 0.75), hue=(0.04, 0.11)) if rng.uniform() < 0.7 else rand_color(rng, sat=(0, 0.5))
    t = rng.uniform(0.035, 0.06)
    top = box(s, (-hx, -hy, hz - t), (hx, hy, hz), wood)
    if rng.uniform() < 0.5:  # table cloth / runner
        decal_on_face(top, 1, 0.1, 0.9, 0.3, 0.7, rand_color(rng))
    lw = rng.uniform(0.04, 0.07)
    inset = rng.uniform(0.02, 0.08)
    leg = wood if rng.uniform() < 0.7 else rand_color(rng, val=(0.1, 0.5))
    for x in (-hx + inset, hx - inset - lw):
        for y in (-hy + inset, hy - inset - lw):
            box(s, (x, y, -hz), (x + lw, y + lw, hz - t), leg)
    if rng.uniform() < 0.6:  # apron
        ah = rng.uniform(0.04, 0.08)
        box(s, (-hx + inset, -hy + inset, hz - t - ah), (hx - inset, -hy + inset + 0.015, hz - t), wood)
        box(s, (-hx + inset, hy - inset - 0.015, hz - t - ah), (hx - inset, hy - inset, hz - t), wood)
    return s


def motorbike(rng, hx, hy, hz) -> Shape:
    s = Shape()
    col = rand_color(rng, sat=(0.5, 1.0), val=(0.3, 1.0))
    r = min(hy * rng.uniform(0.33, 0.4), hz * 0.7)
    zw = -hz + r
    w = hx * rng.uniform(0.45, 0.6)
    yf, yr = -hy + r, hy - r
    for y in (yf, yr):
        _wheel(s, rng, -w / 2, w / 2, y, zw, r, n=14)
    metal = gray(rng, 100, 200)
    ey0, ey1 = yf + r * 0.9, yr - r * 0.8
    box(s, (-w * 0.6, ey0, zw - r * 0.5), (w * 0.6, ey1, zw + r * 0.4), gray(rng, 40, 120))          # engine block
    tank_y = ey0 + (ey1 - ey0) * 0.3
    ellipsoid(s, (0, tank_y, zw + r * 0.75), (hx * 0.55, (ey1 - ey0) * 0.32, r * 0.35), col)          # tank
    box(s, (-hx * 0.45, tank_y + 0.04, zw + r * 0.6), (hx * 0.45, yr + r * 0.3, zw + r * 0.9), gray(rng, 15, 60))  # seat
    hexa(s, [(-hx * 0.35, yr - r * 0.2, zw + r * 0.3), (hx * 0.35, yr - r * 0.2, zw + r * 0.3), (hx * 0.35, hy - 0.01, zw + r * 0.45), (-hx * 0.35, hy - 0.01, zw + r * 0.45)],
         [(-hx * 0.3, yr - r * 0.2, zw + r * 0.6), (hx * 0.3, yr - r * 0.2, zw + r * 0.6), (hx * 0.3, hy - 0.01, zw + r * 0.7), (-hx * 0.3, hy - 0.01, zw + r * 0.7)], col)  # tail
    head = np.array([0, yf + r * 0.35, hz - 0.06])
    for sgn in (-1, 1):
        beam(s, (sgn * w * 0.45, yf, zw), head + [sgn * w * 0.45, 0, 0], 0.03, metal)               # fork
    beam(s, (-hx, head[1] + 0.03, hz - 0.02), (hx, head[1] + 0.03, hz - 0.02), 0.025, gray(rng, 20, 80))  # handlebar
    frustum(s, (0, head[1] - 0.01, head[2] - 0.06), (0, head[1] - 0.07, head[2] - 0.06), 0.05, 0.055,
            rand_color(rng, sat=(0, 0.2), val=(0.85, 1)), n=8)                                          # headlight
    if rng.uniform() < 0.5:  # fairing
        hexa(s, [(-hx * 0.6, yf + r * 0.6, zw + r * 0.2), (hx * 0.6, yf + r * 0.6, zw + r * 0.2), (hx * 0.6, tank_y, zw + r * 0.2), (-hx * 0.6, tank_y, zw + r * 0.2)],
             [(-hx * 0.4, yf + r * 0.8, hz - 0.08), (hx * 0.4, yf + r * 0.8, hz - 0.08), (hx * 0.4, tank_y - 0.05, zw + r * 0.9), (-hx * 0.4, tank_y - 0.05, zw + r * 0.9)], col)
    ex = hx * rng.uniform(0.5, 0.8) * (1 if rng.uniform() < 0.5 else -1)
    frustum(s, (ex, ey0 + 0.05, zw - r * 0.3), (ex, hy - 0.02, zw + r * 0.1), 0.03, 0.035, gray(rng, 150, 230), n=8)  # exhaust
    return s


def sofa(rng, hx, hy, hz) -> Shape:
    s = Shape()
    col = rand_color(rng, sat=(0.1, 0.8), val=(0.25, 0.9))
    cush = col if rng.uniform() < 0.6 else rand_color(rng, sat=(0.1, 0.8), val=(0.25, 0.9))
    leg_h = rng.uniform(0.0, 0.06)
    zs = -hz + rng.uniform(0.35, 0.5) * 2 * hz
    back_t = rng.uniform(0.2, 0.35) * 2 * hy
    arm_w = rng.uniform(0.07, 0.15) * 2 * hx
    arm_h = zs + (hz - zs) * rng.uniform(0.3, 0.6)
    box(s, (-hx + arm_w, -hy, -hz + leg_h), (hx - arm_w, hy - back_t, zs - 0.06), col)                    # base
    n = int(rng.integers(1, 4))
    cw = (2 * hx - 2 * arm_w) / n
    for k in range(n):
        x0 = -hx + arm_w + k * cw
        box(s, (x0 + 0.005, -hy, zs - 0.06), (x0 + cw - 0.005, hy - back_t, zs), cush)                    # seat cushions
    hexa(s, [(-hx, hy - back_t, -hz + leg_h), (hx, hy - back_t, -hz + leg_h), (hx, hy, -hz + leg_h), (-hx, hy, -hz + leg_h)],
         [(-hx, hy - back_t * 0.7, hz), (hx, hy - back_t * 0.7, hz), (hx, hy, hz), (-hx, hy, hz)], col)    # back
    for x in (-hx, hx - arm_w):
        box(s, (x, -hy, -hz + leg_h), (x + arm_w, hy - back_t, arm_h), col)                               # arms
    if leg_h > 0.02:
        for x in (-hx + 0.02, hx - 0.06):
            for y in (-hy + 0.02, hy - 0.06):
                box(s, (x, y, -hz), (x + 0.04, y + 0.04, -hz + leg_h), gray(rng, 10, 80))
    return s


def train(rng, hx, hy, hz) -> Shape:
    s = Shape()
    col = rand_color(rng, sat=(0.2, 1.0), val=(0.35, 1.0))
    stripe = rand_color(rng)
    g = glass(rng)
    ncar = int(rng.integers(2, 4))
    gap = 0.02
    length = (2 * hy - gap * (ncar - 1)) / ncar
    zb = -hz + hz * rng.uniform(0.12, 0.2)
    nose = length * rng.uniform(0.12, 0.25)
    roof = rng.uniform(0.75, 0.9)
    for c in range(ncar):
        y0 = -hy + c * (length + gap)
        y1 = y0 + length
        if c == 0:  # lead car: slanted nose towards -y
            p = hexa(s, [(-hx, y0, zb), (hx, y0, zb), (hx, y1, zb), (-hx, y1, zb)],
                     [(-hx * roof, y0 + nose, hz), (hx * roof, y0 + nose, hz), (hx * roof, y1, hz), (-hx * roof, y1, hz)], col)
            decal_on_face(p, 2, 0.12, 0.88, 0.5, 0.85, g)
            decal_on_face(p, 2, 0.15, 0.3, 0.12, 0.25, (210, 240, 255))
            decal_on_face(p, 2, 0.7, 0.85, 0.12, 0.25, (210, 240, 255))
        else:
            p = hexa(s, [(-hx, y0, zb), (hx, y0, zb), (hx, y1, zb), (-hx, y1, zb)],
                     [(-hx * roof, y0, hz), (hx * roof, y0, hz), (hx * roof, y1, hz), (-hx * roof, y1, hz)], col)
        nwin = int(rng.integers(4, 7))
        for side in (3, 5):
            for k in range(nwin):
                u0 = 0.1 + k * 0.8 / nwin
                decal_on_face(p, side, u0 + 0.01, u0 + 0.8 / nwin - 0.01, 0.5, 0.8, g)
            decal_on_face(p, side, 0.0, 1.0, 0.25, 0.35, stripe)
        for y in (y0 + length * 0.18, y1 - length * 0.18):  # bogies
            box(s, (-hx * 0.8, y - length * 0.1, -hz), (hx * 0.8, y + length * 0.1, zb), gray(rng, 20, 60))
        if c < ncar - 1:
            box(s, (-hx * 0.6, y1 - 0.01, zb + 0.01), (hx * 0.6, y1 + gap + 0.01, hz * 0.8), gray(rng, 15, 50))
    return s


def tvmonitor(rng, hx, hy, hz) -> Shape:
    s = Shape()
    col = gray(rng, 20, 230) if rng.uniform() < 0.8 else rand_color(rng, sat=(0, 0.4))
    screen = rand_color(rng, sat=(0.0, 0.6), val=(0.05, 0.35), hue=(0.5, 0.7)) if rng.uniform() < 0.6 else rand_color(rng)
    base_h = rng.uniform(0.05, 0.12) * 2 * hz
    if rng.uniform() < 0.55:  # CRT: bezel box + tapered back
        bz0 = -hz + base_h
        bd = rng.uniform(0.15, 0.3) * 2 * hy
        bez = box(s, (-hx, -hy, bz0), (hx, -hy + bd, hz), col)
        decal_on_face(bez, 2, 0.08, 0.92, 0.1, 0.9, screen)
        k = rng.uniform(0.45, 0.7)
        cz = (bz0 + hz) / 2
        hexa(s, [(-hx * 0.95, -hy + bd, bz0), (hx * 0.95, -hy + bd, bz0), (hx * k, hy, cz - (hz - bz0) * k / 2), (-hx * k, hy, cz - (hz - bz0) * k / 2)],
             [(-hx * 0.95, -hy + bd, hz * 0.97), (hx * 0.95, -hy + bd, hz * 0.97), (hx * k, hy, cz + (hz - bz0) * k / 2), (-hx * k, hy, cz + (hz - bz0) * k / 2)], col)
        box(s, (-hx * 0.45, -hy + bd * 0.5, -hz), (hx * 0.45, hy * 0.6, -hz + base_h), col)
    else:  # flat panel on a neck and a deep base
        pt = rng.uniform(0.05, 0.09)
        pz0 = -hz + (hz * 2) * rng.uniform(0.2, 0.35)
        pan = box(s, (-hx, -pt / 2, pz0), (hx, pt / 2, hz), col)
        decal_on_face(pan, 2, 0.04, 0.96, 0.06, 0.94, screen)
        beam(s, (0, pt / 2 + 0.01, -hz + base_h * 0.5), (0, pt / 2 + 0.01, pz0 + 0.1), 0.08, col, depth=0.04)
        box(s, (-hx * rng.uniform(0.3, 0.5), -hy, -hz), (hx * rng.uniform(0.3, 0.5), hy, -hz + base_h * 0.5), col)
    return s


def generic(rng, hx, hy, hz) -> Shape:
    s = Shape()
    box(s, (-hx, -hy, -hz), (hx, hy, hz * rng.uniform(0.2, 0.6)), rand_color(rng))
    ellipsoid(s, (0, 0, hz * 0.6), (hx * 0.6, hy * 0.6, hz * 0.4), rand_color(rng))
    return s


def distractor(rng, hx, hy, hz) -> Shape:
    """An object of none of the classes, for occluders: a household-like thing made of 1-3 primitives
    (vase, ball, lamp, can, crate, cone stack), each part in its own colour."""
    s = Shape()
    kind = int(rng.integers(5))
    c0, c1 = rand_color(rng), rand_color(rng)
    if kind == 0:    # vase / lamp: a swelling body and a neck or shade
        r = min(hx, hy)
        frustum(s, (0, 0, -hz), (0, 0, hz * rng.uniform(-0.1, 0.3)), r * rng.uniform(0.4, 0.7), r, c0, n=12)
        ellipsoid(s, (0, 0, hz * 0.5), (r * rng.uniform(0.5, 1.0), r * rng.uniform(0.5, 1.0), hz * 0.45), c1)
    elif kind == 1:  # ball(s)
        for _ in range(int(rng.integers(1, 3))):
            c = rng.uniform(-0.3, 0.3, 3) * np.array([hx, hy, hz])
            ellipsoid(s, c, np.array([hx, hy, hz]) * rng.uniform(0.5, 0.8), rand_color(rng), n_lat=7, n_lon=12)
    elif kind == 2:  # can / pipe, any axis
        axis = np.zeros(3)
        axis[int(rng.integers(3))] = 1.0
        ext = np.array([hx, hy, hz])
        half = float(ext @ axis)
        r = float(np.min(ext[axis == 0]))
        frustum(s, -axis * half, axis * half, r, r * rng.uniform(0.6, 1.0), c0, n=int(rng.integers(6, 14)))
    elif kind == 3:  # crate with a lid
        box(s, (-hx, -hy, -hz), (hx, hy, hz * rng.uniform(0.3, 0.8)), c0)
        box(s, (-hx * 1.05, -hy * 1.05, hz * 0.8), (hx * 1.05, hy * 1.05, hz), c1)
    else:            # cone stack (traffic cone, spinning top)
        r = min(hx, hy)
        frustum(s, (0, 0, -hz), (0, 0, hz), r, r * rng.uniform(0.05, 0.3), c0, n=10)
        box(s, (-r * 1.2, -r * 1.2, -hz), (r * 1.2, r * 1.2, -hz * 0.85), c1)
    return s


def background_object(rng) -> Shape:
    """A thing in the background of a training scene, of none of the classes and unlike the occluder
    distractors: 1-3 irregular prisms (3-7 sided, tapered, twisted, on any axis) or tilted planks,
    stacked or leaning together. Size about 1 (object units)."""
    s = Shape()
    for i in range(int(rng.integers(1, 4))):
        col = rand_color(rng, sat=(0, 1), val=(0.15, 1))
        base = rng.normal(0, 0.35, 3) + np.array([0, 0, 0.5 * i])
        if rng.uniform() < 0.3:    # a plank
            d = rng.normal(0, 1, 3)
            d /= np.linalg.norm(d)
            beam(s, base - d * rng.uniform(0.4, 0.9), base + d * rng.uniform(0.4, 0.9), rng.uniform(0.08, 0.25), col,
                 depth=rng.uniform(0.02, 0.1))
            continue
        k = int(rng.integers(3, 8))
        axis = rng.normal(0, 1, 3)
        axis /= np.linalg.norm(axis)
        half = rng.uniform(0.15, 0.6)
        r1, r2 = rng.uniform(0.15, 0.5), rng.uniform(0.15, 0.5)
        phase = rng.uniform(0, 2 * np.pi)
        ring0 = ring_points(base - axis * half, axis, r1, r2, k, phase)
        taper = rng.uniform(0.4, 1.2)
        ring1 = ring_points(base + axis * half, axis, r1 * taper, r2 * taper, k, phase + rng.uniform(-0.3, 0.3))
        loft(s, ring0, ring1, col)
    return s


BUILDERS: dict[str, Builder] = {
    "aeroplane": aeroplane, "bicycle": bicycle, "boat": boat, "bottle": bottle, "bus": bus, "car": car,
    "chair": chair, "diningtable": diningtable, "motorbike": motorbike, "sofa": sofa, "train": train,
    "tvmonitor": tvmonitor,
}


def build_object(name: str, rng: np.random.Generator, extents, fill: tuple[float, float] = (0.97, 1.0)) -> Shape:
    """A random instance of class ``name`` filling ``extents`` (each axis scaled by U(fill))."""
    x0, x1, y0, y1, z0, z1 = (float(v) for v in extents)
    f = rng.uniform(*fill, 3)
    hx, hy, hz = (x1 - x0) / 2 * f[0], (y1 - y0) / 2 * f[1], (z1 - z0) / 2 * f[2]
    shape = BUILDERS.get(name, generic)(rng, hx, hy, hz)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2])
    for p in shape.parts:
        p.verts = p.verts + centre
        p.decals = [(pts + centre, c) for pts, c in p.decals]
    return shape
