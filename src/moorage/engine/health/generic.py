"""Custom resources (and kinds with nothing to check) by ``status.conditions``.

kstatus/Argo CD-like reading of the usual conventions:

1. ``spec.suspend: true`` → Suspended (Flux kinds, CronJob, many operators).
2. ``status.observedGeneration`` behind ``metadata.generation`` → Progressing.
3. ``Stalled=True`` → Degraded.
4. Readiness conditions ``Ready`` / ``Available`` / ``Healthy``:
   any ``False`` → Degraded with that condition's message, unless ``Reconciling=True`` or
   ``Progressing=True`` says the controller is still working (then Progressing);
   ``Unknown`` → Progressing; all ``True`` → Healthy.
5. Without readiness conditions: ``Failed`` / ``Degraded`` / ``Error`` = True → Degraded;
   ``Reconciling`` / ``Progressing`` = True → Progressing.
6. Otherwise Healthy: ankra-spec §5.6, unknown kinds count as healthy once they exist —
   and the reason says so, because nothing was actually checked.

Every Progressing here turns Degraded after ``progress_deadline``, counted from the newest
condition transition (or managedFields write, or creation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    section,
    text,
    with_deadline,
)

READINESS = ("Ready", "Available", "Healthy")
FAILURES = ("Failed", "Degraded", "Error")
WORKING = ("Reconciling", "Progressing")
# A Progressing=True condition with these reasons reports a finished rollout (Deployment style).
DONE_REASONS = frozenset({"NewReplicaSetAvailable", "Complete", "Completed", "Succeeded", "RolloutCompleted"})

#: Built-in kinds whose health is their existence: they have no status to check.
STATIC_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Namespace"),
        ("", "Endpoints"),
        ("", "LimitRange"),
        ("", "ResourceQuota"),
        ("", "PersistentVolume"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("networking.k8s.io", "IngressClass"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("policy", "PodDisruptionBudget"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("node.k8s.io", "RuntimeClass"),
        ("coordination.k8s.io", "Lease"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("batch", "CronJob"),
    }
)


def _suspended(obj: Mapping[str, Any]) -> Health | None:
    if section(obj, "spec").get("suspend") is True:
        return Health(HealthStatus.SUSPENDED, "suspended (spec.suspend is true)")
    return None


def assess_static(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    suspended = _suspended(obj)
    if suspended is not None:
        return suspended
    kind = text(obj.get("kind")) or "resource"
    return Health(HealthStatus.HEALTHY, f"exists (a {kind} has no status to check)")


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    conds = conditions(obj)
    return with_deadline(_assess(obj), obj, ctx, conds=conds)


def _assess(obj: Mapping[str, Any]) -> Health:
    kind = text(obj.get("kind")) or "resource"
    suspended = _suspended(obj)
    if suspended is not None:
        return suspended
    lag = generation_lag(obj)
    if lag is not None:
        return lag
    conds = conditions(obj)
    stalled = find(conds, "Stalled")
    if stalled is not None and stalled.true:
        return Health(HealthStatus.DEGRADED, f"stalled: {stalled.describe()}")
    working = next(
        (c for t in WORKING if (c := find(conds, t)) is not None and c.true and c.reason not in DONE_REASONS),
        None,
    )

    readiness = [c for t in READINESS if (c := find(conds, t)) is not None]
    if readiness:
        failed = next((c for c in readiness if c.false), None)
        if failed is not None:
            if working is not None:
                return Health(
                    HealthStatus.PROGRESSING,
                    f"{working.type.lower()}: {working.describe()} "
                    f"({failed.type} is False: {failed.describe()})",
                )
            return Health(HealthStatus.DEGRADED, f"{failed.type} is False: {failed.describe()}")
        pending = next((c for c in readiness if not c.true), None)
        if pending is not None:
            return Health(
                HealthStatus.PROGRESSING,
                f"{pending.type} is {pending.status or 'unset'}: {pending.describe()}",
            )
        if working is not None:
            return Health(HealthStatus.PROGRESSING, f"{working.type.lower()}: {working.describe()}")
        ready = readiness[0]
        return Health(
            HealthStatus.HEALTHY, f"{ready.type} is True" + (f": {ready.message}" if ready.message else "")
        )

    failure = next((c for t in FAILURES if (c := find(conds, t)) is not None and c.true), None)
    if failure is not None:
        return Health(HealthStatus.DEGRADED, f"{failure.type}: {failure.describe()}")
    if working is not None:
        return Health(HealthStatus.PROGRESSING, f"{working.type.lower()}: {working.describe()}")
    what = "has no status" if not section(obj, "status") else "reports no readiness condition"
    return Health(
        HealthStatus.HEALTHY,
        f"exists and {what}; there is no health rule for {kind}, so it counts as healthy once it exists",
    )
