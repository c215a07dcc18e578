"""Triton client backend: the Backend interface over HTTP or gRPC to a Triton Inference Server.

``TritonBackend("127.0.0.1:8000", model="demo")`` (``grpc://host:8001`` for gRPC). The classes and
input size come from the server itself: the ``novum_config`` parameter of the model's config,
written by ``novum-export --triton`` and ``novum-serve``. So ``novum-run --server`` has the same
framing, overlay, JSONL and video as local inference, against ``novum-serve`` or the production
container. One request per ``infer`` call, answered before the next one is sent: the source's
frame order is kept. Server errors and a server that goes away become one-line
:class:`~novum.errors.NovumError`\\ s naming the server and the model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from novum.config import MODEL_CONFIG_JSON
from novum.contracts.schema import validate
from novum.errors import InputError, NovumError
from novum.runtime.backends.base import Backend, TensorSpec

DTYPES = {"TYPE_UINT8": np.uint8, "TYPE_INT8": np.int8, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64,
          "TYPE_FP16": np.float16, "TYPE_FP32": np.float32, "TYPE_FP64": np.float64, "TYPE_BOOL": np.bool_}
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
# gRPC statuses that mean "nobody answers" rather than "the server refused this request"
_GONE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED")


def parse_url(url: str) -> tuple[str, str]:
    """``HOST[:PORT]`` or ``http://HOST[:PORT]`` -> ("http", "host:port"); ``grpc://HOST[:PORT]`` -> gRPC."""
    text = (url or "").strip()
    scheme, _, rest = text.rpartition("://")
    scheme = (scheme or "http").lower()
    if scheme not in DEFAULT_PORTS:
        raise InputError(f"--server {url}: use HOST:PORT (HTTP), http://HOST:PORT or grpc://HOST:PORT")
    rest = rest.rstrip("/")
    if not rest or "/" in rest or " " in rest:
        raise InputError(f"--server {url}: use HOST:PORT (HTTP), http://HOST:PORT or grpc://HOST:PORT")
    host, port = rest, ""
    if rest.startswith("["):                       # [::1]:8000
        host, _, tail = rest.partition("]")
        host += "]"
        port = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise InputError(f"--server {url}: '{port}' is not a port number")
    return scheme, f"{host}:{port or DEFAULT_PORTS[scheme]}"


