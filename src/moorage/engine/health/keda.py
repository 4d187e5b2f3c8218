"""keda.sh: ScaledObject, ScaledJob (and the authentication kinds, which have no health).

* Paused by annotation → Suspended: ``autoscaling.keda.sh/paused: "true"`` (scaling stops at the
  current replica count) or ``autoscaling.keda.sh/paused-replicas: "<n>"`` (scaled to n, then
  stopped); or KEDA's ``Paused=True`` condition.
* ``Fallback=True`` → Degraded: the triggers fail and the target runs on
  ``spec.fallback.replicas``; the reason names the failing triggers from ``status.health``.
* ``Ready=False`` → Degraded (``ScaledObjectCheckFailed``: a wrong ``scaleTargetRef``, replica
  counts, triggers, …), except ``HPAMetricsUnavailable`` (the HPA is waiting for metrics) →
  Progressing, Degraded after ``progress_deadline``.
* ``Ready=True`` → Healthy; the reason says whether the triggers are active.
* No ``Ready`` yet → Progressing (KEDA has not created the HPA / validated the object).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, annotation, deadline, good, state, stated
from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    integer,
    names,
    section,
    text,
)

GROUP = "keda.sh"
PAUSED = "autoscaling.keda.sh/paused"
PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
WAITING = frozenset({"HPAMetricsUnavailable"})


def _failing_triggers(status: Mapping[str, Any]) -> list[str]:
    out = []
    for trigger, health in section(status, "health").items():
        if isinstance(health, Mapping) and text(health.get("status")) == "Failing":
            failures = integer(health.get("numberOfFailures"))
            out.append(f"{trigger} ({failures} failures)" if failures else str(trigger))
    return out


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    conds = conditions(obj)
    replicas = annotation(obj, PAUSED_REPLICAS)
    if replicas:
        return Health(
            HealthStatus.SUSPENDED,
            f"autoscaling paused at {replicas} replicas (annotation {PAUSED_REPLICAS})",
        )
    if annotation(obj, PAUSED).lower() == "true":
        return Health(
            HealthStatus.SUSPENDED,
            f'autoscaling paused at the current replica count (annotation {PAUSED}: "true")',
        )
    paused = find(conds, "Paused")
    if paused is not None and paused.true:
        return Health(HealthStatus.SUSPENDED, stated(paused))
    fallback = find(conds, "Fallback")
    if fallback is not None and fallback.true:
        failing = _failing_triggers(status)
        which = f"; failing triggers: {names(failing)}" if failing else ""
        replicas_note = section(spec, "fallback").get("replicas")
        on = f"; running on {replicas_note} fallback replicas" if isinstance(replicas_note, int) else ""
        return Health(HealthStatus.DEGRADED, f"{stated(fallback)}{which}{on}")
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx, conds=conds)
    ready = find(conds, "Ready")
    if ready is None:
        return deadline(
            Health(
                HealthStatus.PROGRESSING, "waiting for KEDA to validate it and set up scaling (no Ready yet)"
            ),
            obj,
            ctx,
        )
    if ready.false and ready.reason not in WAITING:
        return Health(HealthStatus.DEGRADED, state(ready))
    if not ready.true:
        return deadline(Health(HealthStatus.PROGRESSING, state(ready)), obj, ctx, ready)
    active = find(conds, "Active")
    if active is not None and active.true:
        note = "; triggers are active"
    elif active is not None and active.false:
        note = "; triggers are not active (scaled to its minimum)"
    else:
        note = ""
    return Health(HealthStatus.HEALTHY, f"{good(ready)}{note}")


def authentication(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    return Health(HealthStatus.HEALTHY, "exists (trigger authentication has no status to check)")


RULES: Rules = {
    (GROUP, "ScaledObject"): assess,
    (GROUP, "ScaledJob"): assess,
    (GROUP, "TriggerAuthentication"): authentication,
    (GROUP, "ClusterTriggerAuthentication"): authentication,
}
