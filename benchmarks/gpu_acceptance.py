"""GPU acceptance run: everything novum's TensorRT path promises, checked on one machine, one report.

For a person (or a session) with an NVIDIA GPU, TensorRT and pycuda:

    python benchmarks/gpu_acceptance.py --out acceptance/          # ~10-20 min on a desktop GPU

1. ``novum-checks``: versions, GPU, which backends work (stops here, exit 2, when TensorRT cannot
   build and run engines on this machine).
2. The bundled demo model and an upstream-layout model (the official release's architecture and
   bank layout, random weights unless ``--upstream classification_saved_model_199.pth``): ONNX
   fp32 / fp16 / int8, then TensorRT engines fp32 (strict, no TF32), fp32 (TF32 allowed), fp16, int8.
3. Engine and ONNX Runtime outputs against torch on the same rendered frames, with the stated
   tolerances (``novum.export.verify``).
4. The ``gpu``-marked tests (``pytest -m gpu``), which build and run real engines.
5. ``novum-bench`` on the demo model with the engines above as extra rows; model-only latency of
   the upstream-layout engines.
6. ``acceptance.md`` + ``acceptance.json`` in ``--out``: PASS only when every engine was built, every
   comparison is inside its tolerance, no gpu test failed and every benchmark row ran.

Exit status: 0 PASS, 1 FAIL, 2 cannot run here.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {  # engine name -> (ONNX precision, strict fp32)
    "fp32_strict": ("fp32", True),
    "fp32": ("fp32", False),
    "fp16": ("fp16", False),
    "int8": ("int8_trt", False),   # the TensorRT int8 graph (novum-export --int8 writes one per target)
}


@dataclass
class ModelResult:
    name: str
    source: str
    onnx: dict[str, str] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    verify_table: str = ""
    verify_ok: bool = False
    seconds: dict[str, float] = field(default_factory=dict)   # step -> wall seconds
    latency: dict[str, dict[str, float]] = field(default_factory=dict)   # engine -> p50_ms, p99_ms, fps


@dataclass
class Acceptance:
    started: str
    machine: dict[str, Any]
    checks: str = ""
    models: list[ModelResult] = field(default_factory=list)
    gpu_tests: dict[str, Any] = field(default_factory=dict)
    bench_table: str = ""
    bench_failures: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)   # "engine: ..." TensorRT; "recipe: ..." the ONNX graph too
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def model_engines(name: str, checkpoint: Path, out: Path, args: argparse.Namespace, *, log: Callable[[str], None],
                  imgsz: tuple[int, int] | None = None, allow_degraded: bool = False) -> ModelResult:
    """ONNX fp32/fp16/int8 of ``checkpoint``, the four engines, and the comparison with torch."""
    from novum.checkpoint import load_model
    from novum.api import export, resized_config
    from novum.export.tensorrt import EngineOptions, build_engine
    from novum.export.verify import verify

    res = ModelResult(name, str(checkpoint))
    folder = out / name
    int8 = {"calib": "demo", "samples": args.calib_samples, "holdout": args.calib_holdout,
            "allow_degraded": allow_degraded}
    t0 = time.perf_counter()
    exported = export(checkpoint, folder, fp16=True, int8=True, engine=False, batch=args.batch, imgsz=imgsz,
                      name=name, log=log, int8_options=int8)
    res.seconds["onnx"] = round(time.perf_counter() - t0, 1)
    res.onnx = {p: str(f) for p, f in exported.onnx.items()}
    for eng, (prec, strict) in ENGINES.items():
        t0 = time.perf_counter()
        try:
            path = build_engine(exported.onnx[prec], folder / f"{name}_{eng}.engine", log=log,
                                options=EngineOptions(max_batch=args.batch, strict_fp32=strict,
                                                      workspace_gib=args.workspace),
                                rebuild_command=f"python benchmarks/gpu_acceptance.py --out {out}")
        except Exception as e:  # noqa: BLE001 - every failure goes into the report
            res.failures.append(f"engine: {name} {eng} not built: {type(e).__name__}: {e}")
            continue
        res.engines[eng] = str(path)
        res.build_seconds[eng] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    model = load_model(checkpoint)
    if imgsz is not None:
        model.config = resized_config(model.config, imgsz)
    rep = verify(model, [*exported.onnx.values(), *map(Path, res.engines.values())],
                 frames=clip_frames(model.config.input_size, args.frames, out), log=log)
    res.seconds["verify"] = round(time.perf_counter() - t0, 1)
    res.verify_table, res.verify_ok = rep.table(), rep.ok
    onnx_ok = {t.precision: t.ok for t in rep.targets if t.backend == "onnxruntime"}
    for t in rep.targets:
        if t.ok:
            continue
        why = t.error or "outside its tolerance: " + ", ".join(c.output for c in t.checks if not c.ok)
        if t.backend == "onnxruntime":
            res.failures.append(f"recipe: {name} {t.target} on ONNX Runtime {why} (the {t.precision} graph itself, "
                                f"before TensorRT)")
        elif onnx_ok.get(_onnx_precision(t.precision), True):
            res.failures.append(f"engine: {name} {t.target} {why}, where its ONNX file is inside it")
        else:
            res.failures.append(f"recipe: {name} {t.target} {why}, as its ONNX file on ONNX Runtime")
    return res


def _onnx_precision(engine_precision: str) -> str:
    return "fp32" if engine_precision == "tf32" else engine_precision


def clip_frames(input_size: tuple[int, int], n: int, out: Path):
    """``n`` frames of the bundled demo clip (objects of the 12 classes, as cameras see them), framed
    for the model as novum-run frames them: representative input, also for int8."""
    from novum.bundled import demo_clip_path
    from novum.runtime.bench import video_frames

    return video_frames(demo_clip_path(), input_size, n)


def engine_latency(res: ModelResult, args: argparse.Namespace) -> None:
    """Model-only batch-1 latency of each engine (``novum-bench``'s timing loop)."""
    from novum.runtime.backends import load
    from novum.runtime.bench import _time_model

    for eng, path in res.engines.items():
        try:
            with load(path) as b:
                frames = clip_frames(b.input_size, 8, Path(path).parent)
                p50, p99, fps = _time_model(b, frames, args.runs, args.warmup)
            res.latency[eng] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "fps": round(fps, 1)}
        except Exception as e:  # noqa: BLE001
            res.failures.append(f"engine: {res.name} {eng} does not run: {type(e).__name__}: {e}")


