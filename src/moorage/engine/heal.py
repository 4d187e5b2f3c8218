"""Self-heal of fields that someone else added (`kubectl edit` adding a label or an env var).

Re-applying the chart restores every field the chart sets, but server-side apply never removes a
field that another field manager owns (not even after taking shared ownership of it). So, after the
re-apply, the fields that only foreign managers own are removed with a guarded JSON patch."""

from collections.abc import Iterable, Mapping
from typing import Any

from moorage.engine.diffing.managedfields import (
    DEFAULT_CONTROLLER_MANAGERS,
    managed_entries,
    managers_of,
    owned_paths,
)
from moorage.kube.client import KubeClient

_HEALABLE_ROOTS = ("spec", "data", "stringData", "binaryData", "metadata")


def foreign_managers(live: Mapping[str, Any], own: Iterable[str], ignored: Iterable[str]) -> set[str]:
    skip = set(own) | set(ignored) | set(DEFAULT_CONTROLLER_MANAGERS)
    return {e.manager for e in managed_entries(live) if e.manager not in skip and e.subresource != "status"}


def foreign_only_paths(
    live: Mapping[str, Any],
    own: Iterable[str],
    ignored: Iterable[str],
    skip: Iterable[tuple[str | int, ...]] = (),
) -> list[tuple[str | int, ...]]:
    """Fields of `live` owned by a foreign manager and by none of ours (ours = desired by the chart),
    except those under `skip` (paths the add-on's ignore rules exclude from drift)."""
    own_set = set(own)
    skipped = [tuple(p) for p in skip]
    foreign = foreign_managers(live, own_set, ignored)
    paths = []
    for path in sorted(owned_paths(live, foreign), key=str):
        if not path or path[0] not in _HEALABLE_ROOTS:
            continue
        if path[:2] == ("metadata", "managedFields") or (
            path[0] == "metadata" and path[1:2] not in (("labels",), ("annotations",))
        ):
            continue
        if managers_of(live, path) & own_set:
            continue
        if any(tuple(path[: len(q)]) == q for q in skipped):
            continue
        paths.append(tuple(path))
    # keep only the outermost of nested paths
    return [p for p in paths if not any(p[: len(q)] == q and p != q for q in paths)]


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _value_at(obj: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


async def remove_foreign_fields(
    kube: KubeClient,
    live: Mapping[str, Any],
    own: Iterable[str],
    ignored: Iterable[str] = (),
    skip: Iterable[tuple[str | int, ...]] = (),
) -> int:
    """Remove fields only foreign managers own; returns how many were removed. Each removal is
    guarded by a `test` of the value it removes, so a concurrent edit fails the patch instead."""
    paths = foreign_only_paths(live, own, ignored, skip)
    if not paths:
        return 0
    operations: list[dict[str, Any]] = []
    # deepest and highest list positions first, so earlier removals do not shift later pointers
    for path in sorted(
        paths, key=lambda p: [(0, s, "") if isinstance(s, int) else (1, 0, s) for s in p], reverse=True
    ):
        pointer = _pointer(path)
        operations += [
            {"op": "test", "path": pointer, "value": _value_at(live, path)},
            {"op": "remove", "path": pointer},
        ]
    meta = live["metadata"]
    await kube.json_patch(live["apiVersion"], live["kind"], meta["name"], meta.get("namespace"), operations)
    return len(paths)
