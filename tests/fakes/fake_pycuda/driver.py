"""Fake ``pycuda.driver``: the part of the documented API a TensorRT runtime uses.

Device memory is a registry of numpy byte buffers at distinct integer addresses, so code that
passes ``int(allocation)`` to TensorRT and copies by address is checked for real: copies are
bounds-checked against the allocation they land in, asynchronous copies run only when their
stream is synchronised (reading the host buffer then, as the hardware would), and every copy is
logged (with whether the host side was page-locked).

Contexts behave as pycuda's (its C++ ``context_stack`` and ``scoped_context_activation``):
- each thread has its own context stack; nothing that needs a context works on a thread where
  none was pushed (``Context.get_device()``, ``mem_alloc``, streams, copies);
- a context remembers the thread that created it; freeing memory from another thread while the
  context is not current there cannot be done (pycuda warns "... in out-of-thread context could
  not be cleaned up" and the memory leaks): recorded in ``STATE.leaks``;
- a thread that ends with a context still pushed aborts the whole process in pycuda ("The
  context stack was not empty upon module cleanup"): recorded in ``STATE.fatal`` for the test.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

DEVICE_NAME = "NVIDIA Fake Orin"
COMPUTE_CAPABILITY = (8, 7)
TOTAL_MEMORY = 8 << 30
DRIVER_VERSION = 12060      # cuDriverGetVersion: 1000 * major + 10 * minor (CUDA 12.6, as JetPack 6)
_BASE = 0x7F00_0000_0000


class Error(Exception):
    pass


class LogicError(Error):
    pass


class MemoryError(Error):  # noqa: A001 - pycuda's name
    pass


class _ThreadStack:
    """One thread's context stack; when the thread ends, its thread-local data is dropped and
    ``__del__`` runs: pycuda aborts the process there if a context is still pushed."""

    def __init__(self, fatal: list[str]) -> None:
        self.stack: list[Context] = []
        self.thread = threading.current_thread().name
        self.fatal = fatal   # the record of the "process" this stack belongs to (reset() starts a new one)

    def __del__(self) -> None:
        if self.stack:
            self.fatal.append(f"PyCUDA ERROR: The context stack was not empty upon module cleanup (thread "
                               f"{self.thread} ended with {len(self.stack)} context(s) pushed); the program aborts")


@dataclass
class _State:
    initialised: bool = False
    contexts: threading.local = field(default_factory=threading.local)
    next_addr: int = _BASE
    allocations: dict[int, np.ndarray] = field(default_factory=dict)   # base address -> uint8 buffer
    freed: list[int] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)     # frees that pycuda could not do (wrong thread)
    fatal: list[str] = field(default_factory=list)     # what would have aborted the process
    streams: dict[int, "Stream"] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


STATE = _State()


def reset() -> None:
    """Forget every allocation, stream and context (a fresh process)."""
    global STATE
    STATE = _State()


def init(flags: int = 0) -> None:
    STATE.initialised = True


def _stack() -> list:
    local = STATE.contexts
    if not hasattr(local, "ts"):
        local.ts = _ThreadStack(STATE.fatal)
    return local.ts.stack


def _current() -> "Context | None":
    s = _stack()
    return s[-1] if s else None


def _need_context() -> "Context":
    ctx = _current()
    if ctx is None:
        raise LogicError("explicit_context_dependent failed: invalid device context - no currently active context?")
    return ctx


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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.ordinal == self.ordinal

    __hash__ = object.__hash__


class Context:
    """A retained primary context (pycuda's ``primary_context``): not current until pushed."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.thread = threading.get_ident()   # pycuda records the creating thread
        self.valid = True

    def push(self) -> None:
        if not self.valid:
            raise LogicError("cannot push a detached context")
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        s = _stack()
        if not s:
            raise LogicError("context::pop failed: cannot pop non-current context")
        s.pop()

    @staticmethod
    def get_device() -> Device:
        return _need_context().device

    @staticmethod
    def synchronize() -> None:
        _need_context()
        for s in list(STATE.streams.values()):
            s.synchronize()

    def detach(self) -> None:
        if not self.valid:
            raise LogicError("context::detach failed: cannot detach from invalid context")
        self.valid = False


def _can_clean_up(ctx: Context) -> bool:
    """pycuda's scoped_context_activation: fine when ``ctx`` is current here, or when this is the
    thread that created it (it is pushed for the call); impossible from any other thread."""
    return _current() is ctx or ctx.thread == threading.get_ident()


class DeviceAllocation:
    """What ``mem_alloc`` returns: ``int(alloc)`` is the device address."""

    def __init__(self, addr: int, size: int, context: Context) -> None:
        self.addr, self.size, self.freed, self.context = addr, size, False, context

    def __int__(self) -> int:
        return self.addr

    __index__ = __int__

    def free(self) -> None:
        if self.freed:
            return
        self.freed = True
        if not _can_clean_up(self.context):
            msg = f"device_allocation in out-of-thread context could not be cleaned up (0x{self.addr:x})"
            STATE.leaks.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
            return
        STATE.allocations.pop(self.addr, None)
        STATE.freed.append(self.addr)

    def __del__(self) -> None:   # pycuda frees on garbage collection too, with the same rule
        if not self.freed and self.addr in STATE.allocations:
            self.free()


def mem_alloc(nbytes: int) -> DeviceAllocation:
    ctx = _need_context()
    nbytes = int(nbytes)
    if nbytes <= 0:
        raise LogicError("cuMemAlloc failed: invalid argument (size 0)")
    addr = STATE.next_addr
    STATE.next_addr += (nbytes + 511) // 256 * 256 + 256   # aligned, with a guard gap
    STATE.allocations[addr] = np.zeros(nbytes, np.uint8)
    return DeviceAllocation(addr, nbytes, ctx)


def mem_get_info() -> tuple[int, int]:
    _need_context()
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
        self.context = _need_context()
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
