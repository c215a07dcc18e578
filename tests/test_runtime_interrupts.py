"""Ctrl-C on a real novum-run process: real SIGINTs (one, two 0.1 s or 5 ms apart, a burst, one in
the first 50 ms) leave a complete, valid video and JSONL (or none at all), exit 130, no traceback
and no C++ abort.

CI may start the test process as a background job, where SIGINT is ignored and a child inherits
that; every child here starts with SIGINT restored to the default (``preexec_fn``), so the signals
are delivered however the suite was started (plain, ``nohup``, ``&``, under ``timeout``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fakes.runtime_assets import frames, read_video, small_onnx, write_video

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("sigint") / "long.avi",
                       np.repeat(frames(4, 120, 160, seed=9), 100, axis=0), fps=30.0)


def start(video: Path, out: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "novum.runtime.cli", "--model", str(small_onnx()),
                             "--source", str(video), "--save", str(out), "--jsonl", str(log), "--no-show",
                             "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_sigint, start_new_session=True)


def wait_for_records(p: subprocess.Popen, log: Path, n: int, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        if p.poll() is not None:
            pytest.fail(f"novum-run ended before the signal (rc {p.returncode}): {p.stderr.read()[-800:]}")
        time.sleep(0.02)
    p.kill()
    pytest.fail("novum-run wrote no records in time")


def finish(p: subprocess.Popen) -> str:
    try:
        _, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"novum-run did not end after SIGINT: {err[-800:]}")
    assert "terminate called" not in err and "Traceback" not in err and "Fatal Python error" not in err, err[-1500:]
    return err


def check_outputs(out: Path, log: Path) -> int:
    lines = log.read_text().splitlines()
    recs = [json.loads(line) for line in lines]                     # every line complete JSON
    assert [r["frame"] for r in recs] == list(range(len(recs)))
    assert len(read_video(out)) == len(recs)                        # finalised, frame for frame
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]   # no hidden partial files
    return len(recs)


@pytest.mark.parametrize("gaps", [(), (0.1,), (0.005,), (0.001,) * 5],
                         ids=["one", "two-100ms-apart", "two-5ms-apart", "burst-of-6"])
def test_sigints_while_running_leave_complete_outputs(long_video, tmp_path, gaps):
    out, log = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    p = start(long_video, out, log)
    wait_for_records(p, log, 5)
    os.kill(p.pid, signal.SIGINT)
    for g in gaps:
        time.sleep(g)
        os.kill(p.pid, signal.SIGINT)
    err = finish(p)
    assert p.returncode == 130, err[-1000:]
    n = check_outputs(out, log)
    assert 5 <= n < 400
    assert "interrupted: outputs closed cleanly" in err


# What the novum-run console script does (import novum.runtime.cli: three module bodies that only
# define functions; then main()), with SIGINTs sent to itself ``delays`` after main() is called: a
# timer in the child, so the moments are the child's own however loaded the machine is. (Before
# that comes the interpreter's start-up: CPython's own, with its own message, the same for any
# Python program.)
ENTRY = """
import os, signal, sys
delays = [float(d) for d in sys.argv[1].split(",")]
def fire(*_):
    os.kill(os.getpid(), signal.SIGINT)
    if delays:
        signal.setitimer(signal.ITIMER_REAL, delays.pop(0))
sys.argv = ["novum-run"] + sys.argv[2:]
from novum.runtime.cli import main
signal.signal(signal.SIGALRM, fire)
signal.setitimer(signal.ITIMER_REAL, delays.pop(0))
sys.exit(main())
"""


@pytest.mark.parametrize("delays", ["0.0005", "0.005,0.005", "0.02,0.001,0.001", "0.05,0.1"])
def test_sigint_in_the_first_moments_prints_no_traceback_and_leaves_no_partial_files(long_video, tmp_path, delays):
    out, log = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-c", ENTRY, delays, "--model", str(small_onnx()), "--source",
                          str(long_video), "--save", str(out), "--jsonl", str(log), "--no-show", "--threads", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=_default_sigint, start_new_session=True)
    err = finish(p)
    assert p.returncode == 130, err[-1000:]
    assert "interrupted" in err
    if log.exists() or out.exists():                               # if it got as far as writing: valid
        check_outputs(out, log)
    assert not [q.name for q in tmp_path.iterdir() if q.name.startswith(".")]


@pytest.fixture
def keep_signal_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_run_cli_reports_an_error_caused_by_ctrl_c_as_the_interrupt(capsys, keep_signal_handlers):
    """numpy and OpenCV turn a KeyboardInterrupt inside their import into an ImportError."""
    from novum.cli_util import run_cli

    def body():
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            raise ImportError("PyCapsule_Import could not import module 'datetime'") from None
        return 0

    assert run_cli(body) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted"


def test_graceful_stop_is_called_once_and_later_signals_are_ignored(capfd, keep_signal_handlers):
    from novum.cli_util import graceful_interrupt, run_cli

    stops = []

    def body():
        with graceful_interrupt(lambda: stops.append(1)):
            for _ in range(4):
                signal.raise_signal(signal.SIGINT)                   # no exception inside the block
            signal.raise_signal(signal.SIGTERM)
        return 7

    assert run_cli(body) == 7 and stops == [1]
    assert capfd.readouterr().err.count("still closing the outputs cleanly") == 1     # said once