def gpu_tests(out: Path, tests: list[str]) -> dict[str, Any]:
    """``pytest -m gpu`` in a fresh process; counts from its JUnit XML."""
    xml = out / "gpu-tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={xml}", *tests]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    result: dict[str, Any] = {"command": " ".join(cmd[1:]), "exit": r.returncode, "seconds": round(time.perf_counter() - t0, 1),
                              "tail": (r.stdout + r.stderr)[-3000:]}
    if xml.is_file():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        result.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
        result["skip_reasons"] = sorted({s.get("message", "") for s in suite.iter("skipped")})
    return result


def run(args: argparse.Namespace, log: Callable[[str], None] = _log) -> Acceptance:
    from novum.bundled import demo_model_path
    from novum.checks import collect, render

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    acc = Acceptance(time.strftime("%Y-%m-%d %H:%M:%S"), {"python": platform.python_version(),
                                                          "platform": platform.platform()})
    rep = collect()
    acc.checks = render(rep)
    log(acc.checks)
    trt = rep.backend("tensorrt")
    if trt is None or not trt.works:
        acc.failures.append(f"TensorRT cannot build and run engines here: {trt.detail if trt else '?'}")
        return acc

    demo = model_engines("demo", Path(args.demo or demo_model_path()), out, args, log=log)
    acc.models.append(demo)
    if "upstream" in args.models:
        upstream_ckpt = Path(args.upstream) if args.upstream else _random_upstream(out)
        upstream = model_engines("upstream", upstream_ckpt, out, args, log=log, imgsz=tuple(args.upstream_imgsz),
                                 allow_degraded=not args.upstream)
        acc.models.append(upstream)
        t0 = time.perf_counter()
        engine_latency(upstream, args)
        upstream.seconds["latency"] = round(time.perf_counter() - t0, 1)
    else:
        acc.failures.append("upstream: left out (--models demo)")

    if not args.no_pytest:
        log("running the gpu tests (pytest -m gpu) ...")
        acc.gpu_tests = gpu_tests(out, args.tests)
        if acc.gpu_tests.get("failures", 0) or acc.gpu_tests.get("errors", 0) or "tests" not in acc.gpu_tests:
            acc.failures.append(f"gpu tests: {acc.gpu_tests.get('failures', '?')} failed, {acc.gpu_tests.get('errors', '?')} "
                                f"errors (exit {acc.gpu_tests['exit']})")
        elif acc.gpu_tests["tests"] == acc.gpu_tests["skipped"]:
            acc.failures.append(f"gpu tests: all {acc.gpu_tests['tests']} skipped ({'; '.join(acc.gpu_tests['skip_reasons'])})")

    from novum.api import bench
    from novum.runtime.bench import table

    t0 = time.perf_counter()
    rows, _ = bench(args.demo or demo_model_path(), frames=args.frames * 4, runs=args.runs, warmup=args.warmup,
                    rounds=args.rounds, workdir=out / "bench", engines=list(demo.engines.values()), log=log)
    acc.bench_table = table(rows)
    acc.seconds = {"bench": round(time.perf_counter() - t0, 1)}
    acc.bench_failures = [f"bench: {r.backend} {r.precision} {Path(r.file).name if r.file else ''}: {r.status}"
                          for r in rows if r.status != "ok"]
    for m in acc.models:
        acc.failures += m.failures
    acc.failures += acc.bench_failures
    return acc


