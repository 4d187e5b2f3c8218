"""Health of live Kubernetes objects: one rule per kind, Argo CD-like semantics.

Pure functions over plain mappings (as the API server returns objects); no cluster access.
The current time is a parameter so that deadlines are testable.

* :func:`assess` — the health of one object (None → Missing).
* :func:`worst` — the worst of several healths (order in :data:`SEVERITY`).
* :func:`addon_health` — an add-on's health: the worst of its resources, named in the reason,
  plus whether a deploy may count it as successful (``strict_health_check``).
* :func:`with_pods` / :func:`owned_pods` (``pods.py``) — a workload that is not Healthy, judged by
  its pods: Degraded, naming the pod and the container, when one of them is Degraded.
* :func:`has_rule` / :data:`HAS_RULE` — whether a kind has a dedicated rule (migration preview
  flags kinds without one; they are judged by the generic ``status.conditions`` rule).
* :class:`Checks` (``custom/``) — user checks (Lua, CEL) per kind, passed to :func:`assess`; they come
  before the dedicated rules. ``custom.not_covered`` lists kinds nothing really judges.

A rule that fails on a malformed object yields Unknown with the error, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from moorage.engine.health import (
    apiservice,
    argorollouts,
    certmanager,
    clusterapi,
    cnpg,
    crd,
    cronjob,
    crossplane,
    daemonset,
    deployment,
    externalsecrets,
    flux,
    gatewayapi,
    generic,
    hpa,
    ingress,
    istio,
    job,
    karpenter,
    keda,
    knative,
    monitoring,
    pdb,
    pod,
    pvc,
    replicaset,
    sealedsecrets,
    service,
    snapshot,
    statefulset,
)
from moorage.engine.health.custom import Checks
from moorage.engine.health.pods import WORKLOAD_KINDS, is_workload, owned_pods, with_pods
from moorage.engine.health.types import (
    SEVERITY,
    AddonHealth,
    Context,
    Health,
    HealthStatus,
    human_duration,
    names,
    parse_time,
    rank,
    section,
    text,
)

__all__ = [
    "DEFAULT_PROGRESS_DEADLINE",
    "HAS_RULE",
    "SEVERITY",
    "WORKLOAD_KINDS",
    "AddonHealth",
    "Checks",
    "Context",
    "Health",
    "HealthStatus",
    "addon_health",
    "assess",
    "group_kind",
    "has_rule",
    "is_acceptable",
    "is_workload",
    "owned_pods",
    "with_pods",
    "worst",
]

DEFAULT_PROGRESS_DEADLINE = timedelta(minutes=10)

Rule = Callable[[Mapping[str, Any], Context], Health]

RULES: dict[tuple[str, str], Rule] = {
    ("apps", "Deployment"): deployment.assess,
    ("extensions", "Deployment"): deployment.assess,
    ("apps", "StatefulSet"): statefulset.assess,
    ("apps", "DaemonSet"): daemonset.assess,
    ("extensions", "DaemonSet"): daemonset.assess,
    ("apps", "ReplicaSet"): replicaset.assess,
    ("extensions", "ReplicaSet"): replicaset.assess,
    ("", "Pod"): pod.assess,
    ("batch", "Job"): job.assess,
    ("batch", "CronJob"): cronjob.assess,
    ("policy", "PodDisruptionBudget"): pdb.assess,
    ("", "PersistentVolumeClaim"): pvc.assess,
    ("", "Service"): service.assess,
    ("networking.k8s.io", "Ingress"): ingress.assess,
    ("extensions", "Ingress"): ingress.assess,
    ("autoscaling", "HorizontalPodAutoscaler"): hpa.assess,
    ("apiregistration.k8s.io", "APIService"): apiservice.assess,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd.assess,
    **dict.fromkeys(generic.STATIC_KINDS, generic.assess_static),
    # Add-ons people run (one module per API group; docs/health.md lists what decides each).
    **certmanager.RULES,
    **gatewayapi.RULES,
    **argorollouts.RULES,
    **flux.RULES,
    **externalsecrets.RULES,
    **keda.RULES,
    **karpenter.RULES,
    **monitoring.RULES,
    **cnpg.RULES,
    **sealedsecrets.RULES,
    **snapshot.RULES,
    **crossplane.RULES,
    **clusterapi.RULES,
    **istio.RULES,
    **knative.RULES,
}


def group_kind(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(API group, kind) of an object; the core group is ``""``."""
    api_version = text(obj.get("apiVersion"))
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return group, text(obj.get("kind"))


