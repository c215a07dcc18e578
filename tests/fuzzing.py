"""Seeded mutation fuzzing of the files novum reads (tests/test_fuzz.py drives it).

A case is a mutated copy of a valid file: bytes (bit flips, truncation, inserted or overwritten
bytes, extreme numbers written over the data, duplicated or swapped chunks) or, for JSON/YAML,
values (wrong types, extreme numbers, huge lists and strings, swapped or deleted fields, unknown
fields). A *target* reads the case the way novum does. Each case must end in

- ``ok``: the target returned (a correct result: the target checks what it got), or
- ``error``: a :class:`~novum.errors.NovumError` whose message is one line,

within the time bound. Anything else is a ``bug``: another exception (a traceback), a hang
(``timeout``) or a crashed process (``crash``, when the target runs in a child process because a
native parser may take the process down: OpenCV/FFmpeg decoders, protobuf and ONNX Runtime,
torch's zip reader, safetensors). Results come back per case with the mutation that made it, so
a bug found becomes a named regression test with the same generator.
"""
from __future__ import annotations

import copy
import faulthandler
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from novum.errors import NovumError

TESTS = Path(__file__).resolve().parent
EXTREME_INTS = [0, -1, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 63 - 1, 2 ** 63, -2 ** 63, 10 ** 18, 10 ** 100]
EXTREME_FLOATS = [0.0, -0.0, 1e-308, 5e-324, 1e308, -1e308, 1e30, 3.4e38, 0.5]
EXTREME_BYTES = [b"\x00" * 4, b"\xff" * 4, b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff\xff\xff\x7f",
                 b"\x00\x00\x80\x7f", b"\x00\x00\xc0\x7f", b"\xff" * 8, b"\x00" * 8]


# ----------------------------------------------------------------------------------------------
# mutations


