"""Field ownership from ``metadata.managedFields`` (server-side apply bookkeeping).

Each entry is ``{manager, operation: Apply|Update, apiVersion, time, fieldsType: FieldsV1,
fieldsV1, subresource?}``. ``fieldsV1`` is a trie serialised as nested JSON objects whose keys are
path elements (structured-merge-diff ``fieldpath`` format):

* ``f:<name>``  a map field;
* ``k:<json>``  an item of an associative list, identified by its key fields,
  e.g. ``k:{"containerPort":80,"protocol":"TCP"}``;
* ``v:<json>``  an item of a set-like list, identified by its value, e.g. ``v:"finalizer.example"``;
* ``i:<n>``     a list item by position;
* ``.``         the node itself is a member ("owns the existence of this map/item").

A node with an empty object (``"f:image": {}``) is a member with nothing below it: the manager owns
the whole value (scalars, atomic lists/maps). A node with children but no ``.`` only leads to
members further down.

Trie paths are resolved *against an object* into concrete :data:`Path` s (``k:``/``v:`` matched by
content). Resolving against the normalised, ignore-pruned live object keeps paths consistent with
the tree walk, whatever list items were removed before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from moorage.engine.diffing.model import Path

#: Managers that write only status or their own bookkeeping (revision annotations, HPA scale,
#: finalizers they need). Their fields are never reported as drift. ``before-first-apply`` is
#: the placeholder the API server creates when it upgrades client-side-apply ownership to SSA.
DEFAULT_CONTROLLER_MANAGERS: frozenset[str] = frozenset(
    {"kube-controller-manager", "kube-scheduler", "kubelet", "k3s", "before-first-apply"}
)
DEFAULT_OWN_MANAGERS: frozenset[str] = frozenset({"helm", "moorage"})


@dataclass(frozen=True)
class ManagedEntry:
    manager: str
    operation: str
    subresource: str
    fields: Mapping[str, Any]


def managed_entries(obj: Mapping[str, Any]) -> tuple[ManagedEntry, ...]:
    """The FieldsV1 entries of ``obj`` (other ``fieldsType`` values and malformed entries skipped)."""
    metadata = obj.get("metadata")
    raw = metadata.get("managedFields") if isinstance(metadata, Mapping) else None
    if not isinstance(raw, list):
        return ()
    entries = []
    for item in raw:
        if not isinstance(item, Mapping) or item.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        fields = item.get("fieldsV1")
        manager = item.get("manager")
        if isinstance(fields, Mapping) and isinstance(manager, str):
            operation, subresource = str(item.get("operation", "")), str(item.get("subresource", ""))
            entries.append(ManagedEntry(manager, operation, subresource, fields))
    return tuple(entries)


def resolve(fields: Mapping[str, Any], target: Any) -> set[Path]:
    """Every member path of the FieldsV1 trie that exists in ``target``."""
    out: set[Path] = set()
    _resolve(fields, target, (), out)
    return out


def _resolve(trie: Mapping[str, Any], node: Any, prefix: Path, out: set[Path]) -> None:
    for key, sub in trie.items():
        if key == ".":
            out.add(prefix)
            continue
        for element, child in _children(key, node):
            path = (*prefix, element)
            if isinstance(sub, Mapping) and sub:
                _resolve(sub, child, path, out)
            else:
                out.add(path)


def _children(key: str, node: Any) -> Iterator[tuple[str | int, Any]]:
    kind, _, rest = key.partition(":")
    if kind == "f" and isinstance(node, Mapping):
        if rest in node:
            yield rest, node[rest]
    elif kind in ("k", "v", "i") and isinstance(node, list):
        yield from _list_children(kind, rest, node)


def _list_children(kind: str, rest: str, items: list[Any]) -> Iterator[tuple[int, Any]]:
    if kind == "i":
        index = int(rest) if rest.isdigit() else -1
        if 0 <= index < len(items):
            yield index, items[index]
        return
    try:
        wanted = json.loads(rest)
    except ValueError:
        return  # malformed key: owns nothing we can locate
    for index, item in enumerate(items):
        if _item_matches(kind, wanted, item):
            yield index, item


def _item_matches(kind: str, wanted: Any, item: Any) -> bool:
    if kind == "v":
        return bool(item == wanted)
    if not isinstance(wanted, Mapping) or not isinstance(item, Mapping):
        return False
    return all(k in item and item[k] == v for k, v in wanted.items())


def _sort_key(path: Path) -> tuple[tuple[int, int, str], ...]:
    # total order over mixed str/int elements; a path's descendants sort right after it
    return tuple((1, 0, e) if isinstance(e, str) else (0, e, "") for e in path)


@dataclass(frozen=True)
class ManagerPaths:
    """The paths one manager owns in one object, with prefix lookups precomputed."""

    members: frozenset[Path]
    atomic: frozenset[Path] = field(init=False)
    prefixes: frozenset[Path] = field(init=False)

    def __post_init__(self) -> None:
        ordered = sorted(self.members, key=_sort_key)
        atomic = {
            path
            for path, after in zip(ordered, [*ordered[1:], None], strict=True)
            if after is None or after[: len(path)] != path
        }
        prefixes = {member[:n] for member in self.members for n in range(len(member) + 1)}
        object.__setattr__(self, "atomic", frozenset(atomic))
        object.__setattr__(self, "prefixes", frozenset(prefixes))

    def owns(self, path: Path) -> bool:
        """Owns ``path`` itself, or an ancestor as a whole value (atomic list/map, scalar)."""
        if path in self.members:
            return True
        return any(path[:n] in self.atomic for n in range(len(path)))

    def owns_whole(self, path: Path) -> bool:
        """Owns all of ``path``'s value (a member with nothing of this manager below it)."""
        return path in self.atomic or (path not in self.members and self.owns(path))

    def owns_within(self, path: Path) -> bool:
        """Owns ``path`` or something below it."""
        return path in self.prefixes or self.owns(path)


