"""Read the TensorRT 10.13 API surface from the ``tensorrt-stubs`` package (generated ``.pyi`` files).

The stubs are generated from the real bindings but are not always valid Python (pybind11 lets a
parameter without a default follow one with a default), so they are read line by line: classes
(with their bases and nested enums), their methods with every overload's parameters, properties
(read-only or settable) and class attributes, and the names the ``tensorrt`` package exports.
"""
from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path

STUBS_DIST = "tensorrt-stubs"
STUBS_VERSION = "10.13.0.35.1"
INSTALL_HINT = f"pip install --no-deps {STUBS_DIST}=={STUBS_VERSION}  (pure .pyi; --no-deps: it names tensorrt as a dependency)"


@dataclass(frozen=True)
class Param:
    name: str
    has_default: bool
    kind: str = "normal"   # normal | varargs | varkw | posonly-marker | kwonly-marker


@dataclass
class Member:
    name: str
    kind: str                                   # method | property | attribute | class
    overloads: list[list[Param]] = field(default_factory=list)   # methods: params after self
    returns: list[str] = field(default_factory=list)             # methods and properties
    settable: bool = False                      # properties: has a setter; attributes: always
    static: bool = False
    value: int | None = None                    # enum members: the integer value


@dataclass
class StubClass:
    name: str
    bases: list[str]
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def enum_members(self) -> dict[str, int | None]:
        """Names typed ``typing.ClassVar[<this class>]`` (the members of a pybind11 enum) -> value."""
        return {m.name: m.value for m in self.members.values()
                if m.kind == "attribute" and m.returns == [f"ClassVar:{self.name}"]}


@dataclass
class Stubs:
    version: str
    classes: dict[str, StubClass]
    module_names: set[str]

    def lookup(self, cls: str, name: str) -> Member | None:
        """``cls.name`` through the class's bases (as Python resolves it)."""
        seen = set()
        todo = [cls]
        while todo:
            c = todo.pop(0)
            if c in seen or c not in self.classes:
                continue
            seen.add(c)
            if name in self.classes[c].members:
                return self.classes[c].members[name]
            todo += self.classes[c].bases
        return None


