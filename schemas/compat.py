"""Avro schema resolution, offline: can a reader schema read what a writer schema wrote?

BACKWARD compatibility (the registry's rule for our subjects) means the *new* schema, as a
reader, can read data written with the *latest registered* one. The registry is the
authority (``billsync schemas check`` asks it); this module answers the same question
without a registry, for unit tests and an early warning. It follows the Avro 1.11
specification's "Schema Resolution" for the subset billsync uses: records, enums, unions,
arrays, maps, fixed, primitives with their promotions, and logical types (a decimal must keep
precision and scale; a date/timestamp must keep its logical type).
"""

from __future__ import annotations

from typing import Any

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

Names = dict[str, dict[str, Any]]


def _collect(schema: Any, names: Names, namespace: str | None = None) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, names, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name or not ns else f"{ns}.{name}"
            names[full] = schema
            names.setdefault(name, schema)
            for f in schema.get("fields", []):
                _collect(f["type"], names, ns)
        elif kind == "array":
            _collect(schema["items"], names, namespace)
        elif kind == "map":
            _collect(schema["values"], names, namespace)


def _resolve(schema: Any, names: Names) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return names.get(schema, schema)
    if isinstance(schema, dict) and schema.get("type") not in (
        "record", "error", "enum", "fixed", "array", "map",
    ) and "logicalType" not in schema:  # fmt: skip
        return _resolve(schema["type"], names)
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    t = schema["type"]
    return "error" if t == "error" else t if isinstance(t, str) else _kind(t)


def _logical(schema: Any) -> tuple[Any, ...] | None:
    if isinstance(schema, dict) and "logicalType" in schema:
        lt = schema["logicalType"]
        if lt == "decimal":
            return (lt, schema.get("precision"), schema.get("scale", 0))
        return (lt,)
    return None


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.rn: Names = {}
        self.wn: Names = {}
        _collect(reader, self.rn)
        _collect(writer, self.wn)
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def check(self, reader: Any, writer: Any, path: str) -> bool:
        r, w = _resolve(reader, self.rn), _resolve(writer, self.wn)
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            ok = True
            for branch in w:
                if not self._match_any(r, branch, path):
                    self.problems.append(
                        f"{path}: writer branch {_label(branch)} has no reader match"
                    )
                    ok = False
            return ok
        if rk == "union":
            if self._match_any(r, w, path):
                return True
            self.problems.append(f"{path}: reader union has no branch for writer {_label(w)}")
            return False
        if _logical(r) != _logical(w) and (_logical(r) or _logical(w)):
            self.problems.append(
                f"{path}: logical type changed from {_logical(w)} to {_logical(r)}"
            )
            return False
        if rk in _PRIMITIVES or wk in _PRIMITIVES:
            if rk in _PROMOTIONS.get(wk, {wk}):
                return True
            self.problems.append(f"{path}: type changed from {wk} to {rk}")
            return False
        if rk != wk:
            self.problems.append(f"{path}: type changed from {wk} to {rk}")
            return False
        if rk in ("record", "error"):
            return self._record(r, w, path)
        if rk == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and "default" not in r:
                self.problems.append(f"{path}: enum symbols removed: {', '.join(missing)}")
                return False
            return True
        if rk == "fixed":
            if r.get("size") != w.get("size"):
                self.problems.append(f"{path}: fixed size changed")
                return False
            return True
        if rk == "array":
            return self.check(r["items"], w["items"], f"{path}[]")
        if rk == "map":
            return self.check(r["values"], w["values"], f"{path}{{}}")
        self.problems.append(f"{path}: unsupported type {rk}")
        return False

    def _match_any(self, reader: Any, writer: Any, path: str) -> bool:
        branches = reader if isinstance(reader, list) else [reader]
        for branch in branches:
            probe = _Checker.__new__(_Checker)
            probe.rn, probe.wn, probe.problems, probe._seen = self.rn, self.wn, [], self._seen
            if probe.check(branch, writer, path):
                return True
        return False

    def _record(self, r: dict[str, Any], w: dict[str, Any], path: str) -> bool:
        key = (id(r), id(w))
        if key in self._seen:
            return True  # recursive type: assume compatible on the way down
        self._seen.add(key)
        wfields = {f["name"]: f for f in w["fields"]}
        for f in w["fields"]:
            for alias in f.get("aliases", []):
                wfields.setdefault(alias, f)
        ok = True
        for f in r["fields"]:
            names = [f["name"], *f.get("aliases", [])]
            match = next((wfields[n] for n in names if n in wfields), None)
            where = f"{path}.{f['name']}" if path else f["name"]
            if match is None:
                if "default" not in f:
                    self.problems.append(
                        f"{where}: new field without a default (old data has no value for it)"
                    )
                    ok = False
                continue
            ok = self.check(f["type"], match["type"], where) and ok
        return ok


def _label(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("logicalType") or schema.get("type"))
    return str(schema)


def backward_problems(new: Any, old: Any) -> list[str]:
    """Why ``new`` (reader) cannot read data written with ``old``; empty when it can."""
    checker = _Checker(new, old)
    checker.check(new, old, "")
    return checker.problems