def _client_module(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as mod
        else:
            import tritonclient.http as mod
    except ImportError:
        raise NovumError("--server needs tritonclient: pip install -e '.[serve]' (or pip install "
                         "'tritonclient[grpc,http]')") from None
    return mod


def _short(e: BaseException, n: int = 200) -> str:
    msg = e.message() if hasattr(e, "message") and callable(e.message) else str(e)
    s = " ".join(str(msg or type(e).__name__).split())
    return s if len(s) <= n else s[: n - 3] + "..."


class TritonBackend(Backend):
    kind = "triton"

    def __init__(self, url: str, model: str | None = None, timeout: float = 30.0, **_: object) -> None:
        self.protocol, self.address = parse_url(url)
        self.url = f"{self.protocol}://{self.address}"
        self.timeout = float(timeout)
        self._mod = _client_module(self.protocol)
        self._client: Any = None
        self.requests = 0
        client = self._connect()
        try:
            name = model or self._only_model(client)
            config = self._config(client, name)
        finally:
            _close(client)
        super().__init__(Path(name))
        self.model_name = name
        self.device = self.url
        params = {k: (v or {}).get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
        self.metadata = self._novum_config(params)
        self.precision = params.get("novum_precision") or "fp32"
        mb = int(config.get("max_batch_size") or 0)
        self.max_batch = mb if mb > 0 else None
        lead = ("batch",) if mb > 0 else ()
        for key, is_in in (("input", True), ("output", False)):
            for t in config.get(key) or []:
                dtype = DTYPES.get(t.get("data_type", ""))
                if dtype is None:
                    raise NovumError(f"{self._where()}: tensor {t.get('name')} has type {t.get('data_type')}, which "
                                     f"novum does not read; serve a repository written by novum-export --triton")
                self.io.append(TensorSpec(t["name"], lead + tuple(int(d) for d in t.get("dims", [])), np.dtype(dtype), is_in))
        if len(self.inputs) != 1:
            raise NovumError(f"{self._where()}: expected one input (uint8 images), the model has {len(self.inputs)}")
        self._input = self.inputs[0].name

    # -- connection --------------------------------------------------------------------------
    def _where(self) -> str:
        name = getattr(self, "model_name", None)
        return f"{self.url}" + (f" model '{name}'" if name else "")

    def _connect(self) -> Any:
        m = self._mod
        try:
            if self.protocol == "grpc":
                client = m.InferenceServerClient(self.address)
                live = client.is_server_live(client_timeout=self.timeout)
            else:
                client = m.InferenceServerClient(self.address, connection_timeout=self.timeout,
                                                 network_timeout=self.timeout)
                live = client.is_server_live()
        except Exception as e:  # noqa: BLE001 - refused, unreachable, bad address: all one line
            raise NovumError(f"{self.url}: no Triton server answers ({_short(e)}); start one with novum-serve or "
                             f"check --server") from None
        if not live:
            raise NovumError(f"{self.url}: the Triton server is not live yet; wait for it or check its log")
        return client

    def _json(self, client: Any, fn: str, *args: Any) -> Any:
        """A server query as JSON-like dicts (HTTP answers them; gRPC converts its protobufs)."""
        kw = {"as_json": True, "client_timeout": self.timeout} if self.protocol == "grpc" else {}
        return getattr(client, fn)(*args, **kw)

    def _models(self, client: Any) -> list[str]:
        index = self._json(client, "get_model_repository_index")
        entries = index.get("models", []) if isinstance(index, dict) else index
        return [e["name"] for e in entries if e.get("state", "READY") == "READY"]

    def _only_model(self, client: Any) -> str:
        names = self._models(client)
        if len(names) == 1:
            return names[0]
        if not names:
            raise NovumError(f"{self.url}: the Triton server has no ready model")
        raise NovumError(f"{self.url}: the server has {len(names)} models ({', '.join(names)}); pick one with --model NAME")

    def _config(self, client: Any, name: str) -> dict[str, Any]:
        try:
            ready = client.is_model_ready(name, client_timeout=self.timeout) if self.protocol == "grpc" \
                else client.is_model_ready(name)
        except Exception as e:  # noqa: BLE001
            raise NovumError(f"{self.url}: cannot ask for model '{name}' ({_short(e)})") from None
        if not ready:
            try:
                names = ", ".join(self._models(client)) or "none"
            except Exception:  # noqa: BLE001
                names = "unknown"
            raise NovumError(f"{self.url}: no ready model '{name}' on this server (ready: {names}); pass --model NAME")
        try:
            cfg = self._json(client, "get_model_config", name)
        except Exception as e:  # noqa: BLE001
            raise NovumError(f"{self.url}: cannot read the config of model '{name}' ({_short(e)})") from None
        return cfg.get("config", cfg) if isinstance(cfg, dict) else {}

    def _novum_config(self, params: dict[str, str]) -> dict[str, Any]:
        raw = params.get("novum_config")
        if not raw:
            raise NovumError(f"{self._where()}: not a novum model (its config has no novum_config parameter); serve a "
                             f"repository written by novum-export --triton, or use novum-serve")
        # the server's word is untrusted like any model file: the ModelConfig schema bounds it
        return validate(MODEL_CONFIG_JSON, raw, f"{self._where()}: novum_config parameter",
                        "re-export the repository with novum-export --triton")

    # -- Backend -----------------------------------------------------------------------------
    def describe(self) -> str:
        return f"{super().describe()} (Triton server {self.url})"

    def _activate(self) -> None:
        self._client = self._connect()   # in the thread that infers: HTTP clients must stay on one thread

    def _deactivate(self) -> None:
        _close(self._client)
        self._client = None

    def _infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        m = self._mod
        inp = m.InferInput(self._input, list(frames.shape), "UINT8")
        inp.set_data_from_numpy(frames)
        names = self.output_names
        outs = [m.InferRequestedOutput(n) for n in names]
        kw = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        try:
            res = self._client.infer(self.model_name, [inp], outputs=outs, request_id=str(self.requests), **kw)
        except Exception as e:  # noqa: BLE001
            raise self._error(e) from None
        self.requests += 1
        out = {n: res.as_numpy(n) for n in names}
        missing = [n for n, v in out.items() if v is None]
        if missing:
            raise NovumError(f"{self._where()}: the answer lacks outputs {missing}")
        return out

    def _error(self, e: BaseException) -> NovumError:
        from tritonclient.utils import InferenceServerException

        status = str(e.status() or "") if isinstance(e, InferenceServerException) else ""
        if isinstance(e, InferenceServerException) and not any(s in status for s in _GONE):
            return NovumError(f"{self._where()}: the server refused the request ({_short(e)})")
        return NovumError(f"{self._where()}: the server stopped answering after {self.requests} requests "
                          f"({_short(e)}); is it still running?")


def _close(client: Any) -> None:
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass
