"""Fake ``pycuda.driver``: the part of the documented API a TensorRT runtime uses.

Device memory is a registry of numpy byte buffers at distinct integer addresses, so code that
passes ``int(allocation)`` to TensorRT and copies by address is checked for real: copies are
bounds-checked against the allocation they land in, asynchronous copies run only when their
stream is synchronised (reading the host buffer then, as the hardware would), and every copy is
logged (with whether the host side was page-locked). Nothing works before a context is active
(``import pycuda.autoprimaryctx``), as with the real driver.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

DEVICE_NAME = "NVIDIA Fake Orin"
COMPUTE_CAPABILITY = (8, 7)
TOTAL_MEMORY = 8 << 30
_BASE = 0x7F00_0000_0000


class Error(Exception):
    pass


class LogicError(Error):
    pass


class MemoryError(Error):  # noqa: A001 - pycuda's name
    pass


@dataclass
class _State:
    initialised: bool = False
    contexts: threading.local = field(default_factory=threading.local)   # per-thread context stack, as CUDA's
    next_addr: int = _BASE
    allocations: dict[int, np.ndarray] = field(default_factory=dict)   # base address -> uint8 buffer
    freed: list[int] = field(default_factory=list)
    streams: dict[int, "Stream"] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


STATE = _State()


def reset() -> None:
    """Forget every allocation, stream and the context (a fresh process)."""
    global STATE
    STATE = _State()


def init(flags: int = 0) -> None:
    STATE.initialised = True


def _stack() -> list:
    if not hasattr(STATE.contexts, "stack"):
        STATE.contexts.stack = []
    return STATE.contexts.stack


def _need_context() -> None:
    if not _stack():
        raise LogicError("explicit_context_dependent failed: invalid device context - no currently active context?")


class Device:
    def __init__(self, ordinal: int) -> None:
        if not STATE.initialised:
            raise LogicError("cuInit context failed: not initialized (call pycuda.driver.init())")
        if ordinal != 0:
            raise LogicError(f"cuDeviceGet failed: invalid device ordinal {ordinal}")
        self.ordinal = ordinal

    @staticmethod
    def count() -> int:
        return 1

    def name(self) -> str:
        return DEVICE_NAME

    def compute_capability(self) -> tuple[int, int]:
        return COMPUTE_CAPABILITY

    def total_memory(self) -> int:
        return TOTAL_MEMORY

    def retain_primary_context(self) -> "Context":
        return Context(self)


class Context:
    def __init__(self, device: Device) -> None:
        self.device = device

    def push(self) -> None:
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        if not _stack():
            raise LogicError("cuCtxPopCurrent failed: invalid context (the context stack is empty)")
        _stack().pop()

    @staticmethod
    def get_device() -> Device:
        _need_context()
        return Device(0)

    @staticmethod
    def synchronize() -> None:
        for s in list(STATE.streams.values()):
            s.synchronize()


class DeviceAllocation:
    """What ``mem_alloc`` returns: ``int(alloc)`` is the device address."""

    def __init__(self, addr: int, size: int) -> None:
        self.addr, self.size, self.freed = addr, size, False

    def __int__(self) -> int:
        return self.addr

    __index__ = __int__

    def free(self) -> None:
        if not self.freed:
            STATE.allocations.pop(self.addr, None)
            STATE.freed.append(self.addr)
            self.freed = True


def mem_alloc(nbytes: int) -> DeviceAllocation:
    _need_context()
    nbytes = int(nbytes)
    if nbytes <= 0:
        raise LogicError("cuMemAlloc failed: invalid argument (size 0)")
    addr = STATE.next_addr
    STATE.next_addr += (nbytes + 511) // 256 * 256 + 256   # aligned, with a guard gap
    STATE.allocations[addr] = np.zeros(nbytes, np.uint8)
    return DeviceAllocation(addr, nbytes)


def mem_get_info() -> tuple[int, int]:
    used = sum(a.size for a in STATE.allocations.values())
    return TOTAL_MEMORY - used, TOTAL_MEMORY


class PagelockedArray(np.ndarray):
    """A numpy array flagged as page-locked host memory (views keep the flag)."""


def pagelocked_empty(shape, dtype, order: str = "C", mem_flags: int = 0) -> PagelockedArray:
    _need_context()
    return np.empty(shape, dtype, order=order).view(PagelockedArray)


def is_pagelocked(a: Any) -> bool:
    return isinstance(a, PagelockedArray)


def device_view(addr: int, nbytes: int) -> np.ndarray:
    """The uint8 bytes [addr, addr + nbytes) of one live allocation; out of bounds -> LogicError."""
    addr = int(addr)
    for base, buf in STATE.allocations.items():
        if base <= addr < base + buf.size:
            if addr - base + nbytes > buf.size:
                raise LogicError(f"cuMemcpy failed: an illegal memory access was encountered ({nbytes} bytes at "
                                 f"offset {addr - base} of a {buf.size}-byte allocation)")
            return buf[addr - base: addr - base + nbytes]
    raise LogicError(f"cuMemcpy failed: invalid argument (0x{addr:x} is not device memory)")


class Stream:
    _next_handle = 0x5000

    def __init__(self, flags: int = 0) -> None:
        _need_context()
        Stream._next_handle += 16
        self.handle = Stream._next_handle
        self.pending: list[Callable[[], None]] = []
        STATE.streams[self.handle] = self

    def enqueue(self, op: Callable[[], None]) -> None:
        self.pending.append(op)

    def synchronize(self) -> None:
        ops, self.pending = self.pending, []
        for op in ops:
            op()

    def is_done(self) -> bool:
        return not self.pending


def _run(op: Callable[[], None], stream: Stream | None) -> None:
    if stream is None:
        op()
    else:
        if stream.handle not in STATE.streams:
            raise LogicError("invalid stream handle")
        stream.enqueue(op)


def _host_bytes(a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if not arr.flags.c_contiguous:
        raise LogicError("buffer must be C-contiguous")
    return arr.reshape(-1).view(np.uint8)


def memcpy_htod_async(dest: Any, src: Any, stream: Stream | None = None) -> None:
    _need_context()
    n = np.asarray(src).nbytes
    device_view(int(dest), n)  # bounds check now, as the driver validates arguments at enqueue
    STATE.log.append({"op": "htod", "addr": int(dest), "nbytes": n, "pinned": is_pagelocked(src), "async": True})

    def op() -> None:
        device_view(int(dest), n)[:] = _host_bytes(src)
    _run(op, stream)


def memcpy_dtoh_async(dest: Any, src: Any, stream: Stream | None = None) -> None:
    _need_context()
    if not isinstance(dest, np.ndarray) or not dest.flags.writeable:
        raise LogicError("memcpy_dtoh destination must be a writable numpy array")
    n = dest.nbytes
    device_view(int(src), n)
    STATE.log.append({"op": "dtoh", "addr": int(src), "nbytes": n, "pinned": is_pagelocked(dest), "async": True})

    def op() -> None:
        _host_bytes(dest)[:] = device_view(int(src), n)
    _run(op, stream)


def memcpy_htod(dest: Any, src: Any) -> None:
    memcpy_htod_async(dest, src, None)
    STATE.log[-1]["async"] = False


def memcpy_dtoh(dest: Any, src: Any) -> None:
    memcpy_dtoh_async(dest, src, None)
    STATE.log[-1]["async"] = False
