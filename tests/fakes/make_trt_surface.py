"""Regenerate ``trt_surface.json``: the TensorRT Python API surface the fake reproduces, per release.

    python tests/fakes/make_trt_surface.py /path/to/TensorRT-git-checkout

For each release in :data:`RELEASES` it reads, at that release's git tag of the TensorRT OSS
repository, the pybind11 binding sources (which enum members and which class attributes Python
sees) and the C++ headers (the enum values). Only the enums and classes the fake implements are
kept. See docs/tensorrt.md for what the file is and why the fake is cut to it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# fake version -> git tag of its Python bindings (the OSS repo has no 11.2+ sources; 11.1 is the
# newest 11.x whose bindings are public)
RELEASES = {"10.3.0.30": "v10.3.0", "10.13.0.35": "v10.13.0", "11.1.0.106": "v11.1"}
BINDINGS = ["python/src/infer/pyCore.cpp", "python/src/infer/pyFoundationalTypes.cpp", "python/src/infer/pyGraph.cpp",
            "python/src/parsers/pyOnnx.cpp"]
HEADERS = ["include/NvInfer.h", "include/NvInferRuntime.h", "include/NvInferRuntimeBase.h",
           "include/NvInferRuntimeCommon.h"]
ENUMS = ["BuilderFlag", "HardwareCompatibilityLevel", "NetworkDefinitionCreationFlag", "MemoryPoolType", "DataType",
         "TensorIOMode"]
CLASSES = ["Logger", "Builder", "IBuilderConfig", "INetworkDefinition", "OnnxParser", "IOptimizationProfile",
           "ITimingCache", "IHostMemory", "Runtime", "ICudaEngine", "IExecutionContext"]


def show(repo: Path, tag: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"{tag}:{path}"], capture_output=True, text=True,
                          check=False).stdout


def statements(src: str, kind: str) -> dict[str, str]:
    """``py::<kind><...>(m, "Name", ...)...;`` statements by Python name (text up to the ``;``)."""
    out: dict[str, str] = {}
    for m in re.finditer(r'py::%s<[^;]*?>\s*(?:\w+\s*)?[({]\s*m\s*,\s*"(\w+)"' % kind, src):
        depth, j = 0, m.start()
        while j < len(src):
            c = src[j]
            depth += c in "({"
            depth -= c in ")}"
            if c == ";" and depth <= 0:
                break
            j += 1
        out[m.group(1)] = out.get(m.group(1), "") + src[m.start():j]
    return out


def calls(body: str, method: str) -> list[str]:
    """The argument text of every ``.<method>(...)`` call in a binding statement (balanced parentheses)."""
    out = []
    for m in re.finditer(r"\.%s\(" % method, body):
        depth, j = 1, m.end()
        while j < len(body) and depth:
            depth += body[j] == "("
            depth -= body[j] == ")"
            j += 1
        out.append(body[m.end():j - 1])
    return out


def signatures(body: str) -> dict[str, list[list[str]]]:
    """method -> its overloads, each the list of keyword names (``"x"_a``; a default marked ``x=``)."""
    sigs: dict[str, list[list[str]]] = {}
    for args in calls(body, "def"):
        m = re.match(r'\s*"(\w+)"', args)
        if m and not m.group(1).startswith("__"):
            found = re.findall(r'(?:"(\w+)"_a|py::arg\("(\w+)"\))(\s*=)?', args)
            names = [(a or b) + ("=" if d else "") for a, b, d in found]
            sigs.setdefault(m.group(1), []).append(names)
    return sigs


def header_enums(src: str) -> dict[str, dict[str, int]]:
    src = re.sub(r"/\*.*?\*/", "", re.sub(r"//[^\n]*", "", src), flags=re.S)
    out: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"enum class (\w+)\s*:\s*\w+\s*\{(.*?)\};", src, re.S):
        vals: dict[str, int] = {}
        cur = -1
        for item in m.group(2).split(","):
            mm = re.match(r"(k\w+)\s*(?:=\s*(.+))?$", item.replace("TRT_DEPRECATED_ENUM", "").strip(), re.S)
            if not mm:
                continue
            cur = int(eval(mm.group(2), {}, dict(vals))) if mm.group(2) else cur + 1  # noqa: S307 - header text
            vals[mm.group(1)] = cur
        out[m.group(1)] = vals
    return out


def release(repo: Path, tag: str) -> dict:
    src = "\n".join(show(repo, tag, f) for f in BINDINGS)
    # bindings the released wheels are built without (INetworkDefinition.serialize)
    src = re.sub(r"#if ENABLE_INETWORK_SERIALIZE.*?#endif", "", src, flags=re.S)
    values = header_enums("\n".join(show(repo, tag, f) for f in HEADERS))
    enums = {}
    for name, body in statements(src, "enum_").items():
        if name in ENUMS:
            pairs = re.findall(r'\.value\(\s*"(\w+)"\s*,\s*\w+::(k\w+)', body)
            enums[name] = {py: values[name][cpp] for py, cpp in pairs}
    classes, sigs, write_only = {}, {}, {}
    for name, body in statements(src, "class_").items():
        if name in CLASSES:
            names = re.findall(r'\.(?:def|def_property|def_property_readonly|def_readwrite|def_static)\(\s*"(\w+)"', body)
            classes[name] = sorted(n for n in set(names) if not n.startswith("__"))
            sigs[name] = signatures(body)
            # properties without a getter (stub generators leave them out)
            write_only[name] = sorted(set(re.findall(r'\.def_property\(\s*"(\w+)"\s*,\s*nullptr', body)))
    # the logger's severities: an enum bound on ILogger with export_values(), so Logger.WARNING etc. exist
    logger = re.search(r'py::enum_<ILogger::Severity>.*?;', src, re.S)
    if logger and "export_values" in logger.group(0):
        sev = re.findall(r'\.value\(\s*"(\w+)"', logger.group(0))
        classes["Logger"] = sorted(set(classes["Logger"]) | {"Severity", *sev})
    base = re.search(r'baseLoggerBinding\.def\(.*?;', src, re.S)
    if base:
        sigs["Logger"] = {**signatures(base.group(0)), **sigs["Logger"]}
    module_attrs = sorted(set(re.findall(r'm\.attr\("(\w+)"\)', src)))
    missing = [n for n in ENUMS if n not in enums] + [n for n in CLASSES if n not in classes]
    if missing:
        raise SystemExit(f"{tag}: not found in the bindings: {missing}")
    return {"tag": tag, "enums": enums, "classes": classes, "signatures": sigs, "write_only": write_only,
            "module_attrs": module_attrs}


def main(argv: list[str]) -> int:
    repo = Path(argv[1])
    data = {version: release(repo, tag) for version, tag in RELEASES.items()}
    out = Path(__file__).with_name("trt_surface.json")
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
