"""What a chart rendered with new values changes against the objects of the release as it is: the
objects created, changed (with the field paths that differ) and removed. The Stack Builder's preview
asks the agent for it (agent/render.py) before an edit is committed.

Pure. Both sides are what Helm rendered (the release's stored manifest, and the new rendering), so
no normalisation is needed beyond reading the YAML; the caller fills in each object's namespace.
The answer holds kinds, names and field paths, never a value: a path may name a Secret's key, never
what it holds, so the answer can leave the cluster whatever the objects carry."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from moorage.engine.diffing.compare import format_item, format_key, format_path, named_items

MAX_OBJECTS = 200  # objects listed per release (created, changed and removed together)
MAX_PATHS = 50  # field paths listed per changed object

Change = Literal["created", "changed", "removed"]
_ORDER: dict[str, int] = {"created": 0, "changed": 1, "removed": 2}
_ABSENT: Any = object()


@dataclass(frozen=True)
class ObjectChange:
    api_version: str
    kind: str
    namespace: str  # "" for a cluster-scoped object
    name: str
    change: Change
    paths: tuple[str, ...] = ()  # the fields that differ (changed objects only)
    paths_omitted: int = 0  # more differing fields than MAX_PATHS: how many are not in `paths`

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "api_version": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace or None,
            "name": self.name,
        }
        if self.change == "changed":
            out["paths"] = list(self.paths)
            if self.paths_omitted:
                out["paths_omitted"] = self.paths_omitted
        return out


@dataclass(frozen=True)
class ObjectDiff:
    changes: tuple[ObjectChange, ...]  # created, then changed, then removed; by kind, namespace, name
    unchanged: int
    omitted: int = 0  # changes over MAX_OBJECTS, not listed

    def to_dict(self) -> dict[str, Any]:
        grouped: dict[str, list[dict[str, Any]]] = {"created": [], "changed": [], "removed": []}
        for c in self.changes:
            grouped[c.change].append(c.to_dict())
        return {**grouped, "unchanged": self.unchanged, "omitted": self.omitted}


Key = tuple[str, str, str, str]  # API group (not version: a chart may move an object to v1), kind, ns, name


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    return group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _by_key(objects: Iterable[Mapping[str, Any]]) -> dict[Key, Mapping[str, Any]]:
    return {_key(o): o for o in objects if isinstance(o, Mapping) and o.get("kind")}


def field_paths(old: Any, new: Any, limit: int = MAX_PATHS) -> tuple[list[str], int]:
    """The paths (`spec.template.spec.containers[web].image`, as drift shows them) where `old` and
    `new` differ, at most `limit` of them, and how many more there are. A field absent on one side
    and null on the other is the same (null means "not set"). Lists whose items all have a unique
    `name` are matched by name (containers, env, ports), other lists by position."""
    found: list[str] = []
    _walk(old, new, (), found)
    return found[:limit], max(0, len(found) - limit)


def _walk(old: Any, new: Any, display: tuple[str, ...], out: list[str]) -> None:
    old = None if old is _ABSENT else old
    new = None if new is _ABSENT else new
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted({*old, *new}, key=str):
            _walk(old.get(key, _ABSENT), new.get(key, _ABSENT), (*display, format_key(str(key))), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_names = named_items(list(enumerate(old)))
        new_names = named_items(list(enumerate(new)))
        if old_names is not None and new_names is not None:
            for name in [*new_names, *(n for n in old_names if n not in new_names)]:
                a = old[old_names[name]] if name in old_names else _ABSENT
                b = new[new_names[name]] if name in new_names else _ABSENT
                index = new_names.get(name, old_names.get(name, 0))
                _walk(a, b, (*display, format_item(name, index)), out)
            return
        for index in range(max(len(old), len(new))):
            a = old[index] if index < len(old) else _ABSENT
            b = new[index] if index < len(new) else _ABSENT
            _walk(a, b, (*display, format_item(None, index)), out)
        return
    if not _same(old, new):
        out.append(format_path(display) or "(the whole object)")


def _same(a: Any, b: Any) -> bool:
    """Two leaves (or a leaf and a container) are the same value."""
    # 1 and 1.0 are the same number for Kubernetes; True and 1 are not the same value
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    return bool(a == b)


def diff(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    *,
    max_objects: int = MAX_OBJECTS,
    max_paths: int = MAX_PATHS,
) -> ObjectDiff:
    """The objects of `after` (the new rendering) against those of `before` (the release's current
    manifest; empty for a new release), each with metadata.namespace set when it is namespaced."""
    old, new = _by_key(before), _by_key(after)
    changes: list[ObjectChange] = []
    unchanged = 0
    for key in sorted({*old, *new}):
        a, b = old.get(key), new.get(key)
        _, kind, namespace, name = key
        api_version = str((b if b is not None else a or {}).get("apiVersion") or "")
        if a is None:
            changes.append(ObjectChange(api_version, kind, namespace, name, "created"))
        elif b is None:
            changes.append(ObjectChange(api_version, kind, namespace, name, "removed"))
        else:
            paths, more = field_paths(dict(a), dict(b), max_paths)
            if not paths:
                unchanged += 1
                continue
            changes.append(ObjectChange(api_version, kind, namespace, name, "changed", tuple(paths), more))
    changes.sort(key=lambda c: (_ORDER[c.change], c.kind, c.namespace, c.name))
    return ObjectDiff(tuple(changes[:max_objects]), unchanged, max(0, len(changes) - max_objects))
