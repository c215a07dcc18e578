"""Paths of what the package ships: the demo model and the demo clip (novum/assets/)."""
from __future__ import annotations

from pathlib import Path

from novum.errors import InputError

ASSETS = Path(__file__).parent / "assets"
DEMO_MODEL = ASSETS / "demo.safetensors"
DEMO_CLIP = ASSETS / "demo_clip.mp4"


def demo_model_path() -> Path:
    if not DEMO_MODEL.is_file():
        raise InputError(f"the bundled demo model is missing ({DEMO_MODEL}); reinstall novum or pass --model/--checkpoint")
    return DEMO_MODEL


def demo_clip_path() -> Path:
    if not DEMO_CLIP.is_file():
        raise InputError(f"the bundled demo clip is missing ({DEMO_CLIP}); reinstall novum or pass --source PATH")
    return DEMO_CLIP