def has_rule(group: str, kind: str) -> bool:
    """True when ``group``/``kind`` has a dedicated health rule (including built-in kinds whose
    existence is their health). False for everything judged only by the generic
    ``status.conditions`` rule — the kinds a migration preview flags. Crossplane's groups
    (``*.crossplane.io``, ``*.upbound.io``: every provider brings its own kinds) count as ruled."""
    return (group, kind) in RULES or crossplane.handles_group(group)


HAS_RULE = has_rule


def assess(
    obj: Mapping[str, Any] | None,
    now: datetime,
    *,
    progress_deadline: timedelta = DEFAULT_PROGRESS_DEADLINE,
    checks: Checks | None = None,
) -> Health:
    """The health of one live object (``None``: it does not exist → Missing).

    Order: an object being deleted; then a user check for its kind in ``checks`` (Lua or CEL,
    ``custom/``); then the kind's dedicated rule; then the generic rule."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    if obj is None:
        return Health(HealthStatus.MISSING, "does not exist in the cluster")
    if not isinstance(obj, Mapping):
        return Health(HealthStatus.UNKNOWN, f"cannot assess a {type(obj).__name__}, expected an object")
    ctx = Context(now=now, progress_deadline=progress_deadline)
    try:
        deleting = _deleting(obj, ctx)
        if deleting is not None:
            return deleting
        user = checks.for_object(obj) if checks else None
        if user is not None:
            return user.assess(obj, ctx)
        rule = RULES.get(group_kind(obj), generic.assess)
        return rule(obj, ctx)
    except Exception as error:  # a rule must never crash the engine (gitops-engine does the same)
        return Health(HealthStatus.UNKNOWN, f"could not assess health: {type(error).__name__}: {error}")


def _deleting(obj: Mapping[str, Any], ctx: Context) -> Health | None:
    metadata = section(obj, "metadata")
    since = parse_time(metadata.get("deletionTimestamp"))
    if since is None:
        return None
    finalizers = [text(f) for f in metadata.get("finalizers") or [] if isinstance(f, str)]
    waiting = f"; waiting for finalizers {names(finalizers)}" if finalizers else ""
    elapsed = ctx.now - since
    if elapsed >= ctx.progress_deadline:
        deadline = human_duration(ctx.progress_deadline)
        return Health(
            HealthStatus.DEGRADED,
            f"stuck in deletion for {human_duration(elapsed)} (deadline {deadline}){waiting}",
        )
    return Health(HealthStatus.PROGRESSING, f"being deleted{waiting}")


def worst(healths: Iterable[Health]) -> Health:
    """The worst health by :data:`SEVERITY` (the first one among equals); Healthy if empty."""
    found: Health | None = None
    for health in healths:
        if found is None or rank(health.status) < rank(found.status):
            found = health
    return found if found is not None else Health(HealthStatus.HEALTHY, "nothing to assess")


def is_acceptable(status: HealthStatus, strict: bool) -> bool:
    """Strict: only Healthy. Otherwise: anything but Degraded and Missing (see AddonHealth)."""
    if strict:
        return status is HealthStatus.HEALTHY
    return status not in (HealthStatus.DEGRADED, HealthStatus.MISSING)


def addon_health(resource_healths: Sequence[tuple[str, Health]], strict: bool) -> AddonHealth:
    """The add-on's health: the worst of its resources, the reason naming that resource.

    ``resource_healths`` pairs a display name (e.g. ``"Deployment apps/web"``) with its health.
    """
    resources = tuple(resource_healths)
    if not resources:
        return AddonHealth(
            HealthStatus.HEALTHY,
            "the add-on has no resources to check",
            is_acceptable(HealthStatus.HEALTHY, strict),
        )
    name, chosen = resources[0]
    for candidate_name, candidate in resources[1:]:
        if rank(candidate.status) < rank(chosen.status):
            name, chosen = candidate_name, candidate
    status = chosen.status
    acceptable = is_acceptable(status, strict)
    if status is HealthStatus.HEALTHY:
        reason = (
            f"all {len(resources)} resources healthy" if len(resources) > 1 else f"{name}: {chosen.reason}"
        )
        return AddonHealth(status, reason, acceptable, resources, None)
    others = [n for n, h in resources if h.status is status and n != name]
    reason = f"{name}: {chosen.reason}"
    if others:
        reason += f" (also {status}: {names(others)})"
    return AddonHealth(status, reason, acceptable, resources, name)