@dataclass(frozen=True)
class Ownership:
    """Manager → owned paths, for one object. Build with :func:`ownership`."""

    by_manager: Mapping[str, ManagerPaths]

    def owners(self, path: Path) -> frozenset[str]:
        return frozenset(m for m, paths in self.by_manager.items() if paths.owns(path))

    def owners_within(self, path: Path) -> frozenset[str]:
        return frozenset(m for m, paths in self.by_manager.items() if paths.owns_within(path))

    def owns_whole(self, path: Path) -> bool:
        return any(paths.owns_whole(path) for paths in self.by_manager.values())

    def __bool__(self) -> bool:
        return bool(self.by_manager)


def ownership(
    entries: Iterable[ManagedEntry], target: Any, *, include: Iterable[str] | None = None
) -> Ownership:
    """Resolve ``entries`` (optionally only those of the ``include`` managers) against ``target``."""
    wanted = None if include is None else frozenset(include)
    members: dict[str, set[Path]] = {}
    for entry in entries:
        if wanted is None or entry.manager in wanted:
            members.setdefault(entry.manager, set()).update(resolve(entry.fields, target))
    return Ownership({m: ManagerPaths(frozenset(p)) for m, p in sorted(members.items()) if p})


def foreign_entries(
    entries: Iterable[ManagedEntry], own_managers: Iterable[str], controller_managers: Iterable[str]
) -> tuple[ManagedEntry, ...]:
    """Entries that stand for an out-of-band edit: not ours, not a known controller, not status."""
    trusted = frozenset(own_managers) | frozenset(controller_managers)
    return tuple(e for e in entries if e.manager not in trusted and e.subresource != "status")


def owned_paths(live: Mapping[str, Any], managers: Iterable[str]) -> set[Path]:
    """Every path of ``live`` that one of ``managers`` owns, per ``live``'s own managedFields."""
    wanted = frozenset(managers)
    out: set[Path] = set()
    for entry in managed_entries(live):
        if entry.manager in wanted:
            out |= resolve(entry.fields, live)
    return out


def managers_of(live: Mapping[str, Any], path: Path) -> frozenset[str]:
    """The managers owning ``path`` in ``live``: as a member, or through an ancestor they own whole.
    Several managers can share a field (all applied the same value)."""
    return ownership(managed_entries(live), live).owners(tuple(path))
