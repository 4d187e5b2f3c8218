"""Self-heal of drift without a new Helm revision (issue 10, item 4).

:func:`reapply_release` puts each drifted object back as the deployed release has it:

1. The object from the release's **stored manifest** (``Release.manifest`` of the deployed revision,
   with the labels and annotations Helm adds to every object it creates) is applied with
   server-side apply, forced, under **Helm's own field manager** (:func:`helm_field_manager`,
   ``helm``). The API server records it as Helm's own apply, so ownership stays with Helm and the
   next ``helm upgrade`` does not conflict; release storage is not touched, so no Helm revision is
   added. A missing object is created again by the same apply.
2. Server-side apply never removes a field that another field manager owns (not even after taking
   shared ownership of it), so the fields that only foreign managers own are then removed with a
   JSON patch guarded by ``test`` operations (:func:`remove_foreign_fields`).

Fields the add-on ignores (``ignore_differences``) and fields in a fight (``engine/fights.py``) are
left out of both steps, so they keep the live value. A field is left out of the apply only where
that cannot delete it, i.e. when another manager owns it too (see :func:`can_leave_out`); a field
only Helm owns stays in the applied object, which re-applies the value it already has.
"""

import copy
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from moorage.engine import fights, objects
from moorage.engine.context import EngineContext
from moorage.engine.diff import DEFAULT_OWN_MANAGERS, IgnoreRule, ResourceDrift, diff_resource, resource_key
from moorage.engine.diffing.ignore import ignored_paths, managers_to_ignore, matching_rules, pointer_parts
from moorage.engine.diffing.managedfields import (
    DEFAULT_CONTROLLER_MANAGERS,
    managed_entries,
    managers_of,
    owned_paths,
    ownership,
)
from moorage.engine.diffing.model import Path, ResourceKey
from moorage.helm.cli import Helm
from moorage.helm.storage import Release
from moorage.kube import errors as kube_errors
from moorage.kube.client import KubeClient
from moorage.spec.content import ResolvedAddon

_HEALABLE_ROOTS = ("spec", "data", "stringData", "binaryData", "metadata")

# What Helm sets on every object of a release when it creates or adopts it (pkg/action, the
# "set metadata" visitor): absent from the stored manifest, so added back before the apply.
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "Helm")
RELEASE_NAME_ANNOTATION = "meta.helm.sh/release-name"
RELEASE_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"


def helm_field_manager(helm: Helm) -> str:
    """The field manager Helm 4 applies under: its ``ManagedFieldsManager`` when a program embedding
    it sets one, else the base name of ``argv[0]`` (``pkg/kube/client.go``, getManagedFieldsManager).
    The helm CLI that ``helm/cli.py`` runs is called ``helm``, so this is ``helm``."""
    return FsPath(helm.binary).name or "helm"


