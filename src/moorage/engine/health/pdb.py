"""policy/PodDisruptionBudget: can the disruption controller compute the budget, and are the pods
it protects healthy?

The disruption controller writes ``status.observedGeneration``, ``expectedPods``,
``currentHealthy``, ``desiredHealthy``, ``disruptionsAllowed`` and the condition
``DisruptionAllowed``: ``True``/``SufficientPods``, ``False``/``InsufficientPods`` (the budget
is computed and allows nothing) or ``False``/``SyncFailed`` (it could not be computed, e.g. pods
without a controller, or a percentage over pods whose controller has no scale subresource).

* ``SyncFailed`` → Degraded with the controller's message: the budget protects nothing as
  intended and blocks every eviction.
* ``InsufficientPods`` with fewer healthy pods than desired → Progressing (the pods are coming
  up), Degraded after ``progress_deadline`` counted from the condition's transition.
* ``InsufficientPods`` with all desired pods healthy → Healthy, but the reason says that no
  voluntary disruption is allowed (node drains wait): that is the budget doing what it says.
* Generation not observed yet, or no condition yet → Progressing with the deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import since
from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    integer,
    plural,
    section,
    with_deadline,
)


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    lag = generation_lag(obj)
    if lag is not None:
        return with_deadline(lag, obj, ctx)
    cond = find(conditions(obj), "DisruptionAllowed")
    expected = integer(status.get("expectedPods"))
    healthy = integer(status.get("currentHealthy"))
    desired = integer(status.get("desiredHealthy"))
    allowed = integer(status.get("disruptionsAllowed"))
    counts = f"{healthy} of {plural(expected, 'pod')} healthy, {desired} required"
    if cond is None:
        return with_deadline(
            Health(HealthStatus.PROGRESSING, "waiting for the disruption controller to compute the budget"),
            obj,
            ctx,
        )
    if cond.reason == "SyncFailed":
        return Health(
            HealthStatus.DEGRADED,
            f"DisruptionAllowed is False: SyncFailed: {cond.message or 'the budget cannot be computed'}"
            " (every eviction of the selected pods is refused)",
        )
    if cond.true:
        return Health(HealthStatus.HEALTHY, f"{plural(allowed, 'disruption')} allowed ({counts})")
    if healthy < desired:
        return with_deadline(
            Health(
                HealthStatus.PROGRESSING,
                f"DisruptionAllowed is False: {cond.reason or 'InsufficientPods'}: {counts}",
            ),
            obj,
            ctx,
            since=since(cond, obj),
        )
    if expected == 0:
        return Health(HealthStatus.HEALTHY, "selects no pods (nothing to protect)")
    return Health(
        HealthStatus.HEALTHY,
        f"no disruption allowed ({counts}): node drains wait until more pods are healthy"
        " (raise replicas or lower minAvailable to allow them)",
    )
