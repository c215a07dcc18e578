"""``novum-checks``: what this machine has, and which backends and precisions will work here.

Versions of Python, numpy, OpenCV, torch, ONNX Runtime, TensorRT, pycuda, the CUDA driver and the
GPUs (compute capability), then one row per backend: will it work here, with which precisions,
and if not, why. ONNX Runtime's execution providers are probed with a one-node session (its
``get_available_providers()`` lists what was compiled in, not what loads: a CUDA provider without
its libraries falls back to the CPU silently). Nothing here raises: a missing or broken piece is a
line of the report.

    novum-checks            # the report
    novum-checks --json     # the same, machine-readable
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from novum.gpu import SUPPORTED_TRT, cuda_driver, import_pycuda, import_tensorrt, version_tuple

ORT_CPU = "CPUExecutionProvider"


@dataclass
class Component:
    name: str
    version: str | None          # None: not usable here
    detail: str = ""             # what it offers, or why it is not usable


@dataclass
class BackendRow:
    backend: str                 # tensorrt | onnxruntime-<provider> | torch
    works: bool
    precisions: list[str] = field(default_factory=list)
    detail: str = ""             # why not, or notes


@dataclass
class Report:
    components: list[Component] = field(default_factory=list)
    backends: list[BackendRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def backend(self, name: str) -> BackendRow | None:
        return next((b for b in self.backends if b.backend == name), None)


def _guard(what: str, fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the report must never crash
        return default(f"{what} failed: {type(e).__name__}: {' '.join(str(e).split())[:160]}")


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect() -> Report:
    rep = Report()
    rep.components.append(Component("python", platform.python_version(),
                                    f"{platform.system()} {platform.machine()}, {' '.join(platform.libc_ver())}".strip()))
    from novum import __version__

    rep.components.append(Component("novum", __version__))
    rep.components.append(_guard("numpy", _numpy, lambda why: Component("numpy", None, why)))
    rep.components.append(_guard("opencv", _opencv, lambda why: Component("opencv", None, why)))
    torch = _guard("torch", _torch, lambda why: Component("torch", None, why))
    rep.components.append(torch)
    ort, ort_rows = _guard("onnxruntime", _onnxruntime, lambda why: (Component("onnxruntime", None, why), []))
    rep.components.append(ort)
    driver = _guard("CUDA driver", cuda_driver, lambda why: None)
    if driver is None:
        rep.components.append(Component("cuda-driver", None, "the driver probe failed"))
    else:
        rep.components.append(Component("cuda-driver", driver.version, driver.error or ""))
        for g in driver.gpus:
            rep.components.append(Component(f"gpu{g.index}", g.name, f"compute capability {g.compute_capability[0]}."
                                            f"{g.compute_capability[1]} (sm_{g.compute_capability[0]}{g.compute_capability[1]}), "
                                            f"{g.total_memory / (1 << 30):.1f} GiB"))
    trt, trt_why = _guard("tensorrt", import_tensorrt, lambda why: (None, why))
    rep.components.append(Component("tensorrt", getattr(trt, "__version__", None), trt_why or ""))
    cuda, cuda_why = _guard("pycuda", import_pycuda, lambda why: (None, why))
    rep.components.append(Component("pycuda", _dist_version("pycuda") if cuda is not None else None, cuda_why or ""))

    rep.backends.append(_tensorrt_row(trt, trt_why, cuda, cuda_why, driver))
    rep.backends += ort_rows
    rep.backends.append(_torch_row(torch))
    both = [d for d in ("onnxruntime", "onnxruntime-gpu") if _dist_version(d)]
    if len(both) == 2:
        rep.notes.append("both onnxruntime and onnxruntime-gpu are installed: they overwrite each other's files; keep one "
                         "(pip uninstall -y onnxruntime onnxruntime-gpu, then install the one you want)")
    if trt is not None:
        rep.notes += _tensorrt_notes(trt.__version__)
    return rep


def _numpy() -> Component:
    import numpy

    return Component("numpy", numpy.__version__)


def _opencv() -> Component:
    import cv2

    gui = "headless build: no windows" if "GUI:                           NONE" in cv2.getBuildInformation().replace("\t", " ") \
        else "with GUI"
    return Component("opencv", cv2.__version__, gui)


def _torch() -> Component:
    if _dist_version("torch") is None:
        return Component("torch", None, "not installed: training, export from checkpoints, pose and the torch backend "
                                        "need it; classification with ONNX Runtime or TensorRT does not")
    import torch

    if torch.cuda.is_available():
        return Component("torch", torch.__version__, f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    why = "CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, sees no GPU: CPU only"
    return Component("torch", torch.__version__, why)


@contextlib.contextmanager
def _stderr_to(path: str) -> Iterator[None]:
    """Native libraries log to file descriptor 2: catch it (ONNX Runtime says there why a provider failed)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _tiny_model() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _onnxruntime() -> tuple[Component, list[BackendRow]]:
    if _dist_version("onnxruntime") is None and _dist_version("onnxruntime-gpu") is None:
        why = "not installed: pip install 'novum[cpu]' (or '[gpu]' for onnxruntime-gpu; never both)"
        return Component("onnxruntime", None, why), [BackendRow("onnxruntime-cpu", False, [], why)]
    import numpy as np
    import onnxruntime as ort

    model = _tiny_model()
    compiled = list(ort.get_available_providers())
    rows, works = [], []
    for p in [ORT_CPU] + [p for p in compiled if p not in (ORT_CPU, "AzureExecutionProvider")]:
        name = "onnxruntime-" + p.removesuffix("ExecutionProvider").lower()
        ok, detail = _probe_provider(ort, np, model, p)
        precisions = ["fp32", "fp16", "int8"] if ok else []
        rows.append(BackendRow(name, ok, precisions, detail))
        if ok:
            works.append(p)
    detail = f"providers that run a session here: {', '.join(works) or 'none'}; compiled in: {', '.join(compiled)}"
    return Component("onnxruntime", ort.__version__, detail), rows


