"""Pose: plain-torch renderer, render-and-compare refiner, pose metric, wireframes.

Importing this package (and :mod:`novum.pose.draw`, :mod:`novum.pose.metric`) does not import
torch; :mod:`novum.pose.render` and :mod:`novum.pose.refine` do.
"""
from novum.pose.draw import draw_wireframe

__all__ = ["draw_wireframe"]