def helm_object(obj: Mapping[str, Any], release: Release) -> dict[str, Any]:
    """A copy of a manifest object with the ownership metadata Helm adds to every object it applies."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    meta["labels"] = {**labels, MANAGED_BY_LABEL[0]: MANAGED_BY_LABEL[1]}
    meta["annotations"] = {
        **annotations,
        RELEASE_NAME_ANNOTATION: release.name,
        RELEASE_NAMESPACE_ANNOTATION: release.namespace,
    }
    return out


# ---------------------------------------------------------------------------- path helpers


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _value_at(obj: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def concrete_path(obj: Any, parts: Iterable[str | int]) -> Path | None:
    """`parts` (a JSON pointer's strings, or a jq path) as a path of `obj` with list positions as
    ints; None when it does not exist in `obj`."""
    node, out = obj, []
    for part in parts:
        if isinstance(node, Mapping) and isinstance(part, str) and part in node:
            step: str | int = part
        elif isinstance(node, list) and (index := _index(part, len(node))) is not None:
            step = index
        else:
            return None
        out.append(step)
        node = node[step]
    return tuple(out)


def _index(part: str | int, length: int) -> int | None:
    if isinstance(part, str):
        if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part.startswith("0")):
            return None
        part = int(part)
    return part if 0 <= part < length else None


def desired_path(desired: Any, live: Any, live_path: Path) -> Path | None:
    """Where the field at `live_path` of `live` sits in `desired`: list items are matched by ``name``
    when they have one (as the drift walk matches them), else by position. None when desired lacks it."""
    out: list[str | int] = []
    for step in live_path:
        at: str | int
        if isinstance(step, int):
            if not isinstance(desired, list) or not isinstance(live, list) or step >= len(live):
                return None
            name = live[step].get("name") if isinstance(live[step], Mapping) else None
            if isinstance(name, str):
                found = [
                    i
                    for i, item in enumerate(desired)
                    if isinstance(item, Mapping) and item.get("name") == name
                ]
                if len(found) != 1:
                    return None
                at = found[0]
            elif step < len(desired):
                at = step
            else:
                return None
        else:
            if not isinstance(desired, Mapping) or not isinstance(live, Mapping) or step not in desired:
                return None
            at = step
        out.append(at)
        desired, live = desired[at], live[step]
    return tuple(out)


def _delete(obj: Any, path: Path) -> None:
    parent = _value_at(obj, path[:-1])
    del parent[path[-1]]


def can_leave_out(live: Mapping[str, Any], path: Path, manager: str) -> bool:
    """Whether leaving `path` out of an apply by `manager` keeps its live value: server-side apply
    deletes a field dropped from a manager's applied configuration when no other manager owns it.
    So: `manager` owns nothing at or below `path` that it alone owns, nor `path` through an ancestor
    it applies as a whole."""
    owners = ownership(managed_entries(live), live)
    mine = owners.by_manager.get(manager)
    if mine is None:
        return True
    if any(path[:n] in mine.atomic for n in range(len(path))):
        return False
    return all(owners.owners(m) - {manager} for m in mine.members if m[: len(path)] == path)


# ---------------------------------------------------------------------------- foreign fields


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


# ---------------------------------------------------------------------------- the heal


@dataclass
class HeldField:
    """A field left as it is live because it is in a fight, with what the report says about it."""

    manager: str
    ignore_entry: str


@dataclass
class HealOutcome:
    applied: list[str] = field(default_factory=list)  # objects re-applied from the stored manifest
    created: list[str] = field(default_factory=list)  # ...of which were missing
    removed_fields: int = 0  # foreign-only fields removed by the guarded patch
    healed: set[fights.FieldKey] = field(default_factory=set)  # fields restored (for fight counting)
    held: dict[fights.FieldKey, HeldField] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _leave_out(
    live: Mapping[str, Any], rules: Collection[IgnoreRule], ignored: Collection[str], held: Iterable[Path]
) -> list[Path]:
    """Live paths the heal must not touch: held fields, ignored ones (pointers, jq, ignored managers)."""
    paths = list(held)
    for parts in ignored_paths(rules, live):
        found = concrete_path(live, parts)
        if found:
            paths.append(found)
    if ignored:
        paths.extend(p for p in owned_paths(live, ignored) if p)
    return sorted(set(paths), key=len)


async def reapply_release(
    ctx: EngineContext,
    release: Release,
    addon: ResolvedAddon,
    drift: Iterable[ResourceDrift],
    *,
    hold: Collection[fights.FieldKey] = (),
    own_managers: Collection[str] = DEFAULT_OWN_MANAGERS,
) -> HealOutcome:
    """Re-apply, from `release`'s stored manifest, each object of `drift`, in manifest order (Helm's
    install order), then remove its foreign-only fields. Fields in `hold` stay as they are live.
    Each object is diffed again against a fresh read first: an object whose drift is gone, or is all
    held, is not written. Per-object failures are collected in the outcome, the rest still heals."""
    outcome = HealOutcome()
    rules = [IgnoreRule.from_spec(r) for r in addon.settings.ignore_differences]
    ignored = managers_to_ignore(rules)
    manager = helm_field_manager(ctx.helm)
    own = frozenset(own_managers) | {manager}
    drifted = {tuple(d.key) for d in drift}
    try:
        manifest = await objects.with_namespaces(
            ctx.kube, objects.parse_manifest(release.manifest), release.namespace
        )
    except kube_errors.KubeError as e:
        outcome.errors.append(f"self-heal: {e}")
        return outcome
    for obj in manifest:
        key = resource_key(obj)
        if tuple(key) not in drifted:
            continue
        try:
            await _reapply_one(ctx, release, obj, key, rules, ignored, manager, own, hold, outcome)
        except kube_errors.KubeError as e:
            outcome.errors.append(f"self-heal of {fights.describe_resource(key)}: {e}")
    return outcome


async def _reapply_one(
    ctx: EngineContext,
    release: Release,
    obj: dict[str, Any],
    key: ResourceKey,
    rules: list[IgnoreRule],
    ignored: frozenset[str],
    manager: str,
    own: frozenset[str],
    hold: Collection[fights.FieldKey],
    outcome: HealOutcome,
) -> None:
    meta = obj["metadata"]
    live = await ctx.kube.get(str(obj["apiVersion"]), str(obj["kind"]), meta["name"], meta.get("namespace"))
    fresh = diff_resource(obj, live, rules, own_managers=own)
    if fresh is None:
        return
    name = fights.describe_resource(key)
    body = helm_object(obj, release)
    if live is None:
        await ctx.kube.apply(body, field_manager=manager, force=True, namespace=release.namespace)
        outcome.applied.append(name)
        outcome.created.append(name)
        return

    held_paths: list[Path] = []
    healing: set[fights.FieldKey] = set()
    for change in fresh.changes:
        field_key = (key, change.path)
        path = concrete_path(live, pointer_parts(change.live_pointer)) if change.live_pointer else None
        if field_key in hold and path is not None:
            held_paths.append(path)
            outcome.held[field_key] = HeldField(
                fights.other_managers(live, path, own), fights.ignore_entry(key, live, path)
            )
        else:
            healing.add(field_key)
    if not healing:
        return  # everything that drifts here is in a fight

    matching = matching_rules(rules, key)
    for path in _leave_out(live, matching, ignored, held_paths):
        if can_leave_out(live, path, manager) and (at := desired_path(body, live, path)) is not None:
            _delete(body, at)
    applied = await ctx.kube.apply(body, field_manager=manager, force=True, namespace=release.namespace)
    outcome.applied.append(name)
    skip = [p for p in (concrete_path(applied, parts) for parts in ignored_paths(matching, applied)) if p]
    skip += [p for p in (concrete_path(applied, path) for path in held_paths) if p]
    outcome.removed_fields += await remove_foreign_fields(ctx.kube, applied, own, ignored, skip)
    outcome.healed |= healing & fights.drifting_fields([fresh])