def stubs_dir() -> Path | None:
    """The folder holding ``tensorrt_bindings/`` of the installed stubs, or None."""
    try:
        dist = importlib.metadata.distribution(STUBS_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if str(f).replace("\\", "/") == "tensorrt_bindings/tensorrt.pyi":
            return Path(dist.locate_file(f)).parent.parent
    return None


def load_stubs(root: Path | None = None) -> Stubs:
    root = root or stubs_dir()
    if root is None:
        raise FileNotFoundError(f"{STUBS_DIST} is not installed: {INSTALL_HINT}")
    text = (root / "tensorrt_bindings" / "tensorrt.pyi").read_text()
    classes = _classes(text)
    init = (root / "tensorrt" / "__init__.pyi").read_text()
    names = set(re.findall(r"^from tensorrt_bindings(?:\.tensorrt)? import (\w+)", init, re.M))
    names |= set(re.findall(r"^(?:def|class) (\w+)", init, re.M))
    names |= set(re.findall(r"^(\w+)(?:\s*:\s*[^=]+)?\s*=", init, re.M))
    version = re.search(r"^__version__\s*:\s*str\s*=\s*'([^']+)'", init, re.M)
    return Stubs(version.group(1) if version else "?", classes, names)


_CLASS = re.compile(r"^( *)class (\w+)(?:\((.*)\))?:")
_DEF = re.compile(r"^( *)def (\w+)\((.*)\)(?:\s*->\s*(.+?))?:\s*$")
_ATTR = re.compile(r"^( *)(\w+): (.+?)(?:\s+#(.*))?$")


def _classes(text: str) -> dict[str, StubClass]:
    classes: dict[str, StubClass] = {}
    stack: list[tuple[int, StubClass]] = []   # (indent of the class body, class)
    decorators: list[str] = []
    in_doc = False
    for line in text.splitlines():
        stripped = line.strip()
        if in_doc:
            in_doc = stripped.count('"""') % 2 == 0
            continue
        if stripped.startswith('"""'):
            in_doc = stripped.count('"""') == 1
            continue
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        while stack and indent < stack[-1][0]:
            stack.pop()
        if m := _CLASS.match(line):
            bases = [b.strip().split(".")[-1] for b in (m.group(3) or "").split(",") if b.strip()]
            c = StubClass(m.group(2), [b for b in bases if b not in ("object",)])
            if stack:   # a nested class (e.g. ILogger.Severity) is an attribute of its parent too
                stack[-1][1].members[c.name] = Member(c.name, "class")
            classes.setdefault(c.name, c)
            stack.append((indent + 4, classes[c.name]))
            decorators = []
            continue
        if not stack or indent != stack[-1][0]:
            continue
        cls = stack[-1][1]
        if stripped.startswith("@"):
            decorators.append(stripped)
            continue
        if m := _DEF.match(line):
            name, params, ret = m.group(2), m.group(3), (m.group(4) or "").strip()
            if any(d.endswith(".setter") for d in decorators):
                if name in cls.members:
                    cls.members[name].settable = True
            elif "@property" in decorators:
                cls.members[name] = Member(name, "property", returns=[ret])
            else:
                static = "@staticmethod" in decorators
                mem = cls.members.get(name)
                if mem is None or mem.kind != "method":
                    mem = cls.members[name] = Member(name, "method", static=static)
                mem.overloads.append(_params(params, static))
                mem.returns.append(ret)
            decorators = []
            continue
        if m := _ATTR.match(line):
            typ = m.group(3).strip()
            cv = re.match(r"typing\.ClassVar\[(.+)\]$", typ)
            if cv:
                value = re.search(r"value = <[\w.]+: (-?\d+)>", m.group(4) or "")
                cls.members[m.group(2)] = Member(m.group(2), "attribute", returns=[f"ClassVar:{cv.group(1).split('.')[-1]}"],
                                                 value=int(value.group(1)) if value else None)
            else:
                cls.members[m.group(2)] = Member(m.group(2), "attribute", returns=[typ], settable=True)
        decorators = []
    return classes


def _params(text: str, static: bool) -> list[Param]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    out = []
    for i, p in enumerate(x.strip() for x in parts):
        if i == 0 and not static and p.split(":")[0].strip() in ("self", "this"):
            continue
        if p == "/":
            out.append(Param("/", False, "posonly-marker"))
        elif p == "*":
            out.append(Param("*", False, "kwonly-marker"))
        elif p.startswith("**"):
            out.append(Param(p[2:].split(":")[0].strip(), False, "varkw"))
        elif p.startswith("*"):
            out.append(Param(p[1:].split(":")[0].strip(), False, "varargs"))
        else:
            out.append(Param(p.split(":")[0].split("=")[0].strip(), "=" in p))
    return out


def binds(params: list[Param], n_positional: int, keywords: list[str]) -> str | None:
    """None when a call with ``n_positional`` positional args and these keywords fits ``params``;
    else why not (pybind11 semantics: any parameter may be given by keyword)."""
    normal = [p for p in params if p.kind == "normal"]
    var_args = any(p.kind == "varargs" for p in params)
    var_kw = any(p.kind == "varkw" for p in params)
    if n_positional > len(normal) and not var_args:
        return f"{n_positional} positional arguments, at most {len(normal)} accepted"
    names = [p.name for p in normal]
    given = set(names[:n_positional])
    for k in keywords:
        if k not in names and not var_kw:
            return f"no parameter named '{k}' (parameters: {', '.join(names) or 'none'})"
        if k in given:
            return f"'{k}' given twice"
        given.add(k)
    missing = [p.name for p in normal if not p.has_default and p.name not in given]
    if missing:
        return f"missing {', '.join(missing)}"
    return None
