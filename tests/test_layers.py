"""The layers of docs/architecture.md hold: every import points down, checked two ways.

- statically: every ``import`` of a novum module anywhere in a module (also inside functions, where
  an import no longer shows at import time) goes to the same or a lower layer; export and
  calibration never import each other; nothing imports a command module;
- dynamically: each layer's modules import in a fresh interpreter in which the layers above it
  (and torch, for the torch-free layers) cannot be imported at all.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# bottom to top; a module belongs to the layer of its longest matching prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("contracts", ("novum", "novum.errors", "novum.io", "novum.config", "novum.mesh", "novum.bundled",
                   "novum.cli_util", "novum.extras", "novum.opencv", "novum.contracts")),
    ("core", ("novum.model", "novum.head", "novum.volumes", "novum.checkpoint", "novum.upstream_layout", "novum.baseline", "novum.data",
              "novum.training", "novum.pose", "novum.train")),
    ("runtime", ("novum.runtime",)),
    ("export", ("novum.export",)),
    ("calibration", ("novum.calibration",)),
    ("api", ("novum.api",)),
]
RANK = {"contracts": 0, "core": 1, "runtime": 2, "export": 3, "calibration": 3, "api": 4, "commands": 5}
TORCH_FREE = {"contracts", "runtime", "export", "calibration", "api"}   # importable without torch ...
TORCH_AT_IMPORT = {"novum.export.onnx"}                                  # ... but for the exporter itself
# the commands (project.scripts targets) are the top: thin, they may import any layer
COMMANDS = {target.split(":")[0] for target in PYPROJECT["project"]["scripts"].values()}


def modules() -> dict[str, Path]:
    """Every module of the installed packages (the package-dir mapping of pyproject.toml)."""
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    out = {}
    for pkg in PYPROJECT["tool"]["setuptools"]["packages"]:
        top = next(k for k in sorted(dirs, key=len, reverse=True) if pkg == k or pkg.startswith(k + "."))
        folder = ROOT / dirs[top] / Path(*pkg[len(top):].strip(".").split(".")) if pkg != top else ROOT / dirs[top]
        for f in sorted(folder.glob("*.py")):
            out[pkg if f.name == "__init__.py" else f"{pkg}.{f.stem}"] = f
    return out


def layer_of(module: str) -> str:
    if module in COMMANDS:
        return "commands"
    best = ("", "")
    for name, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best[1]):
                best = (name, p)
    assert best[0], f"{module} is in no layer: add it to LAYERS and to docs/architecture.md"
    return best[0]


def novum_imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported novum module) for every import statement in the file, at any depth."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "novum"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_pkg]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != "novum":
                continue
            # `from novum.runtime import bench` imports novum.runtime.bench
            subs = [f"{name}.{a.name}" for a in node.names]
            out += [(node.lineno, s if s in MODULES else name) for s in subs]
    return out


MODULES = modules()


def test_every_module_has_a_layer():
    assert {"novum.contracts.onnx_file", "novum.api", "novum.runtime.run", "novum.export.onnx"} <= set(MODULES)
    for m in MODULES:
        layer_of(m)
    assert COMMANDS <= set(MODULES), COMMANDS - set(MODULES)


def test_imports_point_down():
    bad = []
    for module, path in MODULES.items():
        mine = layer_of(module)
        for line, target in novum_imports(module, path):
            theirs = layer_of(target)
            where = f"{path.relative_to(ROOT)}:{line} ({module}, {mine}) imports {target} ({theirs})"
            if theirs == "commands" and target != module:
                bad.append(where + ": commands are entry points, nothing imports them")
            elif mine != "commands" and RANK[theirs] > RANK[mine]:
                bad.append(where + ": a higher layer")
            elif {mine, theirs} == {"export", "calibration"}:
                bad.append(where + ": export and calibration are siblings; what both need goes to novum.contracts "
                                   "or novum.runtime, the chaining to novum.api")
    assert not bad, "\n".join(bad)


BLOCKER = textwrap.dedent("""
    import importlib, json, sys

    class Blocked:
        def __init__(self, prefixes):
            self.prefixes = prefixes

        def find_spec(self, name, path=None, target=None):
            if any(name == p or name.startswith(p + ".") for p in self.prefixes):
                raise ImportError(f"{name} is hidden in this test (a layer above, or torch)")
            return None

    sys.meta_path.insert(0, Blocked(json.loads(sys.argv[1])))
    failed = {}
    for m in json.loads(sys.argv[2]):
        try:
            importlib.import_module(m)
        except Exception as e:
            failed[m] = f"{type(e).__name__}: {e}"
    print(json.dumps(failed))
""")


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_layer_imports_with_the_layers_above_hidden(layer):
    mods = [m for m in MODULES if layer_of(m) == layer]
    above = [p for name, prefixes in LAYERS for p in prefixes
             if RANK[name] > RANK[layer] or (RANK[name] == RANK[layer] and name != layer)]
    hidden = above + sorted(COMMANDS)
    failed = {}
    torch_free = [m for m in mods if layer in TORCH_FREE and m not in TORCH_AT_IMPORT]
    for group, extra in ((torch_free, ["torch", "torchvision"]), ([m for m in mods if m not in torch_free], [])):
        if group:
            failed.update(import_hidden(group, hidden + extra))
    assert not failed, f"{layer} layer, with {', '.join(above) or 'nothing above'} hidden:\n" + \
        "\n".join(f"{m}: {e}" for m, e in failed.items())


def test_commands_import_without_torch():
    """Entry points load on a torch-free install (torch is imported when a command needs it)."""
    assert import_hidden(sorted(COMMANDS), ["torch", "torchvision"]) == {}


def import_hidden(mods: list[str], hidden: list[str]) -> dict[str, str]:
    """Import ``mods`` in a fresh interpreter where ``hidden`` cannot be imported; module -> error."""
    r = subprocess.run([sys.executable, "-c", BLOCKER, json.dumps(hidden), json.dumps(mods)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
