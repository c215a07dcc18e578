"""A real Triton Inference Server process serving one novum model (the engine of ``novum-serve``).

``TritonServer(model, ServeOptions(...)).start()``:

1. checks the model by loading it with the runtime backend the server will use (a broken model
   is a one-line error before any process starts), and that the host resolves and every port is
   free (one line naming the port and the flag that changes it);
2. writes the Python-backend variant of the model repository (:mod:`novum.contracts.triton_repository`;
   ``1/model.py`` runs :mod:`novum.runtime.serve.python_model`) and a private backend folder;
3. starts the bundled ``tritonserver`` (:mod:`.dist`) in its own session, bound to ``host``
   (127.0.0.1 unless asked) for HTTP, gRPC and metrics, and waits until ``/v2/health/ready``;
   if it exits first, the error line of its log becomes the one-line error.

``stop()`` sends SIGINT (Triton finishes in-flight requests, up to ``exit_timeout`` s), then
SIGKILL, then kills whatever is left of its process group (the Python-backend stubs), and removes
the temporary folder. The server also dies with the thread that started it (``PR_SET_PDEATHSIG``),
so a killed ``novum-serve`` leaves no server behind.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from novum.errors import InputError, NovumError
from novum.contracts.triton_repository import ModelSpec, RepoOptions, TensorSpec, check_name, write_model
from novum.runtime.backends import load
from novum.runtime.serve.dist import find_triton, prepare_backends, server_env

DEFAULT_MAX_BATCH = 8
MODEL_PY = '''"""Triton Python-backend model written by novum-serve: novum's own runtime backend (ONNX Runtime,
or TensorRT on a GPU instance) behind Triton's dynamic batcher. Needs novum in the stub's Python."""
from novum.runtime.serve.python_model import TritonPythonModel  # noqa: F401
'''
# Lines of Triton's log that are not the reason it stopped (CPU-only machines print them at start).
_NOISE = re.compile(r"CudaDriverHelper|NVML|DCGM|pinned memory|GPU metrics|cuda driver", re.I)
_ERROR = re.compile(r"^E\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] (.*)$")


class ServeError(NovumError):
    """The server could not start, or stopped on its own."""


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"          # loopback only unless the user asks for more
    http_port: int = 8000             # 0 = any free port
    grpc_port: int = 8001
    metrics_port: int = 8002
    name: str | None = None           # model name on the server (default: the model file's stem)
    max_batch: int | None = None      # default: the engine's profile, the ONNX export's batch range, else 8
    instances: int = 1
    queue_delay_us: int = 1000
    device: str = "auto"              # ONNX Runtime provider (auto: CPU instances use the CPU)
    threads: int = 0                  # ONNX Runtime intra-op threads per instance (0 = its default)
    repository: Path | None = None    # write (and keep) the repository here; default: a temporary folder
    verbose: bool = False             # copy Triton's log to stderr
    startup_timeout: float = 120.0
    exit_timeout: int = 10
    die_with_parent: bool = True


class TritonServer:
    def __init__(self, model: str | Path, opts: ServeOptions | None = None) -> None:
        self.model = model
        self.opts = opts or ServeOptions()
        self.proc: subprocess.Popen | None = None
        self.run_dir: Path | None = None
        self.log_path: Path | None = None
        self.name = ""
        self.describe = ""
        self.ports: dict[str, int] = {}
        self.host = "127.0.0.1"
        self.instance_kind = "cpu"
        self.max_batch = 0
        self._shm_prefix = f"novum-serve-{os.getpid()}-{id(self):x}-"   # the Python backend's shared memory
        self._log_tail: collections.deque[str] = collections.deque(maxlen=400)
        self._reader: threading.Thread | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def probe_host(self) -> str:
        """Where a client on this machine reaches the server."""
        return "127.0.0.1" if self.host == "0.0.0.0" else self.host

    @property
    def http_url(self) -> str:
        return f"{self.probe_host}:{self.ports['http']}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.probe_host}:{self.ports['grpc']}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.probe_host}:{self.ports['metrics']}/metrics"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "TritonServer":
        dist = find_triton()
        o = self.opts
        self.host = numeric_host(o.host)
        self.ports = {k: _free_port(self.host, p, k) for k, p in
                      (("http", o.http_port), ("grpc", o.grpc_port), ("metrics", o.metrics_port))}
        if len(set(self.ports.values())) < 3:
            raise InputError(f"--http-port, --grpc-port and --metrics-port must differ, got {self.ports}")
        self.run_dir = Path(tempfile.mkdtemp(prefix="novum-serve-"))
        try:
            repo = self.write_repository(Path(o.repository) if o.repository else self.run_dir / "models")
            backends = prepare_backends(dist, self.run_dir / "backends")
            self.log_path = self.run_dir / "tritonserver.log"
            gpu = self.instance_kind == "gpu"
            cmd = [str(dist.binary), "--model-repository", str(repo.resolve()), "--backend-directory", str(backends),
                   "--http-address", self.host, "--http-port", str(self.ports["http"]),
                   "--grpc-address", self.host, "--grpc-port", str(self.ports["grpc"]),
                   "--metrics-address", self.host, "--metrics-port", str(self.ports["metrics"]),
                   "--allow-gpu-metrics", "true" if gpu else "false",
                   "--strict-readiness", "true", "--exit-timeout-secs", str(int(o.exit_timeout)),
                   "--backend-config", f"python,shm-region-prefix-name={self._shm_prefix}"]
            self.proc = subprocess.Popen(cmd, env=server_env(dist), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent if o.die_with_parent else None)
            self._reader = threading.Thread(target=self._read_log, name="novum-serve-log", daemon=True)
            self._reader.start()
            self._wait_ready(o.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def write_repository(self, repo: Path) -> Path:
        """Check the model and write the Python-backend repository for it into ``repo``."""
        o = self.opts
        path, spec, max_batch, kind = self._check_model()
        self.instance_kind = "gpu" if kind == "tensorrt" or o.device in ("cuda", "tensorrt") else "cpu"
        params = {"novum_model_file": "model" + (".plan" if kind == "tensorrt" else ".onnx"),
                  "novum_device": o.device, "novum_threads": str(int(o.threads))}
        write_model(repo, self.name, path, spec,
                    RepoOptions(max_batch=max_batch, instances=o.instances, kind=self.instance_kind,
                                queue_delay_us=o.queue_delay_us, parameters=params),
                    backend="python", model_file=params["novum_model_file"], extra_files={"model.py": MODEL_PY},
                    comment=f"novum-serve: {path.name} through novum.runtime ({kind}) in Triton's Python backend")
        self.max_batch = max_batch
        self.describe = (f"{self.name}: {path.name} ({kind}, {spec.precision}) in Triton's Python backend, "
                         f"max batch {max_batch}, {o.instances} instance(s) on {self.instance_kind.upper()}, "
                         f"dynamic batching (queue delay {o.queue_delay_us} us)")
        return repo

    def stop(self) -> int | None:
        """Stop the server and its children; returns its exit code (None if it never started)."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(self.opts.exit_timeout + 10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            code = self.proc.returncode
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)   # its own session: only its stubs are left in it
            if self._reader is not None:
                self._reader.join(timeout=5)
            for f in Path("/dev/shm").glob(self._shm_prefix + "*"):   # left behind when the server was killed
                with contextlib.suppress(OSError):
                    f.unlink()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        return code

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the server exits (or ``timeout``); its exit code, None while it runs."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def exit_reason(self) -> str:
        """The error line of Triton's log (or its last line) after it stopped."""
        code = self.proc.returncode if self.proc is not None else None
        return f"tritonserver exited with code {code}: {self._error_line()}"

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------
    def _check_model(self) -> tuple[Path, ModelSpec, int, str]:
        o = self.opts
        path = Path(self.model).expanduser()
        if path.suffix.lower() not in (".onnx", ".engine", ".plan"):
            raise InputError(f"{path.name}: novum-serve serves .onnx or TensorRT .engine/.plan files (export a "
                             f"checkpoint with novum-export)")
        self.name = o.name or path.stem
        check_name(self.name)
        if o.instances < 1:
            raise InputError(f"--instances must be >= 1, got {o.instances}")
        be = load(path, device=o.device if o.device != "auto" else "cpu", intra_op_threads=1)
        try:
            spec = ModelSpec(inputs=[_spec(t) for t in be.inputs], outputs=[_spec(t) for t in be.outputs],
                             novum_config=dict(be.metadata), precision=be.precision)
            limit = be.max_batch   # a TensorRT profile's maximum; None for ONNX Runtime's dynamic batch
            recorded = _recorded_max_batch(be)
            kind = be.kind
        finally:
            be.close()
        max_batch = o.max_batch or limit or recorded or DEFAULT_MAX_BATCH
        if max_batch < 1 or (limit is not None and max_batch > limit):
            raise InputError(f"--max-batch {max_batch}: must be between 1 and the engine's profile maximum {limit}")
        return path, spec, max_batch, kind

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self.log_path is not None
        with open(self.log_path, "w", encoding="utf-8", errors="replace") as log:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", errors="replace")
                self._log_tail.append(line.rstrip("\n"))
                log.write(line)
                log.flush()
                if self.opts.verbose:
                    sys.stderr.write(line)

    def _wait_ready(self, timeout: float) -> None:
        url = f"http://{self.probe_host}:{self.ports['http']}/v2/health/ready"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                if self._reader is not None:
                    self._reader.join(timeout=5)
                raise ServeError(f"the Triton server did not start: {self._error_line()} "
                                 f"(novum-serve --verbose shows its whole log)")
            with contextlib.suppress(OSError):
                with opener.open(url, timeout=1.0) as r:
                    if r.status == 200:
                        return
            time.sleep(0.1)
        raise ServeError(f"the Triton server was not ready after {timeout:.0f} s: {self._error_line()}")

    def _error_line(self) -> str:
        lines = list(self._log_tail)
        errors = [m.group(1) for m in map(_ERROR.match, lines) if m and not _NOISE.search(m.group(1))]
        text = errors[0] if errors else next((ln for ln in reversed(lines) if ln.strip()), "no log output")
        text = " ".join(text.replace('\\"', '"').strip().strip('"').split())
        return text if len(text) <= 400 else text[:397] + "..."