def _probe_provider(ort: Any, np: Any, model: bytes, provider: str) -> tuple[bool, str]:
    with tempfile.NamedTemporaryFile(suffix=".log") as log, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            so = ort.SessionOptions()
            so.log_severity_level = 3 if provider == ORT_CPU else 1
            with _stderr_to(log.name):
                sess = ort.InferenceSession(model, so, providers=[provider] if provider == ORT_CPU else [provider, ORT_CPU])
                out = sess.run(None, {"x": np.array([[-1, 0, 1, 2]], np.float32)})[0]
            got = sess.get_providers()
        except Exception as e:  # noqa: BLE001
            return False, f"a session does not start: {' '.join(str(e).split())[:160]}"
        said = [line.strip() for line in open(log.name, errors="replace") if "fail" in line.lower() or "error" in line.lower()]
        said += [" ".join(str(w.message).split()) for w in warned]
    if got[0] != provider:
        reason = said[0][:200] if said else "its libraries did not load"
        return False, f"compiled in, but a session falls back to the CPU ({reason})"
    if out.tolist() != [[0, 0, 1, 2]]:
        return False, f"a session runs but computes {out.tolist()} for Relu([-1, 0, 1, 2])"
    return True, "probed: a session runs on it"


def _tensorrt_row(trt: Any, trt_why: str | None, cuda: Any, cuda_why: str | None, driver: Any) -> BackendRow:
    if trt is None:
        return BackendRow("tensorrt", False, [], trt_why or "TensorRT does not import")
    if driver is None or not driver.gpus:
        return BackendRow("tensorrt", False, [], (driver.error if driver else None) or "no CUDA GPU")
    cc = driver.gpus[0].compute_capability
    precisions = ["fp32", "fp16", "int8"] + (["tf32"] if cc >= (8, 0) else [])
    notes = "fp16/int8 come from the ONNX graph (novum-export --fp16/--int8); tf32 only on sm_80+, off with --strict-fp32"
    if cuda is None:
        return BackendRow("tensorrt", False, precisions, f"engines can be built here, but not run: {cuda_why}")
    return BackendRow("tensorrt", True, precisions, notes)


def _torch_row(torch: Component) -> BackendRow:
    if torch.version is None:
        return BackendRow("torch", False, [], torch.detail)
    where = "cuda" if torch.detail.startswith("CUDA") else "cpu"
    return BackendRow("torch", True, ["fp32"], f"on {where}; also the pose refiner and export from checkpoints")


def _tensorrt_notes(version: str) -> list[str]:
    v = version_tuple(version)
    notes = []
    if v and v < SUPPORTED_TRT:
        notes.append(f"TensorRT {version} is older than novum supports (10.3 or newer: 10.3 on JetPack 6, 10.x, 11.x)")
    if v and v < (10, 9):
        notes.append(f"TensorRT {version}: --hardware-compatible same_compute_capability needs 10.9 or newer "
                     f"(ampere_plus works)")
    return notes


def render(rep: Report) -> str:
    lines = ["novum-checks: what this machine has", ""]
    width = max(len(c.name) for c in rep.components)
    for c in rep.components:
        status = c.version if c.version else "unavailable"
        lines.append(f"  {c.name:<{width}}  {status}" + (f"  - {c.detail}" if c.detail else ""))
    lines += ["", "| backend | works here | precisions | why / notes |", "|---|---|---|---|"]
    for b in rep.backends:
        lines.append(f"| {b.backend} | {'yes' if b.works else 'no'} | {', '.join(b.precisions) or '-'} | {b.detail} |")
    if rep.notes:
        lines += [""] + [f"note: {n}" for n in rep.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="novum-checks", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    rep = collect()
    print(json.dumps(asdict(rep), indent=2) if args.json else render(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
