"""Ignore rules with Argo CD ``ignoreDifferences`` semantics (ankra-spec §5.1).

* Selectors ``group``/``kind``/``name``/``namespace`` are optional (``None`` matches all) and
  accept ``*`` globs; ``group=""`` is the core API group.
* ``json_pointers`` (RFC 6901) and ``jq_path_expressions`` remove the paths they designate from
  *both* sides before comparing. A jq expression is evaluated as ``[path(EXPR)]`` separately on each
  side, so ``select(.name == "X")`` finds the item wherever it sits in each list.
* ``managed_fields_managers``: a difference on a field owned (per live managedFields) by one of
  these managers is not drift, on both sides (applied by the walk, see ``compare.py``).
* A rule without any of the three specifiers is ignored, as Argo CD does.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jq
import jsonpointer

from moorage.engine.diffing.model import Path, ResourceKey

if TYPE_CHECKING:
    from moorage.spec.models import IgnoreDifference


@dataclass(frozen=True)
class IgnoreRule:
    group: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    json_pointers: tuple[str, ...] = ()
    jq_path_expressions: tuple[str, ...] = ()
    managed_fields_managers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # fail when the rule is built, not in the middle of a sweep
        for pointer in self.json_pointers:
            pointer_parts(pointer)
        for expression in self.jq_path_expressions:
            _compile(expression)

    @classmethod
    def from_spec(cls, spec: IgnoreDifference) -> IgnoreRule:
        return cls(
            group=spec.group,
            kind=spec.kind,
            name=spec.name,
            namespace=spec.namespace,
            json_pointers=tuple(spec.json_pointers),
            jq_path_expressions=tuple(spec.jq_path_expressions),
            managed_fields_managers=tuple(spec.managed_fields_managers),
        )

    @property
    def has_specifier(self) -> bool:
        return bool(self.json_pointers or self.jq_path_expressions or self.managed_fields_managers)

    def matches(self, key: ResourceKey) -> bool:
        return self.has_specifier and all(
            pattern is None or fnmatch.fnmatchcase(value or "", pattern)
            for pattern, value in (
                (self.group, key.group),
                (self.kind, key.kind),
                (self.name, key.name),
                (self.namespace, key.namespace),
            )
        )


def matching_rules(rules: Iterable[IgnoreRule], key: ResourceKey) -> tuple[IgnoreRule, ...]:
    return tuple(rule for rule in rules if rule.matches(key))


def pointer_parts(pointer: str) -> Path:
    """RFC 6901 pointer → path elements (``~1`` → ``/``, ``~0`` → ``~``); ValueError if invalid."""
    try:
        parts: list[str] = jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException as exc:
        raise ValueError(f"{pointer!r} is not a JSON pointer (RFC 6901): {exc}") from exc
    return tuple(parts)


@functools.lru_cache(maxsize=256)
def _compile(expression: str) -> Any:
    try:
        return jq.compile(f"[path({expression})]")
    except ValueError as exc:
        raise ValueError(f"{expression!r} is not a jq path expression: {exc}") from exc


def jq_paths(expression: str, obj: Any) -> list[Path]:
    """The paths ``expression`` designates in ``obj``. A runtime error (iterating over null, a
    non-path expression such as ``length``) designates nothing, so one odd object cannot break a sweep."""
    try:
        result = _compile(expression).input_value(obj).first()
    except ValueError:
        return []
    paths: list[Path] = []
    for raw in result if isinstance(result, list) else []:
        if isinstance(raw, list) and all(isinstance(e, str | int) for e in raw):
            paths.append(tuple(raw))  # slices ({start, end}) are not supported, skip them
    return paths


def ignored_paths(rules: Iterable[IgnoreRule], obj: Any) -> list[Path]:
    """Everything the pointer and jq parts of ``rules`` designate in ``obj``."""
    out: list[Path] = []
    for rule in rules:
        out.extend(pointer_parts(p) for p in rule.json_pointers)
        for expression in rule.jq_path_expressions:
            out.extend(jq_paths(expression, obj))
    return out


def remove_paths(obj: Any, paths: Iterable[Path], *, list_placeholder: object | None = None) -> None:
    """Delete every existing path from ``obj`` in place; missing ones are no-ops. Paths are first
    made concrete against ``obj`` (pointer indices are strings), then removed deepest and highest
    list index first, so removing one item does not shift another one still to remove.

    With ``list_placeholder``, list items are replaced by it instead of deleted: positions in the
    live object stay those of the object as read (managedFields ``i:`` keys and JSON patches)."""
    concrete = {c for c in (_concrete(obj, p) for p in paths) if c}  # () = whole object: skip
    for path in sorted(concrete, key=_removal_order, reverse=True):
        parent = obj
        for element in path[:-1]:
            parent = parent[element]
        last = path[-1]
        if isinstance(parent, list) and isinstance(last, int) and list_placeholder is not None:
            parent[last] = list_placeholder
        else:
            del parent[last]


def _removal_order(path: Path) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, e, "") if isinstance(e, int) else (1, 0, e) for e in path)


def _concrete(obj: Any, path: Path) -> Path | None:
    """``path`` with list positions as ints, or None if it does not exist in ``obj``."""
    node = obj
    out: list[str | int] = []
    for element in path:
        if isinstance(node, dict) and isinstance(element, str) and element in node:
            out.append(element)
            node = node[element]
        elif isinstance(node, list) and (index := _index(element, len(node))) is not None:
            out.append(index)
            node = node[index]
        else:
            return None
    return tuple(out)


def _index(element: str | int, length: int) -> int | None:
    # JSON pointers carry list indices as strings ("-" and leading zeros are not positions); jq gives ints
    if isinstance(element, str):
        if not (element.isascii() and element.isdigit()) or (len(element) > 1 and element.startswith("0")):
            return None
        element = int(element)
    return element if 0 <= element < length else None


def managers_to_ignore(rules: Iterable[IgnoreRule]) -> frozenset[str]:
    return frozenset(m for rule in rules for m in rule.managed_fields_managers)
