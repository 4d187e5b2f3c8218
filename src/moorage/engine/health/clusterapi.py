"""cluster.x-k8s.io (Cluster API): Cluster, Machine, MachineDeployment, MachineSet, MachinePool,
MachineHealthCheck, and the KubeadmControlPlane.

Cluster API (v1beta1) summarises in ``status.phase`` and writes conditions with a ``severity``:
a ``False`` condition of severity ``Error`` is a failure, ``Warning``/``Info`` a state that is
expected to resolve (provisioning, scaling, remediation). Terminal problems were also written to
``status.failureReason`` / ``failureMessage``. The v1beta2 API reads the same way: ``Available`` is
its summary condition, with no severity.

* ``spec.paused: true`` or the annotation ``cluster.x-k8s.io/paused`` → Suspended.
* ``failureReason``/``failureMessage``, or phase ``Failed`` → Degraded.
* ``Ready`` (or ``Available``) ``False`` with severity ``Error`` → Degraded; otherwise not ``True``
  → Progressing, Degraded after ``progress_deadline``.
* Cluster: phase ``Provisioned`` and ready → Healthy; Machine: ``Running``; MachineDeployment /
  MachineSet / MachinePool / KubeadmControlPlane: all desired replicas ready, updated and
  available → Healthy, else Progressing with the counts.
* MachineHealthCheck: ``RemediationAllowed=False`` → Degraded (too many unhealthy machines to
  remediate); otherwise Healthy with the healthy count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, good, severity, state
from moorage.engine.health.types import (
    Condition,
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    integer,
    optional_int,
    section,
    text,
)

GROUP = "cluster.x-k8s.io"
DONE_PHASES = {"Cluster": ("Provisioned",), "Machine": ("Running",), "MachinePool": ("Running",)}


def _summary(conds: list[Condition]) -> Condition | None:
    return find(conds, "Ready") or find(conds, "Available")


def _common(obj: Mapping[str, Any], ctx: Context) -> Health | None:
    """Paused, failures, generation and the summary condition; None when those say nothing."""
    spec, status = section(obj, "spec"), section(obj, "status")
    kind = text(obj.get("kind")) or "object"
    if spec.get("paused") is True or "cluster.x-k8s.io/paused" in section(obj, "metadata", "annotations"):
        return Health(HealthStatus.SUSPENDED, f"{kind} is paused: Cluster API does not reconcile it")
    reason, message = text(status.get("failureReason")), text(status.get("failureMessage")).strip()
    if reason or message:
        return Health(HealthStatus.DEGRADED, "failed: " + ": ".join(p for p in (reason, message) if p))
    phase = text(status.get("phase"))
    if phase == "Failed":
        return Health(HealthStatus.DEGRADED, "phase Failed")
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx)
    summary = _summary(conditions(obj))
    if summary is not None and summary.false and severity(obj, summary) == "Error":
        return Health(HealthStatus.DEGRADED, state(summary))
    return None


def _pending(obj: Mapping[str, Any], ctx: Context, what: str) -> Health:
    summary = _summary(conditions(obj))
    detail = f" ({state(summary)})" if summary is not None and not summary.true else ""
    return deadline(Health(HealthStatus.PROGRESSING, f"{what}{detail}"), obj, ctx, summary)


def by_phase(obj: Mapping[str, Any], ctx: Context) -> Health:
    """Cluster, Machine, MachinePool without replica counts: phase plus the summary condition."""
    common = _common(obj, ctx)
    if common is not None:
        return common
    kind, phase = text(obj.get("kind")), text(section(obj, "status").get("phase"))
    summary = _summary(conditions(obj))
    if phase in DONE_PHASES.get(kind, ()) and (summary is None or summary.true):
        return Health(HealthStatus.HEALTHY, f"phase {phase}" + (f"; {good(summary)}" if summary else ""))
    if not phase and summary is not None and summary.true:
        return Health(HealthStatus.HEALTHY, good(summary))
    return _pending(obj, ctx, f"phase {phase or 'not reported yet'}")


def replicated(obj: Mapping[str, Any], ctx: Context) -> Health:
    """MachineDeployment, MachineSet, MachinePool, KubeadmControlPlane: replica counts."""
    common = _common(obj, ctx)
    if common is not None:
        return common
    spec, status = section(obj, "spec"), section(obj, "status")
    desired = optional_int(spec.get("replicas"))
    desired = integer(status.get("replicas")) if desired is None else desired
    ready = integer(status.get("readyReplicas"))
    updated = integer(status.get("updatedReplicas"), ready)
    available = integer(status.get("availableReplicas"), ready)
    counts = f"{ready} of {desired} ready, {updated} updated, {available} available"
    summary = _summary(conditions(obj))
    if min(ready, updated, available) >= desired and (summary is None or summary.true):
        return Health(HealthStatus.HEALTHY, counts)
    return _pending(obj, ctx, counts)


def health_check(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    status = section(obj, "status")
    allowed = find(conditions(obj), "RemediationAllowed")
    healthy, expected = integer(status.get("currentHealthy")), integer(status.get("expectedMachines"))
    counts = f"{healthy} of {expected} machines healthy"
    if allowed is not None and allowed.false:
        return Health(HealthStatus.DEGRADED, f"{state(allowed)} ({counts})")
    return Health(HealthStatus.HEALTHY, counts)


RULES: Rules = {
    (GROUP, "Cluster"): by_phase,
    (GROUP, "Machine"): by_phase,
    (GROUP, "MachineDeployment"): replicated,
    (GROUP, "MachineSet"): replicated,
    (GROUP, "MachinePool"): replicated,
    (GROUP, "MachineHealthCheck"): health_check,
    ("controlplane.cluster.x-k8s.io", "KubeadmControlPlane"): replicated,
}
