"""Drift diff of the native engine (issue 4, item 3): pure functions, no I/O.

``desired`` is an object as Helm rendered it (release manifest) or a raw manifest; ``live`` is the
object read from the API server, with its ``metadata.managedFields``. The pipeline for one object:

1. :func:`normalize` both sides (server-populated and Helm-injected fields, see its table);
   Secrets: ``stringData`` folded into ``data``.
2. Ignore rules matching the object remove their JSON-pointer and jq paths from both sides.
3. The walk (``diffing/compare.py``) compares what desired sets; live-only fields count only when
   a foreign field manager owns them; fields owned by ignored managers never count.
4. Secret values are masked before they reach the result.

Typical use::

    rules = [IgnoreRule.from_spec(d) for d in settings.ignore_differences]
    drift = diff_release(manifest_objects, live_by_key, rules, default_namespace=release_ns)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from moorage.engine.diffing.compare import IGNORED_ITEM, SECRET_PLACEHOLDER, Walk, format_path
from moorage.engine.diffing.ignore import (
    IgnoreRule,
    ignored_paths,
    managers_to_ignore,
    matching_rules,
    remove_paths,
)
from moorage.engine.diffing.managedfields import (
    DEFAULT_CONTROLLER_MANAGERS,
    DEFAULT_OWN_MANAGERS,
    foreign_entries,
    managed_entries,
    managers_of,
    owned_paths,
    ownership,
)
from moorage.engine.diffing.model import (
    ChangeType,
    DriftType,
    FieldChange,
    Path,
    ResourceDrift,
    ResourceKey,
    api_group,
)
from moorage.engine.diffing.normalize import canonical_secret, is_secret, normalize

__all__ = [
    "DEFAULT_CONTROLLER_MANAGERS",
    "DEFAULT_OWN_MANAGERS",
    "SECRET_PLACEHOLDER",
    "ChangeType",
    "DriftType",
    "FieldChange",
    "IgnoreRule",
    "Path",
    "ResourceDrift",
    "ResourceKey",
    "diff_release",
    "diff_resource",
    "format_path",
    "managers_of",
    "normalize",
    "owned_paths",
    "resource_key",
]


def resource_key(obj: Mapping[str, Any], default_namespace: str = "") -> ResourceKey:
    """The pairing key of ``obj``; ``default_namespace`` stands in when the object names none
    (Helm manifests usually omit the release namespace)."""
    metadata = obj.get("metadata") or {}
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    namespace = str(metadata.get("namespace") or default_namespace)
    return ResourceKey(api_group(api_version), kind, namespace, str(metadata.get("name", "")))


def diff_resource(
    desired: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    rules: Iterable[IgnoreRule] = (),
    *,
    own_managers: Iterable[str] = DEFAULT_OWN_MANAGERS,
    controller_managers: Iterable[str] = DEFAULT_CONTROLLER_MANAGERS,
    default_namespace: str = "",
) -> ResourceDrift | None:
    """The drift of one object, or None when live matches desired.

    ``own_managers`` are the field managers whose live-only fields are ours (Helm, Moorage's SSA);
    ``controller_managers`` write only status/bookkeeping. Any other manager owning a live-only
    field makes it drift."""
    key = resource_key(live if live is not None else desired, default_namespace)
    if live is None:
        return _drift(desired, key, "missing", ())
    rules = matching_rules(rules, key)
    secret = is_secret(desired) or is_secret(live)
    desired_n, live_n = _prepared(desired, secret=secret), _prepared(live, secret=secret)
    remove_paths(desired_n, ignored_paths(rules, desired_n))
    remove_paths(live_n, ignored_paths(rules, live_n), list_placeholder=IGNORED_ITEM)

    entries = managed_entries(live)
    ignored_managers = managers_to_ignore(rules)
    foreign = foreign_entries(entries, own_managers, controller_managers)
    walk = Walk(
        foreign=ownership([e for e in foreign if e.manager not in ignored_managers], live_n),
        ignored=ownership(entries, live_n, include=ignored_managers),
        secret=secret,
    )
    changes = walk.run(_comparable(desired_n), _comparable(live_n))
    return _drift(desired, key, "modified", changes) if changes else None


def diff_release(
    desired_objects: Iterable[Mapping[str, Any]],
    live_by_key: Mapping[Any, Mapping[str, Any] | None],
    rules: Iterable[IgnoreRule] = (),
    own_managers: Iterable[str] = DEFAULT_OWN_MANAGERS,
    *,
    key: Callable[[Mapping[str, Any]], Hashable] | None = None,
    controller_managers: Iterable[str] = DEFAULT_CONTROLLER_MANAGERS,
    default_namespace: str = "",
) -> list[ResourceDrift]:
    """Drift of every desired object, in input order; absent from ``live_by_key`` = missing.

    ``key`` maps a desired object to its key in ``live_by_key`` (e.g. ``objects.key_of``). Without
    it, :func:`resource_key` is used and an object not found under its namespace is also looked up
    as cluster-scoped: the caller may not know the scope, and a cluster-scoped object rendered with
    a namespace would otherwise show as falsely "missing"."""
    rules = tuple(rules)
    own, controllers = frozenset(own_managers), frozenset(controller_managers)
    out: list[ResourceDrift] = []
    for desired in desired_objects:
        if key is not None:
            live = live_by_key.get(key(desired))
        else:
            live = _lookup(live_by_key, resource_key(desired, default_namespace))
        drift = diff_resource(
            desired,
            live,
            rules,
            own_managers=own,
            controller_managers=controllers,
            default_namespace=default_namespace,
        )
        if drift is not None:
            out.append(drift)
    return out


def _lookup(
    live_by_key: Mapping[Any, Mapping[str, Any] | None], key: ResourceKey
) -> Mapping[str, Any] | None:
    live = live_by_key.get(key)
    if live is None and key.namespace:
        live = live_by_key.get(key._replace(namespace=""))
    return live


def _prepared(obj: Mapping[str, Any], *, secret: bool) -> dict[str, Any]:
    normalized = normalize(obj)
    return canonical_secret(normalized) if secret else normalized


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """Identity fields are paired on, not diffed: apiVersion may differ (read at another
    version), kind and name are equal by construction."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    metadata = out.get("metadata")
    if isinstance(metadata, dict) and "name" in metadata:
        metadata = {k: v for k, v in metadata.items() if k != "name"}
        if metadata:
            out["metadata"] = metadata
        else:
            del out["metadata"]
    return out


def _drift(
    desired: Mapping[str, Any], key: ResourceKey, drift_type: DriftType, changes: tuple[FieldChange, ...]
) -> ResourceDrift:
    return ResourceDrift(
        api_version=str(desired.get("apiVersion", "")),
        kind=key.kind,
        namespace=key.namespace,
        name=key.name,
        drift_type=drift_type,
        changes=changes,
    )
