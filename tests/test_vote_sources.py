"""benchmarks/vote_sources.py: neighbour support of a cell's vote (class and cuboid geometry)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from factories import benchmark_module

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))     # as when the script runs: its folder is on the path
    mod = benchmark_module("vote_sources")
    sys.modules.pop("feature_stability", None)        # imported by the script; not left for other tests
    return mod


def test_neighbour_support_counts_same_class_and_nearby_vertices(monkeypatch):
    vs = _module(monkeypatch)
    win = np.zeros((1, 5, 5), int)
    win[0, 2, 2] = 3                                     # a lone cell of class 3 in a class-0 patch
    vote = np.ones((1, 5, 5), bool)
    vote[0, 0, 0] = False                                # a corner cell that votes for nothing
    pos = np.zeros((1, 5, 5, 3))
    pos[0, :, 3:, 0] = 1.0                               # the right two columns won far-away vertices
    same_cls, same_geo = vs.neighbour_support(win, pos, vote, radius=0.35)
    assert same_cls[0, 2, 2] == 0 and same_geo[0, 2, 2] == 0    # no neighbour agrees with the lone cell
    assert same_cls[0, 1, 1] == 6                        # 8 neighbours - the lone cell - the silent corner
    assert same_geo[0, 1, 1] == 6                        # all of them won a nearby vertex
    assert same_cls[0, 0, 0] == 0                        # a cell that does not vote has no support
    assert same_cls[0, 1, 3] == 7                        # all but the lone cell (2, 2)
    assert same_geo[0, 1, 3] == 5                        # (0,3) (0,4) (1,4) (2,3) (2,4): same far-away vertex
    assert same_cls[0, 4, 4] == 3                        # a corner has 3 neighbours; nothing wraps around the frame
    assert same_cls[0, 0, 4] == 3 and same_cls[0, 4, 0] == 3
