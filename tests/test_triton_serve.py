"""End to end with a real tritonserver (the nvidia-pytriton wheel's binary) on loopback only:
novum-serve's process, health/metrics, the demo clip through novum-run --server against local ONNX
Runtime, bad requests, a server that dies mid-stream, clean stops, and loopback-only binding."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fakes.runtime_assets import read_video
from novum.errors import InputError, NovumError
from novum.runtime.serve.server import ServeError, ServeOptions, TritonServer


def _unavailable() -> str | None:
    """Why the real server cannot run here (the e2e tests then skip), or None."""
    try:
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError:
        return "needs tritonclient (pip install -e '.[serve]')"
    from novum.runtime.serve.dist import find_triton, server_env

    try:
        dist = find_triton()
    except NovumError as e:
        return str(e)
    r = subprocess.run([str(dist.binary), "--help"], env=server_env(dist), capture_output=True, text=True, timeout=60)
    if "--model-repository" not in r.stdout + r.stderr:   # (--help exits 1 after printing the usage)
        return f"the bundled tritonserver does not run on this machine: {(r.stderr or r.stdout).strip()[:200]}"
    return None


UNAVAILABLE = _unavailable()
needs_server = pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))
FREE = dict(http_port=0, grpc_port=0, metrics_port=0)
FP32_ATOL = 1e-5   # fp32 scores: the README's stated tolerance


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory) -> Path:
    from novum.bundled import demo_model_path
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    return export_onnx(load_model(demo_model_path()), tmp_path_factory.mktemp("demo") / "demo.onnx")


@pytest.fixture(scope="module")
def server(demo_onnx):
    with TritonServer(demo_onnx, ServeOptions(**FREE)) as s:
        yield s


def get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        return r.status, r.read().decode()


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                found.add(addr)
    return found


@needs_server
def test_health_readiness_metrics_and_loopback_only(server):
    base = f"http://{server.http_url}"
    assert get(f"{base}/v2/health/live")[0] == 200 and get(f"{base}/v2/health/ready")[0] == 200
    assert get(f"{base}/v2/models/demo/ready")[0] == 200
    code, text = get(server.metrics_url)
    assert code == 200 and 'nv_inference_count{model="demo",version="1"}' in text
    for port in server.ports.values():   # 127.0.0.1 (or its v4-mapped v6 form), never 0.0.0.0 / ::
        assert listening_addresses(port) and listening_addresses(port) <= {
            "0100007F", "0000000000000000FFFF00000100007F"}, listening_addresses(port)


@needs_server
def test_demo_clip_through_the_server_matches_local_onnxruntime(server, demo_onnx, tmp_path):
    from novum.runtime.run import run

    local = run("demo", demo_onnx, show=False, quiet=True, jsonl=tmp_path / "local.jsonl")
    remote = run("demo", None, server=server.http_url, show=False, quiet=True, jsonl=tmp_path / "remote.jsonl",
                 save=tmp_path / "remote.mp4")
    grpc = run("demo", None, server=server.grpc_url, show=False, quiet=True, jsonl=tmp_path / "grpc.jsonl", max_frames=40)
    ref = records(tmp_path / "local.jsonl")
    assert local.frames == remote.frames == len(ref) > 100 and grpc.frames == 40
    for name, n in (("remote", len(ref)), ("grpc", 40)):
        got = records(tmp_path / f"{name}.jsonl")
        assert [r["frame"] for r in got] == [r["frame"] for r in ref[:n]] == list(range(n))   # the clip's own order
        assert [r["label"] for r in got] == [r["label"] for r in ref[:n]]                       # same top-1
        for a, b in zip(got, ref):
            assert [t["index"] for t in a["topk"]] == [t["index"] for t in b["topk"]]
            np.testing.assert_allclose([t["score"] for t in a["topk"]], [t["score"] for t in b["topk"]], atol=FP32_ATOL)
            assert a["coverage"] == pytest.approx(b["coverage"], abs=1e-6)
    assert len(read_video(tmp_path / "remote.mp4")) == len(ref)


@needs_server
def test_cli_and_classification_extension(server, demo_onnx, tmp_path, capsys):
    import tritonclient.http as http

    from novum.runtime.backends import load
    from novum.runtime.cli import main
    from novum.contracts.framing import Framer
    from novum.runtime.sources import open_source

    assert main(["--server", server.http_url, "--model", "demo", "--source", "demo", "--max-frames", "5",
                 "--jsonl", str(tmp_path / "o.jsonl"), "--quiet"]) == 0
    assert len(records(tmp_path / "o.jsonl")) == 5
    with load(demo_onnx) as be, open_source("demo") as src:
        framer = Framer(be.input_size)
        x = np.stack([framer(f.image)[0] for f, _ in zip(src, range(3))])
        ref = be.infer(x)["scores"]
        classes = be.classes
    c = http.InferenceServerClient(server.http_url)
    inp = http.InferInput("images", list(x.shape), "UINT8")
    inp.set_data_from_numpy(x)
    top = c.infer("demo", [inp], outputs=[http.InferRequestedOutput("scores", class_count=3)]).as_numpy("scores")
    for row, s in zip(top, ref):   # Triton's classification extension, from labels.txt: "score:index:label"
        parsed = [v.decode().split(":") for v in row]
        assert [int(p[1]) for p in parsed] == list(np.argsort(-s, kind="stable")[:3])
        assert [p[2] for p in parsed] == [classes[int(p[1])] for p in parsed]
        np.testing.assert_allclose([float(p[0]) for p in parsed], np.sort(s)[::-1][:3], atol=1e-5)


@needs_server
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_give_one_line_errors_and_the_server_keeps_serving(server, protocol):
    from novum.runtime.backends.triton import TritonBackend

    url = server.http_url if protocol == "http" else server.grpc_url
    be = TritonBackend(url)
    good = np.zeros((1, 128, 160, 3), np.uint8)
    ref = be.infer(good)["scores"]
    with pytest.raises(InputError, match=r"expected uint8 BGR frames \[B,128,160,3\]"):   # caught before sending
        be.infer(np.zeros((1, 128, 160, 3), np.float32))
    for bad in (np.zeros((1, 96, 160, 3), np.uint8), np.zeros((9, 128, 160, 3), np.uint8)):   # as sent by others
        with pytest.raises(NovumError) as e:
            be._infer(bad)
        msg = str(e.value)
        assert "the server refused the request" in msg and "\n" not in msg, msg
    mod = be._mod                                   # a raw client that declares FP32 for a UINT8 input
    raw = mod.InferenceServerClient(url.split("://")[-1])
    inp = mod.InferInput("images", [1, 128, 160, 3], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 128, 160, 3), np.float32))
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="(?i)data.?type|FP32"):
        raw.infer("demo", [inp])
    np.testing.assert_array_equal(be.infer(good)["scores"], ref)      # still serving, same answer
    with pytest.raises(NovumError, match=r"no ready model 'nope' on this server \(ready: demo\)"):
        TritonBackend(url, model="nope")
    be.close()


@pytest.mark.skipif(UNAVAILABLE is not None and "tritonclient" in str(UNAVAILABLE), reason=str(UNAVAILABLE))
def test_client_errors_without_a_server():
    from novum.runtime.backends.triton import TritonBackend, parse_url

    with socket.socket() as s:      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in (f"127.0.0.1:{port}", f"grpc://127.0.0.1:{port}"):
        with pytest.raises(NovumError, match="no Triton server answers") as e:
            TritonBackend(url, timeout=5)
        assert "\n" not in str(e.value)
    assert parse_url("grpc://[::1]") == ("grpc", "[::1]:8001") and parse_url("host") == ("http", "host:8000")
    for bad in ("ftp://h:1", "h:99999", "h:1/path"):
        with pytest.raises(InputError):
            parse_url(bad)


@needs_server
def test_server_gone_mid_stream_is_one_line_and_keeps_the_outputs(demo_onnx, tmp_path, capsys):
    from novum.runtime.cli import main

    s = TritonServer(demo_onnx, ServeOptions(**FREE)).start()
    out = tmp_path / "o.jsonl"

    def crash():
        while not out.exists() or len(out.read_text().splitlines()) < 10:
            time.sleep(0.01)
        os.kill(s.proc.pid, signal.SIGKILL)     # a crash, not a drain

    t = threading.Thread(target=crash)
    t.start()
    try:
        rc = main(["--server", s.grpc_url, "--source", "demo", "--jsonl", str(out), "--save", str(tmp_path / "o.mp4"),
                   "--quiet"])
    finally:
        t.join()
        s.stop()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith("error: grpc://") and "the server stopped answering after" in err, err
    recs = records(out)
    assert 10 <= len(recs) < 210 and [r["frame"] for r in recs] == list(range(len(recs)))
    assert len(read_video(tmp_path / "o.mp4")) == len(recs)
    assert not list(Path("/dev/shm").glob(s._shm_prefix + "*"))       # the killed server's shared memory is gone


@needs_server
def test_port_taken_and_broken_model_fail_before_starting(demo_onnx, tmp_path, capsys):
    from novum.runtime.serve.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--model", str(demo_onnx), "--grpc-port", str(port), "--http-port", "0",
                     "--metrics-port", "0"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: port {port} (grpc) on 127.0.0.1 is already in use; stop what listens there or pass " \
                      f"another --grpc-port"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert main(["--model", str(bad), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: ONNX Runtime cannot load the model") and "\n" not in err


@needs_server
def test_a_model_that_fails_inside_triton_is_one_line_and_leaves_nothing(demo_onnx, monkeypatch):
    import novum.runtime.serve.server as S

    monkeypatch.setattr(S, "MODEL_PY", "class TritonPythonModel:\n    def initialize(self, args):\n"
                                       "        raise RuntimeError('broken on purpose')\n")
    s = TritonServer(demo_onnx, ServeOptions(**FREE))
    with pytest.raises(ServeError) as e:
        s.start()
    msg = str(e.value)
    assert "the Triton server did not start" in msg and "broken on purpose" in msg and "\n" not in msg, msg
    assert s.proc.poll() is not None and s.run_dir is None
    with socket.socket() as probe:            # its port is free again
        probe.bind(("127.0.0.1", s.ports["http"]))


def test_host_must_be_an_ipv4_address_of_this_machine():
    from novum.runtime.serve.server import numeric_host

    assert numeric_host("localhost") == "127.0.0.1" and numeric_host("0.0.0.0") == "0.0.0.0"
    with pytest.raises(InputError, match="IPv4 addresses only"):
        numeric_host("::1")
    with pytest.raises(InputError, match="not an address of this machine"):
        numeric_host("no-such-host.invalid")


NETNS_PROBE = textwrap.dedent(r"""
    import json, os, signal, socket, subprocess, sys, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/24", "dev", "lo"], check=True)   # a non-loopback address

    def reachable(host, port):
        with socket.socket() as c:
            c.settimeout(2)
            return c.connect_ex((host, port)) == 0

    def ns_processes():
        me = os.readlink("/proc/self/ns/net")
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit() and int(p) != os.getpid():
                try:
                    if os.readlink(f"/proc/{p}/ns/net") == me:
                        out.append(open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0].decode())
                except OSError:
                    pass
        return out

    result = {}
    for host, sig, ports in ((None, signal.SIGTERM, (18000, 18001, 18002)), ("0.0.0.0", signal.SIGINT, (18010, 18011, 18012))):
        cmd = [sys.executable, "-m", "novum.runtime.serve.cli", "--model", sys.argv[1], "--http-port", str(ports[0]),
               "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])] + (["--host", host] if host else [])
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        head = ""
        while "Ctrl-C stops" not in head:            # the CLI says where it listens once Triton is ready
            line = proc.stderr.readline()
            if not line:
                break
            head += line
        r = {"loopback": [reachable("127.0.0.1", p) for p in ports],
             "other": [reachable("192.0.2.1", p) for p in ports]}
        proc.send_signal(sig)
        r["rc"] = proc.wait(60)
        r["stderr"] = head + proc.stderr.read()
        time.sleep(0.5)
        r["left"] = ns_processes()
        result[host or "default"] = r
    print(json.dumps(result))
""")


@needs_server
def test_listens_on_loopback_unless_asked_and_stops_cleanly(demo_onnx):
    """In a network namespace of its own (so no outside address is touched) that also has the
    non-loopback address 192.0.2.1: by default the server answers on 127.0.0.1 only; with
    --host 0.0.0.0 on 192.0.2.1 too. SIGTERM and SIGINT stop it with nothing left running."""
    if os.geteuid() == 0:
        cmd = ["unshare", "--net"]
    else:
        cmd = ["unshare", "--net", "--map-root-user"]
    try:
        ok = subprocess.run(cmd + ["true"], capture_output=True, timeout=30).returncode == 0
    except FileNotFoundError:
        ok = False
    if not ok:
        pytest.skip("needs unshare --net (a private network namespace) to test a non-loopback address safely")
    r = subprocess.run(cmd + [sys.executable, "-c", NETNS_PROBE, str(demo_onnx)], capture_output=True, text=True,
                       timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    d, everywhere = res["default"], res["0.0.0.0"]
    assert d["loopback"] == [True] * 3 and d["other"] == [False] * 3, d
    assert everywhere["loopback"] == [True] * 3 and everywhere["other"] == [True] * 3, everywhere
    assert "warning: listening on 0.0.0.0" in everywhere["stderr"] and "warning" not in d["stderr"]
    for x in (d, everywhere):
        assert x["rc"] == 130 and "stopped (tritonserver exit code 0)" in x["stderr"], x
        assert x["left"] == [], x               # no tritonserver, no Python-backend stub left behind
