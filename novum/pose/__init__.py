"""Pose: plain-torch renderer, render-and-compare refiner, pose metric."""