def _spec(t) -> TensorSpec:
    return TensorSpec(t.name, str(t.dtype), tuple(int(d) if isinstance(d, int) else -1 for d in t.shape[1:]))


def _recorded_max_batch(backend) -> int | None:
    """The batch range recorded at export (ONNX ``metadata_props`` ``max_batch``), if any."""
    session = getattr(backend, "session", None)
    if session is None:
        return None
    raw = session.get_modelmeta().custom_metadata_map.get("max_batch", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def numeric_host(host: str) -> str:
    """The IPv4 address to listen on (Triton's HTTP server takes numeric IPv4 addresses only)."""
    if ":" in host:
        raise InputError(f"--host {host}: novum-serve listens on IPv4 addresses only (127.0.0.1, 0.0.0.0 or one "
                         f"of this machine's addresses)")
    try:
        return socket.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)[0][4][0]
    except socket.gaierror as e:
        raise InputError(f"--host {host}: not an address of this machine ({e.strerror})") from None


def _free_port(host: str, port: int, what: str) -> int:
    """``port`` if nothing listens on it (0: a free one the system picks); else a one-line error."""
    if not 0 <= port <= 65535:
        raise InputError(f"--{what}-port {port}: not a port number")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as servers do: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} ({what}) on {host} is already in use; stop what listens there or "
                                 f"pass another --{what}-port") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise InputError(f"--host {host}: not an address of this machine") from None
            raise InputError(f"cannot listen on {host}:{port} ({what}): {e.strerror}") from None
        return s.getsockname()[1]


def _die_with_parent() -> None:   # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
