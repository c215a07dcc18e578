"""Check novum's TensorRT calls against the real API surface, without TensorRT.

Walks the source (``ast``) and follows what comes out of the ``tensorrt`` module, which novum's
code always names ``trt`` (a local name or ``self.trt``): ``trt.Builder(logger)`` is a Builder,
``builder.create_builder_config()`` is what the stubs say it returns, and so on through
assignments (``x = ...``, ``self.x = ...``). Every attribute read, call and assignment on such a
value is checked:

- against the ``tensorrt-stubs`` (TensorRT 10.13): the name exists; a call binds to one of the
  method's overloads (argument count, keyword names); a value read is a property or attribute,
  not a method; an assignment has a setter;
- against each release in ``fakes/trt_surface.json`` (10.3 of JetPack 6, 10.13, 11.x; the classes
  the fake covers): the name exists in that release, and keyword names fit its signature.

``getattr(obj, "NAME", default)`` is a guarded use: it may be missing in some releases (the code
handles that), but must exist in at least one.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from trt_stubs import Stubs, binds

SURFACE_FILE = Path(__file__).parent / "fakes" / "trt_surface.json"


@dataclass
class Use:
    file: str
    line: int
    cls: str            # "module" for trt.<name>
    name: str
    how: str            # read | call | set | guarded
    problems: list[str]

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.cls}.{self.name} ({self.how}): {'; '.join(self.problems)}"


@dataclass(frozen=True)
class T:
    """A static type: the module, a class object, or an instance of a class."""

    kind: str    # module | class | instance
    name: str = ""


MODULE = T("module")


def _ret_class(stubs: Stubs, ret: str) -> str | None:
    ret = ret.strip().strip("'\"")
    ret = re.sub(r"^(typing\.)?Optional\[(.+)\]$", r"\2", ret)
    ret = ret.split(" | ")[0].split(".")[-1]
    return ret if ret in stubs.classes else None


class Checker:
    def __init__(self, stubs: Stubs, releases: dict | None = None) -> None:
        self.stubs = stubs
        self.releases = releases if releases is not None else json.loads(SURFACE_FILE.read_text())
        self.uses: list[Use] = []
        self.param_types: dict[str, dict[str, T]] = {}   # function name -> parameter -> type (from its calls)
        self.checking = False
        self.return_types: dict[str, list[T | None]] = {}   # local function -> types of its returned tuple

    # -- types ------------------------------------------------------------------------------
    def type_of(self, node: ast.AST, env: dict[str, T]) -> T | None:
        if isinstance(node, ast.Name):
            return MODULE if node.id == "trt" else env.get(node.id)
        if isinstance(node, ast.Attribute):
            key = ast.unparse(node)
            if key == "self.trt":
                return MODULE
            if key in env:
                return env[key]
            base = self.type_of(node.value, env)
            return self.member_type(base, node.attr) if base else None
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
                base = self.type_of(node.args[0], env)
                if base and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                    return self.member_type(base, node.args[1].value)
                return None
            f = self.type_of(node.func, env)
            if f is None:
                return None
            if f.kind == "class":
                return T("instance", f.name)
            if f.kind == "method":
                cls, name = f.name.split(".")
                m = self.stubs.lookup(cls, name)
                rets = [r for r in (_ret_class(self.stubs, x) for x in (m.returns if m else [])) if r]
                return T("instance", rets[0]) if rets else None
        return None

    def member_type(self, base: T, name: str) -> T | None:
        if base.kind == "module":
            return T("class", name) if name in self.stubs.classes else None
        m = self.stubs.lookup(base.name, name)
        if m is None:
            return None
        if m.kind == "class":
            return T("class", name)
        if m.kind == "method":
            return T("method", f"{base.name}.{name}")
        if m.returns and m.returns[0].startswith("ClassVar:"):
            return T("instance", m.returns[0].split(":", 1)[1])
        cls = _ret_class(self.stubs, m.returns[0]) if m.returns else None
        return T("instance", cls) if cls else None

    # -- checks -----------------------------------------------------------------------------
    def record(self, file: str, node: ast.AST, base: T, name: str, how: str, call: ast.Call | None = None) -> None:
        cls = "module" if base.kind == "module" else base.name
        problems: list[str] = []
        if base.kind == "module":
            if name not in self.stubs.module_names:
                problems.append("not in tensorrt (stubs 10.13)")
        else:
            m = self.stubs.lookup(cls, name)
            if m is None:
                if how != "guarded" or not self._in_some_release(cls, name):
                    problems.append(f"{cls} has no '{name}' (stubs 10.13)")
            elif how == "call":
                if m.kind == "method":
                    why = [binds(o, len(call.args), [k.arg for k in call.keywords if k.arg]) for o in m.overloads]
                    if all(w is not None for w in why):
                        problems.append(f"call does not fit {cls}.{name}: {why[0]} (stubs 10.13)")
                elif m.kind != "class":
                    problems.append(f"{cls}.{name} is a {m.kind}, not a method (stubs 10.13)")
            elif how == "set" and not m.settable:
                problems.append(f"{cls}.{name} cannot be assigned (stubs 10.13)")
            elif how == "read" and m.kind == "method":
                problems.append(f"{cls}.{name} is a method, read without calling it (stubs 10.13)")
        if how != "guarded":
            for version, rel in self.releases.items():
                problems += self._release_problems(version, rel, cls, name, call)
        self.uses.append(Use(file, getattr(node, "lineno", 0), cls, name, how, problems))

    def _release_names(self, rel: dict, cls: str) -> set[str] | None:
        if cls in rel["enums"]:
            return set(rel["enums"][cls])
        if cls in rel["classes"]:
            return set(rel["classes"][cls])
        return None

    def _in_some_release(self, cls: str, name: str) -> bool:
        return any(name in (self._release_names(r, cls) or ()) for r in self.releases.values())

    def _release_problems(self, version: str, rel: dict, cls: str, name: str, call: ast.Call | None) -> list[str]:
        if cls == "module":
            return []
        names = self._release_names(rel, cls)
        if names is None or name in names or name == "__init__":
            return []
        if name in ("Severity", "WARNING", "ERROR", "INFO", "VERBOSE", "INTERNAL_ERROR") and cls == "Logger":
            return []
        return [f"{cls}.{name} is not in TensorRT {version}"]

    def _release_keywords(self, call: ast.Call, cls: str, name: str) -> list[str]:
        out = []
        for version, rel in self.releases.items():
            sigs = rel.get("signatures", {}).get(cls, {}).get(name)
            if not sigs:
                continue
            for k in (k.arg for k in call.keywords if k.arg):
                if not any(k in (n.rstrip("=") for n in o) for o in sigs):
                    out.append(f"no keyword '{k}' in {cls}.{name} of TensorRT {version}")
        return out

    # -- walking ----------------------------------------------------------------------------
    def check_file(self, path: Path, label: str | None = None) -> list[Use]:
        return self.check_source(path.read_text(), label or str(path))

    def check_source(self, source: str, label: str = "<snippet>") -> list[Use]:
        tree = ast.parse(source)
        self._tree = tree
        start = len(self.uses)
        self.param_types = {}
        self.checking = False
        for _ in range(3):   # types flow through assignments and into the functions they are passed to
            self._walk_scope(tree, {}, label)
        self.checking = True
        self._walk_scope(tree, {}, label)
        return self.uses[start:]

    def _walk_scope(self, scope: ast.AST, outer: dict[str, T], file: str) -> None:
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            outer = {**outer, **self.param_types.get(scope.name, {})}
        if isinstance(scope, ast.ClassDef):
            env = dict(outer)
            for _ in range(3):   # self.x assigned in one method, used in another: a few passes to a fixpoint
                for fn in scope.body:
                    if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self._assignments(fn, env, self_only=True)
            for node in scope.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self._walk_scope(node, env, file)
            return
        env = dict(outer)
        for _ in range(3):
            self._assignments(scope, env)
        if self.checking:
            self._check_nodes(scope, env, file)
        else:
            self._calls_into_functions(scope, env)
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in self._own_nodes(scope):
                    if isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple):
                        types = [self.type_of(e, env) for e in n.value.elts]
                        old = self.return_types.get(scope.name, [None] * len(types))
                        self.return_types[scope.name] = [a or b for a, b in zip(old, types)]
        for node in getattr(scope, "body", []):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._walk_scope(node, env, file)

    def _own_nodes(self, scope: ast.AST):
        """The nodes of ``scope`` without those of nested functions and classes."""
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            n = todo.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            yield n
            todo.extend(ast.iter_child_nodes(n))

    def _assignments(self, scope: ast.AST, env: dict[str, T], self_only: bool = False) -> None:
        for n in self._own_nodes(scope):
            if isinstance(n, ast.Assign) and len(n.targets) == 1:
                pairs = [(n.targets[0], n.value)]
            elif isinstance(n, ast.AnnAssign) and n.value is not None:
                pairs = [(n.target, n.value)]
            else:
                continue
            t0, v0 = pairs[0]
            if isinstance(t0, ast.Tuple) and isinstance(v0, ast.Tuple) and len(t0.elts) == len(v0.elts):
                pairs = list(zip(t0.elts, v0.elts))   # a, b = x, y
            elif isinstance(t0, ast.Tuple) and isinstance(v0, ast.Call) and isinstance(v0.func, ast.Name) \
                    and v0.func.id in self.return_types:   # a, b = local_function(...)
                for target, t in zip(t0.elts, self.return_types[v0.func.id]):
                    if t is not None and isinstance(target, (ast.Name, ast.Attribute)):
                        env[ast.unparse(target)] = t
                continue
            for target, value in pairs:
                key = ast.unparse(target)
                if self_only and not key.startswith("self."):
                    continue
                if isinstance(target, (ast.Name, ast.Attribute)):
                    t = self.type_of(value, env)
                    if t is not None and t.kind in ("instance", "class"):
                        env[key] = t

    def _calls_into_functions(self, scope: ast.AST, env: dict[str, T]) -> None:
        """``f(config, ...)`` with a typed argument types ``f``'s parameter (functions of this file)."""
        defs = {n.name: n for n in ast.walk(self._tree_of(scope)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for n in self._own_nodes(scope):
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in defs):
                continue
            params = [a.arg for a in defs[n.func.id].args.args]
            typed = self.param_types.setdefault(n.func.id, {})
            for i, a in enumerate(n.args):
                t = self.type_of(a, env)
                if t is not None and t.kind in ("module", "instance", "class") and i < len(params):
                    typed[params[i]] = t
            for k in n.keywords:
                t = self.type_of(k.value, env)
                if k.arg and t is not None and t.kind in ("module", "instance", "class"):
                    typed[k.arg] = t

    def _tree_of(self, scope: ast.AST) -> ast.AST:
        return self._tree if hasattr(self, "_tree") else scope

    def _check_nodes(self, scope: ast.AST, env: dict[str, T], file: str) -> None:
        calls = {id(n.func): n for n in self._own_nodes(scope) if isinstance(n, ast.Call)}
        for n in self._own_nodes(scope):
            if isinstance(n, ast.Attribute):
                if ast.unparse(n) in ("self.trt",):
                    continue
                base = self.type_of(n.value, env)
                if base is None or base.kind not in ("module", "class", "instance"):
                    continue
                if isinstance(n.ctx, ast.Store):
                    self.record(file, n, base, n.attr, "set")
                elif id(n) in calls:
                    call = calls[id(n)]
                    self.record(file, n, base, n.attr, "call", call)
                    for p in self._release_keywords(call, base.name, n.attr) if base.kind == "instance" else []:
                        self.uses[-1].problems.append(p)
                else:
                    self.record(file, n, base, n.attr, "read")
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("getattr", "hasattr") \
                    and len(n.args) >= 2 and isinstance(n.args[1], ast.Constant):
                base = self.type_of(n.args[0], env)
                if base is not None and base.kind in ("module", "class", "instance"):
                    guarded = n.func.id == "hasattr" or len(n.args) == 3
                    self.record(file, n, base, n.args[1].value, "guarded" if guarded else "read")
            elif isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute)):
                t = self.type_of(n.func, env)
                if t is not None and t.kind == "class":
                    self.record(file, n, t, "__init__", "call", n)


def tensorrt_files(root: Path) -> list[Path]:
    """novum's source files that use the tensorrt module (named ``trt``)."""
    out = []
    for folder in ("novum", "export", "runtime", "calibration"):
        for p in sorted((root / folder).rglob("*.py")):
            if re.search(r"\btrt\.\w", p.read_text()):
                out.append(p)
    return out
