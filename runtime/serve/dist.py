"""Where the Triton server binary comes from: the ``nvidia-pytriton`` wheel.

That wheel bundles a real ``tritonserver`` (2.51 in pytriton 0.7.0) with the Python backend only
(no ONNX Runtime or TensorRT backends), its shared libraries (``nvidia_pytriton.libs``) and one
Python-backend stub per Python version (``python_backend_stubs/3.x/``). novum uses these files
only, none of PyTriton's Python code: its ``Triton().bind()`` path fails on Python 3.11.7 inside
its shared-memory tensor store, and its declared ``numpy<2`` pin would downgrade OpenCV and ONNX,
so it is installed with ``pip install --no-deps nvidia-pytriton``.

The stub embeds the Python whose ``libpython3.x.so`` the loader finds first, and that Python
finds its environment from the ``python3`` first on ``PATH``: :func:`server_env` puts this
interpreter's library folder and ``bin/`` first, so the stub runs in the same environment (same
numpy, ONNX Runtime and novum) as ``novum-serve`` itself.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from novum.errors import NovumError

INSTALL_HINT = "pip install --no-deps nvidia-pytriton==0.7.0 (README: Serve with Triton)"


@dataclass(frozen=True)
class TritonDist:
    binary: Path          # tritonserver
    python_backend: Path  # folder with libtriton_python.so and triton_python_backend_utils.py
    stub: Path            # triton_python_backend_stub for this Python version
    libs: Path            # shared libraries the binary and the stub need


def find_triton() -> TritonDist:
    """The bundled server, or a one-line error that says how to install it."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise NovumError(f"novum-serve needs the Triton server binary from the nvidia-pytriton wheel: {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0])
    server = root / "tritonserver"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    dist = TritonDist(binary=server / "bin" / "tritonserver", python_backend=server / "backends" / "python",
                      stub=server / "python_backend_stubs" / version / "triton_python_backend_stub",
                      libs=root.parent / "nvidia_pytriton.libs")
    if not dist.binary.is_file() or not (dist.python_backend / "libtriton_python.so").is_file():
        raise NovumError(f"{server}: this nvidia-pytriton has no tritonserver binary or Python backend; {INSTALL_HINT}")
    if not dist.stub.is_file():
        raise NovumError(f"nvidia-pytriton has no Python-backend stub for Python {version} (it ships "
                         f"{', '.join(sorted(p.name for p in dist.stub.parent.parent.iterdir()))}); run novum-serve "
                         f"with one of those Python versions")
    return dist


def prepare_backends(dist: TritonDist, folder: Path) -> Path:
    """A private backend folder (``<folder>/python/``: the backend library, its utils and this
    Python's stub), so the installed wheel is never modified; returns ``folder``."""
    target = folder / "python"
    target.mkdir(parents=True, exist_ok=True)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(dist.python_backend / f, target / f)
    shutil.copy2(dist.stub, target / "triton_python_backend_stub")
    return folder


def server_env(dist: TritonDist, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver: its libraries, and this interpreter (library, ``bin/``) first."""
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, str(dist.libs), env.get("LD_LIBRARY_PATH", "")) if p)
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    return env
