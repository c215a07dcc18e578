"""Schemas for files that travel with models: types, ranges, sizes, one-line errors (torch-free).

Every file novum reads from elsewhere is untrusted: model metadata (``novum_config`` and the other
``metadata_props``, a checkpoint's ``config``), engine sidecars, calibration caches,
``novum_dataset.json``, training configs. Each reader

1. reads the text with :func:`read_text` (a size limit checked before reading),
2. parses it with :func:`parse_json` / :func:`parse_yaml` (UTF-8 only, no NaN or Infinity, bounded
   nesting, YAML: JSON types only and a bounded node count, so alias bombs stop early),
3. checks the value with :func:`validate` against a declarative schema built from the specs below
   (:class:`Int`, :class:`Num`, :class:`Str`, :class:`Bool`, :class:`List`, :class:`Obj`,
   :class:`Map`, :class:`Nullable`, :class:`Either`, :class:`JsonText`, :class:`AsText`, :class:`AnyJson`).

A wrong or hostile value ends in one :class:`SchemaError` line that names the file, the field and
what it must be, e.g. ``m.onnx: novum_config.max_n must be an integer in [1, 65536], got 10**9;
re-export it with novum-export``. Values are shown shortened and escaped, never dumped whole.

Adding a field to a file means adding one entry to its schema (``Obj`` fields); the schemas live
next to what they describe (``novum.config``, ``novum.contracts.sidecar``, ...), written once and
used by every reader.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from novum.errors import InputError

MAX_PROBLEMS = 3                  # problems named in one error line (the rest are counted)
MAX_YAML_NODES = 100_000          # values in one YAML document, aliases counted at each use
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class SchemaError(InputError):
    """A file (or a value in it) that does not match its schema."""


class Problem(Exception):
    """One schema violation at ``path`` (internal: :func:`validate` turns them into a SchemaError)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path} {message}" if path else message)
        self.path = path
        self.message = message


