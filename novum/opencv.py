"""Which OpenCV is this? The user picks it (like ONNX Runtime), so novum asks it what it can do.

- ``pip install novum[desktop]``: ``opencv-python`` (a GUI, so ``novum-run`` opens a window);
- ``pip install novum[headless]``: ``opencv-python-headless`` (servers, CI, containers; no window);
- neither: bring your own ``cv2`` (JetPack's OpenCV with GStreamer and CUDA, conda's, a source build).

The PyPI wheels all install the same ``cv2`` folder, so two of them overwrite each other. The
build's own report (``cv2.getBuildInformation()``) says whether it has a GUI and GStreamer.
"""
from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path
from types import ModuleType

from novum.errors import NovumError

# The PyPI distributions that install a ``cv2`` package (all into the same folder).
WHEELS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")
INSTALL_HINT = ("install one OpenCV: the [desktop] extra (pip install opencv-python: a window) or [headless] "
                "(opencv-python-headless: servers, CI), or use your system's cv2 (Jetson: README 'Jetson')")


class OpenCVMissing(NovumError):
    """``import cv2`` failed: no OpenCV installed, or a broken one."""


def missing_message(err: BaseException | None = None) -> str:
    first = str(err).strip().splitlines()[0] if err is not None and str(err).strip() else ""
    why = f" ({first})" if first and "No module named" not in first else ""
    if "numpy" in first.lower():   # a system cv2 (JetPack's, Debian's) built for NumPy 1.x, under a pip NumPy 2
        return f"OpenCV (cv2) cannot be imported{why}: this cv2 was built for NumPy 1.x; pip install 'numpy<2'"
    return f"OpenCV (cv2) cannot be imported{why}; {INSTALL_HINT}"


def require() -> ModuleType:
    """``cv2``, or a one-line :class:`OpenCVMissing` naming the extras to install."""
    try:
        import cv2
    except ImportError as e:
        raise OpenCVMissing(missing_message(e)) from None
    return cv2


def location() -> str:
    """The ``sys.path`` folder ``cv2`` was imported from (a ``cv2/`` package or a single ``cv2*.so``)."""
    path = Path(require().__file__).resolve()
    return str(path.parent.parent if path.stem == "__init__" else path.parent)


@functools.lru_cache(maxsize=1)
def build_information() -> str:
    return require().getBuildInformation()


def _section(key: str, info: str | None) -> list[str]:
    """The ``key:`` line's value and, when it has none (OpenCV before 4.5 lists the parts on the
    lines below, e.g. ``GStreamer:`` then ``base: YES (ver 1.14.5)``), the values of those lines."""
    lines = (info if info is not None else build_information()).splitlines()
    for i, line in enumerate(lines):
        k, sep, v = line.strip().partition(":")
        if not (sep and k.strip() == key):
            continue
        if v.strip():
            return [v.strip()]
        indent = len(line) - len(line.lstrip())
        below = []
        for sub in lines[i + 1:]:
            if not sub.strip() or len(sub) - len(sub.lstrip()) <= indent:
                break
            below.append(sub.strip().partition(":")[2].strip())
        return below
    return []


def gui_backend(info: str | None = None) -> str:
    """The GUI OpenCV was built with (``QT5``, ``GTK3``, ``WIN32UI``, ``COCOA``), ``NONE`` (the headless
    wheels say so), or ``UNKNOWN`` (an older build report that does not say it in one word)."""
    values = _section("GUI", info)
    return values[0].split()[0].upper() if len(values) == 1 and values[0] else "UNKNOWN"


def has_gstreamer(info: str | None = None) -> bool:
    """True when this OpenCV can read GStreamer pipelines (``Video I/O: GStreamer: YES (1.x)``)."""
    return any(v.upper().startswith("YES") for v in _section("GStreamer", info))


def installed_wheels() -> list[str]:
    """The OpenCV PyPI distributions installed in this environment (none: a system or conda cv2)."""
    found = []
    for name in WHEELS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def describe() -> str:
    """e.g. ``OpenCV 5.0.0 (opencv-python-headless)`` or ``OpenCV 4.8.0 (not from a PyPI wheel)``."""
    cv2 = require()
    wheels = installed_wheels()
    return f"OpenCV {cv2.__version__} ({', '.join(wheels) if wheels else 'not from a PyPI wheel'})"


def clash_warning() -> str | None:
    """One line when two OpenCV wheels share the ``cv2`` folder (the last installed silently won)."""
    wheels = installed_wheels()
    if len(wheels) < 2:
        return None
    return (f"{len(wheels)} OpenCV wheels are installed ({', '.join(wheels)}) and overwrite each other's cv2; "
            f"keep one: pip uninstall -y {' '.join(wheels)}, then pip install opencv-python (a window) "
            f"or opencv-python-headless")
