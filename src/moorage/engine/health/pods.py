"""A workload that is not Healthy, judged by its pods: the container that keeps it from working.

A Deployment whose pods cannot pull their image reads Progressing until its progress deadline, with
a reason that names no container. Pods are not part of a release's manifest, so the add-on's health
looks at them only for workloads (:data:`WORKLOAD_KINDS`) that are not Healthy:

* :func:`owned_pods` — the pods of a workload among listed Pods (and ReplicaSets), matched by the
  ``ownerReferences`` UID chain: Deployment → ReplicaSet → Pod; the other kinds own their pods.
* :func:`with_pods` — the workload's health with its pods: when one is Degraded by the Pod rule
  (a container waiting with an error reason such as ``ImagePullBackOff``, or pending past the
  deadline), the workload is Degraded, the reason naming the pod and the container.

Pods being deleted and finished pods (``Succeeded``/``Failed``) are left out: they are on their way
out (a Job retries failed pods; an evicted pod is replaced), and the workload's own rule judges
what they leave behind. Both functions are pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from moorage.engine.health.pod import assess as assess_pod
from moorage.engine.health.types import Context, Health, HealthStatus, names, section, text

__all__ = ["WORKLOAD_KINDS", "is_workload", "owned_pods", "with_pods"]

#: (API group, kind) of the workloads whose pods can explain their health.
WORKLOAD_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("apps", "Deployment"),
        ("extensions", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("extensions", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("extensions", "ReplicaSet"),
        ("batch", "Job"),
    }
)

# How deep the owner chain goes: Deployment → ReplicaSet → Pod.
_MAX_DEPTH = 2


def _group_kind(obj: Mapping[str, Any]) -> tuple[str, str]:
    api_version = text(obj.get("apiVersion"))
    return (api_version.rpartition("/")[0] if "/" in api_version else ""), text(obj.get("kind"))


def is_workload(obj: Mapping[str, Any] | None) -> bool:
    return obj is not None and _group_kind(obj) in WORKLOAD_KINDS


def _uid(obj: Mapping[str, Any]) -> str:
    return text(section(obj, "metadata").get("uid"))


def _owners(obj: Mapping[str, Any]) -> list[str]:
    refs = section(obj, "metadata").get("ownerReferences")
    if not isinstance(refs, list):
        return []
    return [text(r.get("uid")) for r in refs if isinstance(r, Mapping) and text(r.get("uid"))]


def owned_pods(workload: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The Pods among ``objects`` that ``workload`` owns, directly or through the ReplicaSets among
    ``objects`` (matched by UID, never by name), sorted by name."""
    owned_by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for obj in objects:
        for owner in _owners(obj):
            owned_by[owner].append(obj)
    found: dict[str, Mapping[str, Any]] = {}
    level, seen = [_uid(workload)], set[str]()
    for _ in range(_MAX_DEPTH):
        next_level = []
        for uid in level:
            if not uid or uid in seen:
                continue
            seen.add(uid)
            for child in owned_by.get(uid, []):
                group_kind = _group_kind(child)
                if group_kind == ("", "Pod"):
                    found.setdefault(_uid(child) or text(section(child, "metadata").get("name")), child)
                elif group_kind in (("apps", "ReplicaSet"), ("extensions", "ReplicaSet")):
                    next_level.append(_uid(child))
        level = next_level
    return sorted(found.values(), key=lambda p: text(section(p, "metadata").get("name")))


def _counts(p: Mapping[str, Any]) -> bool:
    """Whether a pod can explain its workload's health: not being deleted, not finished."""
    if section(p, "metadata").get("deletionTimestamp"):
        return False
    return text(section(p, "status").get("phase")) not in ("Succeeded", "Failed")


def _pod_health(p: Mapping[str, Any], ctx: Context) -> Health:
    try:
        return assess_pod(p, ctx)
    except Exception as error:  # as health.assess: a rule never crashes the engine
        return Health(HealthStatus.UNKNOWN, f"could not assess health: {type(error).__name__}: {error}")


def with_pods(
    health: Health, workload: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], ctx: Context
) -> Health:
    """``health`` of ``workload``, or Degraded naming the first Degraded pod of ``pods`` (its pods,
    see :func:`owned_pods`) when the workload is not Healthy."""
    if health.status is HealthStatus.HEALTHY or not is_workload(workload):
        return health
    degraded = [
        (text(section(p, "metadata").get("name")), h)
        for p in pods
        if _counts(p) and (h := _pod_health(p, ctx)).status is HealthStatus.DEGRADED
    ]
    if not degraded:
        return health
    (name, first), others = degraded[0], [n for n, _ in degraded[1:]]
    also = f" (also Degraded: pods {names(others)})" if others else ""
    return Health(HealthStatus.DEGRADED, f"pod {name}: {first.reason}{also}")