def show(value: Any, limit: int = 48) -> str:
    """A short, escaped, one-line picture of ``value`` for error messages (never the whole value)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        s = str(value) if abs(value) < 10 ** 18 else f"an integer of {len(str(abs(value)))} digits"
        return s
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        s = json.dumps(value[: limit + 1], ensure_ascii=True)
        return s if len(value) <= limit else f"{s[: limit]}...\" ({len(value)} characters)"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    return f"a {type(value).__name__}"


# ----------------------------------------------------------------------------------------------
# specs


class Spec:
    """A schema node: ``what`` says what a value must be; :meth:`check` returns the value (possibly
    normalised: tuples become lists) or raises :class:`Problem`."""

    what = "a value"

    def check(self, value: Any, path: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def fail(self, value: Any, path: str) -> Problem:
        return Problem(path, f"must be {self.what}, got {show(value)}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _n(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f" in [{_n(lo)}, {_n(hi)}]"
    if lo is not None:
        return f" >= {_n(lo)}"
    if hi is not None:
        return f" <= {_n(hi)}"
    return ""


class Int(Spec):
    def __init__(self, lo: int | None = None, hi: int | None = None, what: str | None = None) -> None:
        self.lo, self.hi = lo, hi
        self.what = what or f"an integer{_range(lo, hi)}"

    def check(self, value: Any, path: str) -> int:
        if not _is_int(value) or (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise self.fail(value, path)
        return value


class IntText(Spec):
    """A decimal integer written as a string (``metadata_props`` values are strings); returns the int."""

    def __init__(self, lo: int | None = None, hi: int | None = None) -> None:
        self.int = Int(lo, hi)
        self.what = f"an integer{_range(lo, hi)} (as text)"

    def check(self, value: Any, path: str) -> int:
        if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]{1,20}", value):
            raise self.fail(value, path)
        try:
            return self.int.check(int(value), path)
        except Problem:
            raise self.fail(value, path) from None


class Num(Spec):
    """A finite number (an int is accepted); ``gt``: strictly greater than ``lo``."""

    def __init__(self, lo: float | None = None, hi: float | None = None, gt: bool = False, what: str | None = None) -> None:
        self.lo, self.hi, self.gt = lo, hi, gt
        rng = (f" > {_n(lo)}" + (f" and <= {_n(hi)}" if hi is not None else "")) if gt and lo is not None else _range(lo, hi)
        self.what = what or f"a finite number{rng}"

    def check(self, value: Any, path: str) -> float | int:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, int) and abs(value) > 2 ** 63:
            ok = False
        if ok:
            v = float(value)
            ok = math.isfinite(v) and (self.lo is None or (v > self.lo if self.gt else v >= self.lo)) \
                and (self.hi is None or v <= self.hi)
        if not ok:
            raise self.fail(value, path)
        return value


class Bool(Spec):
    what = "true or false"

    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(value, path)
        return value


class Str(Spec):
    """A string of at most ``max_len`` characters without control characters (newlines included,
    unless ``lines``); optionally one of ``choices`` or matching ``pattern`` (whole string)."""

    def __init__(self, max_len: int = 256, min_len: int = 0, choices: Iterable[str] | None = None,
                 pattern: str | None = None, lines: bool = False, what: str | None = None) -> None:
        self.max_len, self.min_len, self.lines = max_len, min_len, lines
        self.choices = tuple(choices) if choices is not None else None
        self.pattern = re.compile(pattern) if pattern else None
        if what:
            self.what = what
        elif self.choices is not None:
            self.what = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        else:
            self.what = f"a string of {min_len}..{max_len} characters" if min_len else f"a string of at most {max_len} characters"

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not self.min_len <= len(value) <= self.max_len:
            raise self.fail(value, path)
        if self.choices is not None and value not in self.choices:
            raise self.fail(value, path)
        text = value.replace("\n", "").replace("\t", "") if self.lines else value
        if _CONTROL.search(text):
            raise Problem(path, f"must not contain control characters (newlines, escapes), got {show(value)}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise self.fail(value, path)
        return value


class List(Spec):
    """A list (a tuple too) of ``min_len..max_len`` items of ``item``; ``unique``: no repeats."""

    def __init__(self, item: Spec, max_len: int, min_len: int = 0, unique: bool = False, what: str | None = None) -> None:
        self.item, self.max_len, self.min_len, self.unique = item, max_len, min_len, unique
        n = f"{min_len}" if min_len == max_len else f"{min_len}..{max_len}"
        self.what = what or f"a list of {n} items ({item.what}){', all different' if unique else ''}"

    def check(self, value: Any, path: str) -> list:
        if not isinstance(value, (list, tuple)) or not self.min_len <= len(value) <= self.max_len:
            raise self.fail(value, path)
        out = [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if self.unique:
            seen: set = set()
            for i, v in enumerate(out):
                key = json.dumps(v, sort_keys=True)
                if key in seen:
                    raise Problem(f"{path}[{i}]", f"repeats an earlier item ({show(v)}); items must be all different")
                seen.add(key)
        return out


class Nullable(Spec):
    def __init__(self, inner: Spec) -> None:
        self.inner = inner
        self.what = f"null or {inner.what}"

    def check(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.check(value, path)


class Either(Spec):
    """The first of ``options`` that accepts the value; else the problem found deepest in the value
    (the option that matched its type best)."""

    def __init__(self, *options: Spec, what: str | None = None) -> None:
        self.options = options
        self.what = what or " or ".join(o.what for o in options)

    def check(self, value: Any, path: str) -> Any:
        best: Problem | None = None
        for o in self.options:
            try:
                return o.check(value, path)
            except Problem as p:
                if best is None or len(p.path) > len(best.path) or (p.path == best.path and "must be" not in p.message):
                    best = p
        assert best is not None
        if best.path == path and best.message.startswith("must be"):
            raise self.fail(value, path)
        raise best


class AnyJson(Spec):
    """Any JSON value (the file's size limit bounds it); ``kinds`` restricts the top-level type."""

    def __init__(self, kinds: tuple[type, ...] | None = None, what: str | None = None) -> None:
        self.kinds = kinds
        self.what = what or "a JSON value"

    def check(self, value: Any, path: str) -> Any:
        if self.kinds is not None and (not isinstance(value, self.kinds) or isinstance(value, bool) and bool not in self.kinds):
            raise self.fail(value, path)
        return value


class Map(Spec):
    """An object with free keys (``key``) and values of one kind (``value``), at most ``max_items``."""

    def __init__(self, value: Spec, max_items: int, key: Spec | None = None, what: str | None = None) -> None:
        self.value, self.max_items = value, max_items
        self.key = key or Str(1024, min_len=1)
        self.what = what or f"an object of at most {max_items} entries"

    def check(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise self.fail(value, path)
        out = {}
        for k, v in value.items():
            self.key.check(k, f"{path} key" if path else "key")
            out[k] = self.value.check(v, _join(path, k))
        return out


Check = Callable[[dict], "str | tuple[str, str] | None"]


class Obj(Spec):
    """An object with known ``fields``.

    ``required``: fields that must be present (others may be absent). ``unknown``: "ignore" (kept
    as they are: files from a newer novum still load) or "reject" (the error lists the valid
    fields). ``checks``: cross-field rules run once the fields are valid; each returns None or a
    problem (``"message"`` or ``(field, "message")``).
    """

    def __init__(self, fields: Mapping[str, Spec], required: Iterable[str] = (), unknown: str = "ignore",
                 checks: Iterable[Check] = (), max_keys: int = 256, what: str | None = None) -> None:
        self.fields = dict(fields)
        self.required = tuple(required)
        self.unknown = unknown
        self.checks = tuple(checks)
        self.max_keys = max_keys
        self.what = what or "an object"

    def extend(self, fields: Mapping[str, Spec] | None = None, required: Iterable[str] = (),
               checks: Iterable[Check] = (), unknown: str | None = None) -> "Obj":
        """A copy with more fields / required fields / checks (e.g. a file that embeds a config)."""
        return Obj({**self.fields, **(fields or {})}, self.required + tuple(required), unknown or self.unknown,
                   self.checks + tuple(checks), self.max_keys, self.what)

    def check(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict) or len(value) > self.max_keys:
            raise self.fail(value, path)
        for k in self.required:
            if k not in value:
                raise Problem(_join(path, k), "is missing")
        out = {}
        for k, v in value.items():
            spec = self.fields.get(k) if isinstance(k, str) else None
            if spec is None:
                if self.unknown == "reject":
                    valid = ", ".join(sorted(self.fields))
                    raise Problem(_join(path, str(k)), f"is not a known field (valid: {valid})")
                out[k] = v
                continue
            out[k] = spec.check(v, _join(path, k))
        for rule in self.checks:
            res = rule(out)
            if res:
                field, msg = res if isinstance(res, tuple) else ("", res)
                raise Problem(_join(path, field) if field else path, msg)
        return out


class JsonText(Spec):
    """A string that holds JSON (e.g. a ``metadata_props`` value): parsed, then checked by ``inner``."""

    def __init__(self, inner: Spec, max_bytes: int) -> None:
        self.inner, self.max_bytes = inner, max_bytes
        self.what = f"JSON text of at most {max_bytes} bytes holding {inner.what}"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise self.fail(value, path)
        if len(value) > self.max_bytes:
            raise Problem(path, f"must be at most {self.max_bytes} bytes of JSON, got {len(value)} characters")
        try:
            parsed = _loads(value)
        except Problem as p:
            raise Problem(path, p.message) from None
        return self.inner.check(parsed, path)


class AsText(Spec):
    """A string checked by ``inner`` (e.g. :class:`JsonText`, :class:`IntText`) but returned as the
    text itself, for readers that keep such values as strings."""

    def __init__(self, inner: Spec) -> None:
        self.inner = inner
        self.what = inner.what

    def check(self, value: Any, path: str) -> Any:
        self.inner.check(value, path)
        return value


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# ----------------------------------------------------------------------------------------------
# validation and parsing


def validate(spec: Spec, value: Any, where: str, fix: str = "", path: str = "") -> Any:
    """``value`` checked by ``spec`` (normalised), or one SchemaError line: ``where: field problem; fix``."""
    try:
        return spec.check(value, path)
    except Problem as p:
        raise SchemaError(_line(where, str(p), fix)) from None
    except RecursionError:
        raise SchemaError(_line(where, f"{path or 'the value'} is nested too deeply", fix)) from None


def _line(where: str, problem: str, fix: str) -> str:
    msg = f"{where}: {problem}" if where else problem
    return " ".join(f"{msg}; {fix}".split()) if fix else " ".join(msg.split())


def read_text(path: str | Path, max_bytes: int, what: str, fix: str = "") -> str:
    """The UTF-8 text of ``path``; a SchemaError when it is larger than ``max_bytes`` (checked before
    reading), unreadable or not UTF-8."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise SchemaError(_line(str(p), f"{what} of {size} bytes is larger than the {max_bytes} bytes allowed", fix))
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise SchemaError(_line(str(p), f"cannot read the {what} ({e.strerror or e})", fix)) from None
    if len(data) > max_bytes:
        raise SchemaError(_line(str(p), f"{what} is larger than the {max_bytes} bytes allowed", fix))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SchemaError(_line(str(p), f"{what} is not UTF-8 text (byte {e.start})", fix)) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"number {s[:20]} is out of range")
    return v


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise Problem("", f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise Problem("", "is not valid JSON (nested too deeply)") from None
    except ValueError as e:  # NaN/Infinity, 1e999, integers of more than 4300 digits
        raise Problem("", f"is not valid JSON ({' '.join(str(e).split())[:80]})") from None


def parse_json(text: str | bytes, where: str, fix: str = "", what: str = "file") -> Any:
    """``json.loads`` that refuses NaN, Infinity and out-of-range numbers, with one-line errors."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SchemaError(_line(where, f"the {what} is not UTF-8 text (byte {e.start})", fix)) from None
    try:
        return _loads(text)
    except Problem as p:
        raise SchemaError(_line(where, f"the {what} {p.message}", fix)) from None


def parse_yaml(text: str, where: str, fix: str = "", what: str = "file") -> Any:
    """``yaml.safe_load`` restricted to JSON values (string keys; no dates, sets or binary) and to
    :data:`MAX_YAML_NODES` values counted through aliases, so a "billion laughs" file stops early."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = " ".join(str(e).split())[:120]
        raise SchemaError(_line(where, f"the {what} is not valid YAML ({first})", fix)) from None
    except RecursionError:
        raise SchemaError(_line(where, f"the {what} is nested too deeply", fix)) from None
    try:
        _json_like(value, [0], 0)
    except Problem as p:
        raise SchemaError(_line(where, f"the {what} {p.message}", fix)) from None
    return value


def _json_like(v: Any, count: list[int], depth: int) -> None:
    count[0] += 1
    if count[0] > MAX_YAML_NODES or depth > 64:
        raise Problem("", f"is too large or too deeply nested (more than {MAX_YAML_NODES} values or 64 levels; "
                          f"YAML aliases count at each use)")
    if v is None or isinstance(v, (bool, int, str)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Problem("", "holds .nan or .inf, which are not allowed")
        return
    if isinstance(v, list):
        for x in v:
            _json_like(x, count, depth + 1)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise Problem("", f"has a key that is not a string ({show(k)})")
            _json_like(x, count, depth + 1)
        return
    raise Problem("", f"holds a {type(v).__name__} value; only JSON types are allowed")


def load_json_file(path: str | Path, spec: Spec, max_bytes: int, what: str, fix: str = "") -> Any:
    """Read, parse and validate a JSON file in one go (one-line SchemaErrors naming the file)."""
    text = read_text(path, max_bytes, what, fix)
    return validate(spec, parse_json(text, str(path), fix, what), str(path), fix)