def _random_upstream(out: Path) -> Path:
    """A ``.pth`` in the official release's layout (ResNet-50 resnetext, 12 classes x 1130 bank rows +
    padding), random weights, imported as the release is: the shapes and ops TensorRT sees from it."""
    from novum.upstream_layout import write_upstream_layout_checkpoint

    path = out / "upstream" / "classification_random_layout.pth"
    if not path.is_file():
        write_upstream_layout_checkpoint(path)
    return path


def write(acc: Acceptance, out: Path) -> tuple[Path, Path]:
    from novum.io import atomic_write_text

    lines = [f"# novum GPU acceptance: {'PASS' if acc.passed else 'FAIL'}", "", f"run {acc.started}, {acc.machine['platform']}",
             "", "## Environment (novum-checks)", "", "```", acc.checks, "```", ""]
    for m in acc.models:
        steps = ", ".join(f"{k} {v} s" for k, v in m.seconds.items())
        lines += [f"## {m.name} ({Path(m.source).name})", "", f"wall time: {steps}", "",
                  "| engine | file | build (s) | p50 (ms) | FPS |", "|---|---|---:|---:|---:|"]
        for eng in ENGINES:
            lat = m.latency.get(eng, {})
            lines.append(f"| {eng} | {Path(m.engines[eng]).name if eng in m.engines else 'NOT BUILT'} | "
                         f"{m.build_seconds.get(eng, '-')} | {lat.get('p50_ms', '-')} | {lat.get('fps', '-')} |")
        lines += ["", "Outputs against torch:", "", m.verify_table, ""]
    if acc.gpu_tests:
        g = acc.gpu_tests
        lines += ["## gpu tests", "", f"`{g['command']}`: {g.get('tests', '?')} tests, {g.get('failures', '?')} failed, "
                  f"{g.get('errors', '?')} errors, {g.get('skipped', '?')} skipped ({g['seconds']} s)", ""]
        lines += [f"- skipped: {r}" for r in g.get("skip_reasons", []) if r] + [""]
    if acc.bench_table:
        lines += ["## novum-bench (demo model; the engines above as extra rows)", "", acc.bench_table, ""]
    lines += ["## Verdict", ""] + ([f"- {f}" for f in acc.failures] or ["- every engine built, every comparison inside "
                                                                         "its tolerance, gpu tests passed, every "
                                                                         "benchmark row ran"])
    md, js = out / "acceptance.md", out / "acceptance.json"
    atomic_write_text(md, "\n".join(lines) + "\n")
    atomic_write_text(js, json.dumps({**asdict(acc), "passed": acc.passed}, indent=2) + "\n")
    return md, js


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="acceptance", help="report folder (default: acceptance/)")
    p.add_argument("--demo", help="native checkpoint to use instead of the bundled demo model")
    p.add_argument("--models", nargs="+", choices=("demo", "upstream"), default=["demo", "upstream"],
                   help="which models (default both; the demo model always: the benchmark uses it)")
    p.add_argument("--upstream", help="the official classification_saved_model_199.pth (default: random weights, same layout)")
    p.add_argument("--upstream-imgsz", type=int, nargs=2, default=[640, 800], metavar=("H", "W"),
                   help="input size of the upstream-layout model: multiples of 32 (default 640 800, the release's)")
    p.add_argument("--batch", type=int, default=4, help="engine profile max batch (default 4)")
    p.add_argument("--workspace", type=float, default=4.0, help="TensorRT workspace GiB (default 4)")
    p.add_argument("--frames", type=int, default=8, help="frames compared with torch (default 8)")
    p.add_argument("--calib-samples", type=int, default=64, help="int8 calibration frames (default 64)")
    p.add_argument("--calib-holdout", type=int, default=200, help="int8 gate frames (default 200)")
    p.add_argument("--runs", type=int, default=100, help="timed inferences per engine (default 100)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3, help="novum-bench rounds (default 3)")
    p.add_argument("--tests", nargs="+", default=["tests"], help="what pytest -m gpu runs (default: tests/)")
    p.add_argument("--no-pytest", action="store_true", help="leave out the gpu tests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    acc = run(args)
    md, js = write(acc, Path(args.out))
    _log(f"wrote {md} and {js}: {'PASS' if acc.passed else 'FAIL'}")
    for f in acc.failures:
        _log(f"  - {f}")
    if acc.models or acc.passed:
        return 0 if acc.passed else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
