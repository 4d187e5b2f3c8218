"""autoscaling/HorizontalPodAutoscaler (v1 and v2).

Conditions come from ``status.conditions`` (v2) or, for autoscaling/v1 objects, from the
``autoscaling.alpha.kubernetes.io/conditions`` annotation.

* ``AbleToScale=False`` or ``ScalingActive=False`` with a failure reason (``FailedGet…``,
  ``FailedUpdateScale``, ``InvalidSelector``, …) → Degraded with the message.
* ``ScalingActive=False`` with ``ScalingDisabled`` (the target is scaled to zero) → Healthy,
  said so in the reason: scaling to zero is a deliberate choice.
* ``ScalingLimited=True`` (at minReplicas/maxReplicas) is fine.
* No conditions yet → Progressing, Degraded after ``progress_deadline``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import (
    Condition,
    Context,
    Health,
    HealthStatus,
    conditions,
    conditions_of,
    find,
    integer,
    section,
    with_deadline,
)

V1_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"


def _conditions(obj: Mapping[str, Any]) -> list[Condition]:
    conds = conditions(obj)
    if conds:
        return conds
    raw = section(obj, "metadata", "annotations").get(V1_CONDITIONS)
    if isinstance(raw, str):
        try:
            return conditions_of(json.loads(raw))
        except ValueError:
            return []
    return []


def _failed(cond: Condition | None) -> bool:
    return cond is not None and cond.false and cond.reason != "ScalingDisabled"


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    conds = _conditions(obj)
    able, active, limited = (find(conds, t) for t in ("AbleToScale", "ScalingActive", "ScalingLimited"))
    for cond in (able, active):
        if cond is not None and _failed(cond):
            return Health(HealthStatus.DEGRADED, f"cannot autoscale: {cond.type} is False: {cond.describe()}")
    if active is not None and active.false:  # ScalingDisabled
        return Health(HealthStatus.HEALTHY, f"autoscaling is disabled: {active.describe()}")
    if able is None and active is None:
        return with_deadline(
            Health(HealthStatus.PROGRESSING, "waiting for the autoscaler to report its conditions"),
            obj,
            ctx,
            conds=conds,
        )
    current = integer(status.get("currentReplicas"))
    desired = integer(status.get("desiredReplicas"))
    bounds = f"{integer(spec.get('minReplicas'), 1)}-{integer(spec.get('maxReplicas'))}"
    note = "; at its replica limit" if limited is not None and limited.true else ""
    return Health(HealthStatus.HEALTHY, f"{current} replicas (desired {desired}, allowed {bounds}){note}")