def mutate_bytes(data: bytes, rng: random.Random, hot: tuple[int, int] | None = None) -> tuple[bytes, str]:
    """One to three byte-level mutations of ``data``; ``hot`` = (start, end) of a region (a header)
    that gets half of the hits. Returns (mutated, description)."""
    buf = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        n = len(buf)
        if n == 0:
            buf += bytes(rng.randrange(256) for _ in range(8))
            done.append("filled empty")
            continue
        lo, hi = (hot if hot and rng.random() < 0.5 else (0, n))
        lo = min(lo, n - 1)
        hi = max(lo + 1, min(hi, n))
        pos = rng.randrange(lo, hi)
        kind = rng.choice(("flip", "flip", "truncate", "insert", "overwrite", "extreme", "duplicate", "swap", "zero"))
        if kind == "flip":
            bits = rng.choice((1, 1, 2, 8))
            for _ in range(bits):
                p = rng.randrange(lo, hi)
                buf[p] ^= 1 << rng.randrange(8)
            done.append(f"flip {bits} bit(s) near {pos}")
        elif kind == "truncate":
            keep = rng.choice((pos, rng.randrange(0, max(1, n // 8)), n - rng.randrange(1, min(n, 64) + 1)))
            del buf[keep:]
            done.append(f"truncate to {keep}")
        elif kind == "insert":
            k = rng.choice((1, 4, 16, 256))
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(k))
            done.append(f"insert {k} at {pos}")
        elif kind == "overwrite":
            k = rng.choice((1, 4, 16))
            buf[pos:pos + k] = bytes(rng.randrange(256) for _ in range(k))
            done.append(f"overwrite {k} at {pos}")
        elif kind == "extreme":
            v = rng.choice(EXTREME_BYTES)
            buf[pos:pos + len(v)] = v
            done.append(f"extreme {v.hex()} at {pos}")
        elif kind == "duplicate":
            k = rng.choice((8, 64, 512))
            buf[pos:pos] = buf[pos:pos + k]
            done.append(f"duplicate {k} at {pos}")
        elif kind == "swap":
            k = rng.choice((4, 16, 64))
            q = rng.randrange(0, max(1, n - k))
            a, b = bytes(buf[pos:pos + k]), bytes(buf[q:q + k])
            if len(a) == len(b):
                buf[pos:pos + k], buf[q:q + k] = b, a
            done.append(f"swap {k} at {pos}<->{q}")
        else:
            k = rng.choice((4, 64, 1024))
            buf[pos:pos + k] = bytes(len(buf[pos:pos + k]))
            done.append(f"zero {k} at {pos}")
    return bytes(buf), "; ".join(done)


def _paths(v: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v[:16]):
            out += _paths(x, prefix + (i,))
    return out


def _get(v: Any, path: tuple) -> Any:
    for k in path:
        v = v[k]
    return v


def _set(v: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(v, path[:-1])[path[-1]] = value
    return v


def hostile_value(rng: random.Random, old: Any) -> tuple[Any, str]:
    """A wrong or extreme replacement for ``old``."""
    kind = rng.choice(("int", "float", "type", "type", "big_list", "big_str", "nested", "negative", "empty"))
    if kind == "int":
        v = rng.choice(EXTREME_INTS)
    elif kind == "float":
        v = rng.choice(EXTREME_FLOATS)
    elif kind == "type":
        v = rng.choice((None, True, False, "", "x", "12", [], {}, [1, 2], {"a": 1}, 3.5, 7))
    elif kind == "big_list":
        item = old[0] if isinstance(old, list) and old and not isinstance(old[0], (list, dict)) else \
            rng.choice(("car", 1, 1.5, None))
        v = [item] * rng.choice((1000, 70_000, 300_000))   # past every list bound (10^6: test_untrusted)
    elif kind == "big_str":
        v = rng.choice(("a", "\n", "../", "\x1b[31m", "\u2028")) * rng.choice((200, 70_000, 1_200_000))
    elif kind == "nested":
        v: Any = [1]   # deep enough to reach deep code, shallow enough for json.dumps (deeper: test_untrusted)
        for _ in range(rng.choice((3, 50, 400))):
            v = [v] if rng.random() < 0.5 else {"a": v}
    elif kind == "negative":
        v = -abs(old) if isinstance(old, (int, float)) and not isinstance(old, bool) and old else -8
    else:
        v = type(old)() if isinstance(old, (list, dict, str)) else 0
    desc = f"{kind} {_describe(v)}"
    return v, desc


def _describe(v: Any) -> str:
    if isinstance(v, (list, dict, str)) and len(v) > 8:
        return f"{type(v).__name__}[{len(v)}]"
    return json.dumps(v) if not isinstance(v, float) or v == v else "nan"


def mutate_json(obj: Any, rng: random.Random, protect: tuple = ()) -> tuple[Any, str]:
    """One to two value mutations of a JSON-like object (a deep copy): replace a value, swap two
    fields, delete a field, add an unknown field. ``protect``: top-level keys left alone."""
    obj = copy.deepcopy(obj)
    done = []
    for _ in range(rng.choice((1, 1, 2))):
        paths = [p for p in _paths(obj) if p and p[0] not in protect] or [()]
        path = rng.choice(paths)
        kind = rng.choice(("replace", "replace", "replace", "swap", "delete", "unknown"))
        where = ".".join(str(k) for k in path)
        if kind == "replace" or not path:
            v, d = hostile_value(rng, _get(obj, path))
            obj = _set(obj, path, v)
            done.append(f"{where or '<root>'} := {d}")
        elif kind == "swap":
            other = rng.choice(paths)
            a, b = copy.deepcopy(_get(obj, path)), copy.deepcopy(_get(obj, other))
            if path[: len(other)] != other and other[: len(path)] != path:
                _set(obj, path, b)
                _set(obj, other, a)
            done.append(f"swap {where} <-> {'.'.join(str(k) for k in other)}")
        elif kind == "delete":
            parent = _get(obj, path[:-1])
            del parent[path[-1]]
            done.append(f"delete {where}")
        else:
            parent = _get(obj, path[:-1])
            if isinstance(parent, dict):
                parent[f"unknown_{rng.randrange(100)}"] = hostile_value(rng, None)[0]
                done.append(f"unknown key in {'.'.join(str(k) for k in path[:-1]) or '<root>'}")
            else:
                parent.append(hostile_value(rng, None)[0])
                done.append(f"append to {'.'.join(str(k) for k in path[:-1])}")
    return obj, "; ".join(done)


# ----------------------------------------------------------------------------------------------
# running cases


@dataclass
class Result:
    index: int
    outcome: str              # ok | error | bug | timeout | crash
    detail: str = ""          # the error line, or the traceback / exit status of a bug
    mutation: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    fmt: str
    results: list[Result] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def bugs(self) -> list[Result]:
        return [r for r in self.results if r.outcome not in ("ok", "error")]

    def summary(self) -> str:
        slow = max((r.seconds for r in self.results), default=0.0)
        return (f"{self.fmt}: {len(self.results)} cases, {self.count('ok')} ok, {self.count('error')} one-line "
                f"errors, {len(self.bugs)} bugs, slowest {slow:.2f}s")

    def failure(self) -> str:
        lines = [self.summary()]
        for r in self.bugs[:5]:
            lines.append(f"--- case {r.index} [{r.mutation}] {r.outcome}:\n{r.detail[-2500:]}")
        return "\n".join(lines)


def classify(fn: Callable[[], Any]) -> tuple[str, str]:
    """Run ``fn``: ("ok", ""), ("error", one-line message) or ("bug", traceback)."""
    try:
        fn()
    except NovumError as e:
        msg = str(e)
        if "\n" in msg or "\r" in msg or not msg.strip() or len(msg) > 2000:
            return "bug", f"NovumError not one line ({len(msg)} chars): {msg[:600]!r}"
        return "error", msg
    except BaseException as e:  # noqa: BLE001 - anything else is what the fuzzer hunts
        if isinstance(e, KeyboardInterrupt):
            raise
        return "bug", "".join(traceback.format_exception(e))
    return "ok", ""


def run_in_process(fmt: str, cases: list[tuple[bytes, str]], target: Callable[[Path], Any], workdir: Path,
                   suffix: str, case_timeout: float = 60.0) -> Report:
    """Each case written to ``workdir/case<suffix>`` and read by ``target(path)`` in this process;
    a hang longer than ``case_timeout`` ends the test run with all thread stacks (faulthandler)."""
    report = Report(fmt)
    for i, (data, desc) in enumerate(cases):
        path = workdir / f"case{i}{suffix}"
        path.write_bytes(data)
        faulthandler.dump_traceback_later(case_timeout, exit=True)
        t = time.perf_counter()
        try:
            outcome, detail = classify(lambda: target(path))
        finally:
            faulthandler.cancel_dump_traceback_later()
        report.results.append(Result(i, outcome, detail, desc, time.perf_counter() - t))
        path.unlink(missing_ok=True)
    return report


def run_in_child(fmt: str, cases: list[tuple[bytes, str]], target: str, workdir: Path, suffix: str,
                 case_timeout: float = 20.0, env: dict[str, str] | None = None, seed: Path | None = None) -> Report:
    """The cases read by ``target`` ("module:function", importable from tests/) in child processes:
    one child runs the cases in order and reports each; when it dies (a native crash) or stops
    answering for ``case_timeout`` seconds (a hang), the case it was on is recorded and a new child
    goes on with the next one. ``seed`` (the valid file) is read once before the first case, so
    lazy imports and caches do not count against the first case's time."""
    paths = []
    for i, (data, _) in enumerate(cases):
        p = workdir / f"case{i}{suffix}"
        p.write_bytes(data)
        paths.append(str(p))
    report = Report(fmt)
    start = 0
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                 "PYTHONFAULTHANDLER": "1", **(env or {})}
    while start < len(paths):
        listing = workdir / "cases.json"
        listing.write_text(json.dumps(paths[start:]))
        proc = subprocess.Popen([sys.executable, "-m", "fuzzing", target, str(listing), str(seed or "")],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=child_env, cwd=workdir)
        got = _collect(proc, case_timeout)
        for k, (outcome, detail, secs) in enumerate(got["results"]):
            i = start + k
            report.results.append(Result(i, outcome, detail, cases[i][1], secs))
        start += len(got["results"])
        if got["end"] == "done":
            break
        if start < len(paths):  # the case the child was on crashed it or hung
            err = got["stderr"][-3000:]
            report.results.append(Result(start, got["end"], f"{got['end']} ({got['status']}); stderr:\n{err}",
                                         cases[start][1], case_timeout if got["end"] == "timeout" else 0.0))
            start += 1
        elif got["end"] != "done":
            report.results.append(Result(start - 1, "crash", f"child ended badly after the last case ({got['status']}): "
                                         f"{got['stderr'][-2000:]}", "", 0.0))
            break
    for p in paths:
        Path(p).unlink(missing_ok=True)
    return report


def _collect(proc: subprocess.Popen, case_timeout: float) -> dict[str, Any]:
    """Per-case result lines of a child, with a per-case watchdog."""
    import selectors

    results: list[tuple[str, str, float]] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    end, status = "done", ""
    pending = ""
    first = True
    while True:
        # the first case also pays for the child's imports (torch, cv2, onnxruntime)
        ready = sel.select(timeout=case_timeout + (60 if first else 0))
        if not ready:
            proc.kill()
            end, status = "timeout", f"no answer within {case_timeout:.0f}s"
            break
        chunk = proc.stdout.readline()
        if not chunk:
            break
        pending = chunk.strip()
        if not pending.startswith("{"):
            continue
        msg = json.loads(pending)
        if "ready" in msg:
            first = False
            continue
        if "seed" in msg:   # the valid file itself breaks the reader: no case can tell anything
            proc.kill()
            proc.wait()
            raise AssertionError(f"the seed file is read with a {msg['seed']}:\n{msg['detail']}")
        results.append((msg["outcome"], msg["detail"], msg["seconds"]))
    proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    if end == "done" and proc.returncode != 0:
        end, status = "crash", f"exit status {proc.returncode}"
    return {"results": results, "end": end, "status": status, "stderr": stderr}


def _child(target: str, listing: str, seed: str = "") -> None:
    mod, fn = target.split(":")
    func = getattr(importlib.import_module(mod), fn)
    if seed:   # imports (torch, cv2, onnxruntime) and caches before the first case's clock starts
        outcome, detail = classify(lambda: func(Path(seed)))
        if outcome == "bug":   # a seed may be refused (the layout-only .pth), never crash
            print(json.dumps({"seed": outcome, "detail": detail}), flush=True)
            sys.exit(3)
    out = sys.stdout
    print(json.dumps({"ready": True}), file=out, flush=True)
    for p in json.loads(Path(listing).read_text()):
        t = time.perf_counter()
        outcome, detail = classify(lambda: func(Path(p)))
        print(json.dumps({"outcome": outcome, "detail": detail, "seconds": time.perf_counter() - t}), file=out, flush=True)


def cases_from(seed_data: bytes, n: int, seed: int, hot: tuple[int, int] | None = None) -> list[tuple[bytes, str]]:
    rng = random.Random(seed)
    return [mutate_bytes(seed_data, rng, hot) for _ in range(n)]


def json_cases(obj: Any, n: int, seed: int, dump: Callable[[Any], bytes] | None = None,
               byte_share: float = 0.25, protect: tuple = ()) -> list[tuple[bytes, str]]:
    """``n`` cases from a JSON-like object: value mutations, and a share of byte mutations of its text."""
    dump = dump or (lambda o: json.dumps(o).encode())
    rng = random.Random(seed)
    base = dump(obj)
    out = []
    for _ in range(n):
        if rng.random() < byte_share:
            out.append(mutate_bytes(base, rng))
        else:
            m, desc = mutate_json(obj, rng, protect)
            out.append((dump(m), desc))
    return out


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


if __name__ == "__main__":
    _child(*sys.argv[1:])
