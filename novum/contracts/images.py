"""Image files: which suffixes count, and the sorted images of a folder (recursively) or a glob."""
from __future__ import annotations

import glob as globlib
from pathlib import Path

from novum.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image(path: str | Path) -> bool:
    """True when the suffix is one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_glob(spec: str | Path) -> bool:
    return any(ch in str(spec) for ch in "*?[")


def list_images(spec: str | Path, label: str | None = None) -> list[Path]:
    """The image files of a folder (searched recursively, hidden entries skipped) or a glob (``**``
    matches any depth), sorted by path; an InputError when there are none.

    A folder written by ``novum-data`` (``images/<class>/...``, annotations beside them) works as
    it is. ``label`` starts the error message (default: ``spec`` itself), e.g. ``"--calib frames/"``.
    """
    what = label or str(spec)
    suffixes = ", ".join(IMAGE_SUFFIXES)
    if is_glob(spec):
        paths = sorted(Path(p) for p in globlib.glob(str(spec), recursive=True) if is_image(p) and Path(p).is_file())
        if not paths:
            raise InputError(f"{what}: the glob matches no images ({suffixes})")
        return paths
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise InputError(f"{what}: not a folder of images")
    found = [p for p in folder.rglob("*") if is_image(p) and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    paths = sorted(found, key=lambda p: p.relative_to(folder).parts)
    if not paths:
        raise InputError(f"{what}: the folder and its subfolders hold no images ({suffixes})")
    return paths
