"""What the GPU side of this machine offers, asked without torch.

- :func:`cuda_driver`: the NVIDIA driver and its GPUs, through the CUDA driver API in
  ``libcuda`` (ctypes: ``cuInit``, ``cuDriverGetVersion``, ``cuDeviceGet*``). This works on a
  Jetson with a CPU-only torch or none, where ``torch.cuda`` says "no GPU".
- :func:`import_tensorrt` / :func:`import_pycuda`: the modules, or the reason they cannot be
  used here, told apart: not installed, installed but its native libraries do not load (no
  driver, wrong CUDA), or a ``tensorrt`` folder that is only type stubs.

Every function returns a reason instead of raising, so reports and skips can say why.
"""
from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# CUdevice_attribute values (cuda.h)
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
LIBCUDA = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"

TRT_INSTALL = "desktop: pip install 'novum[trt-cu12]' or 'novum[trt-cu13]'; Jetson: JetPack's TensorRT (README, Jetson)"
SUPPORTED_TRT = (10, 3)   # the oldest TensorRT novum supports (JetPack 6)


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int   # bytes


@dataclass(frozen=True)
class CudaDriver:
    version: str | None            # the CUDA version the driver supports, e.g. "12.6"
    gpus: tuple[Gpu, ...] = ()
    error: str | None = None       # why no GPU is usable (None when there is one)


def load_libcuda() -> Any:
    """The CUDA driver library (raises OSError when the NVIDIA driver is not installed)."""
    return ctypes.CDLL(LIBCUDA)


def _err(lib: Any, code: int) -> str:
    name = ctypes.c_char_p()
    try:
        if lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return f"{name.value.decode()} ({code})"
    except Exception:  # noqa: BLE001 - an old driver without cuGetErrorName
        pass
    return f"CUDA error {code}"


def cuda_driver() -> CudaDriver:
    """The driver's CUDA version and its GPUs; ``error`` says why there is no usable GPU."""
    try:
        lib = load_libcuda()
    except OSError:
        return CudaDriver(None, (), f"no NVIDIA driver here ({LIBCUDA} not found)")
    try:
        rc = lib.cuInit(0)
        if rc != 0:
            return CudaDriver(_driver_version(lib), (), f"the CUDA driver does not start: cuInit failed with {_err(lib, rc)}")
        count = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
        if rc != 0:
            return CudaDriver(_driver_version(lib), (), f"cuDeviceGetCount failed with {_err(lib, rc)}")
        gpus = tuple(_gpu(lib, i) for i in range(count.value))
    except Exception as e:  # noqa: BLE001 - a broken driver install must not crash a report
        return CudaDriver(None, (), f"the CUDA driver is unusable ({type(e).__name__}: {' '.join(str(e).split())[:120]})")
    return CudaDriver(_driver_version(lib), gpus, None if gpus else "the NVIDIA driver sees no CUDA GPU")


def _driver_version(lib: Any) -> str | None:
    v = ctypes.c_int(0)
    try:
        if lib.cuDriverGetVersion(ctypes.byref(v)) != 0 or v.value <= 0:
            return None
    except Exception:  # noqa: BLE001
        return None
    return f"{v.value // 1000}.{v.value % 1000 // 10}"


def _gpu(lib: Any, index: int) -> Gpu:
    dev = ctypes.c_int(0)
    _check(lib, lib.cuDeviceGet(ctypes.byref(dev), index), "cuDeviceGet")
    buf = ctypes.create_string_buffer(256)
    _check(lib, lib.cuDeviceGetName(buf, 256, dev), "cuDeviceGetName")
    major, minor, mem = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_size_t(0)
    _check(lib, lib.cuDeviceGetAttribute(ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute")
    _check(lib, lib.cuDeviceGetAttribute(ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute")
    _check(lib, lib.cuDeviceTotalMem_v2(ctypes.byref(mem), dev), "cuDeviceTotalMem")
    return Gpu(index, buf.value.decode(errors="replace"), (major.value, minor.value), int(mem.value))


def _check(lib: Any, rc: int, what: str) -> None:
    if rc != 0:
        raise RuntimeError(f"{what} failed with {_err(lib, rc)}")


def gpu_info(index: int = 0) -> tuple[str, tuple[int, int]] | None:
    """(name, compute capability) of CUDA device ``index``, or None without a usable GPU."""
    d = cuda_driver()
    return (d.gpus[index].name, d.gpus[index].compute_capability) if index < len(d.gpus) else None


def import_tensorrt() -> tuple[ModuleType | None, str | None]:
    """(the ``tensorrt`` module, None) or (None, why it cannot be used here)."""
    try:
        import tensorrt as trt
    except ModuleNotFoundError as e:
        if e.name == "tensorrt":
            return None, f"TensorRT is not installed ({TRT_INSTALL})"
        return None, f"TensorRT is installed but incomplete (missing module '{e.name}'); reinstall it ({TRT_INSTALL})"
    except Exception as e:  # noqa: BLE001 - ImportError of a native library, or anything its __init__ raises
        return None, (f"TensorRT is installed but does not load ({_first_line(e)}); its CUDA libraries or the NVIDIA "
                      f"driver are missing or of another CUDA version ({TRT_INSTALL})")
    if not hasattr(trt, "Builder") or not isinstance(getattr(trt, "__version__", None), str):
        where = list(getattr(trt, "__path__", [])) or [getattr(trt, "__file__", "?")]
        return None, (f"the 'tensorrt' package found at {where[0]} is not TensorRT (only type stubs, e.g. "
                      f"tensorrt-stubs, or an empty folder); install TensorRT itself ({TRT_INSTALL})")
    return trt, None


def import_pycuda() -> tuple[ModuleType | None, str | None]:
    """(``pycuda.driver``, initialised, None) or (None, why it cannot be used here)."""
    try:
        import pycuda.driver as cuda
    except ModuleNotFoundError as e:
        if e.name in ("pycuda", "pycuda.driver"):
            return None, ("pycuda is not installed (pip install pycuda with the CUDA toolkit's bin/ on PATH: it compiles "
                          "against CUDA)")
        return None, f"pycuda is installed but incomplete (missing module '{e.name}'); reinstall it"
    except Exception as e:  # noqa: BLE001 - e.g. "libcuda.so.1: cannot open shared object file"
        return None, (f"pycuda is installed but cannot load the CUDA driver ({_first_line(e)}); this machine needs the "
                      f"NVIDIA driver and a CUDA GPU (or rebuild pycuda against this machine's CUDA)")
    try:
        cuda.init()
    except Exception as e:  # noqa: BLE001 - pycuda.driver.Error subclasses: no device, driver too old
        return None, f"pycuda cannot start CUDA ({_first_line(e)})"
    return cuda, None


def version_tuple(v: str) -> tuple[int, ...]:
    """"10.3.0.30" -> (10, 3, 0, 30); stops at the first part that is not a number ("11.4.0.post1" -> (11, 4, 0))."""
    out = []
    for p in str(v).split("."):
        if not p.isdigit():
            break
        out.append(int(p))
    return tuple(out)


def _first_line(e: BaseException, n: int = 160) -> str:
    s = " ".join(str(e).split()) or type(e).__name__
    return s if len(s) <= n else s[: n - 3] + "..."
