"""autoscaling/HorizontalPodAutoscaler (v1 and v2), decided by condition reason.

Conditions come from ``status.conditions`` (v2) or, for autoscaling/v1 objects, from the
``autoscaling.alpha.kubernetes.io/conditions`` annotation.

* ``AbleToScale=False`` → Degraded (``FailedGetScale``, ``FailedUpdateScale``: the target or its
  scale subresource cannot be read or written) — except the ``Backoff…`` reasons, which say the
  last scale was too recent (a normal pause between scales).
* ``ScalingActive=False`` while metrics cannot be read (``FailedGetResourceMetric``,
  ``FailedGetPodsMetric``, ``FailedGetObjectMetric``, ``FailedGetExternalMetric``,
  ``FailedGetContainerResourceMetric``, ``FailedComputeMetricsReplicas``) → Progressing: the
  metrics pipeline (metrics-server, an adapter) or freshly started pods have not produced
  metrics yet. Degraded once that has lasted ``progress_deadline`` (counted from the
  condition's transition), and at once when a container has no resource request for the
  metric (the controller says ``missing request for …``: that never resolves by itself).
* ``ScalingActive=False`` with any other reason (``InvalidSelector``, ``InvalidMetricSourceType``,
  …) → Degraded; with ``ScalingDisabled`` (the target is scaled to zero) → Healthy, said so in
  the reason: scaling to zero is a deliberate choice.
* ``ScalingLimited=True`` (at minReplicas/maxReplicas) is fine.
* No conditions yet → Progressing, Degraded after ``progress_deadline``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import since, state
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


BACKOFF = frozenset({"BackoffBoth", "BackoffDownscale", "BackoffUpscale"})
METRIC_REASONS = frozenset(
    {
        "FailedGetResourceMetric",
        "FailedGetContainerResourceMetric",
        "FailedGetPodsMetric",
        "FailedGetObjectMetric",
        "FailedGetExternalMetric",
        "FailedComputeMetricsReplicas",
    }
)


def _cannot_scale(cond: Condition) -> Health:
    return Health(HealthStatus.DEGRADED, f"cannot autoscale: {state(cond)}")


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    conds = _conditions(obj)
    able, active, limited = (find(conds, t) for t in ("AbleToScale", "ScalingActive", "ScalingLimited"))
    if able is not None and able.false and able.reason not in BACKOFF:
        return _cannot_scale(able)
    if active is not None and active.false:
        if active.reason == "ScalingDisabled":
            return Health(HealthStatus.HEALTHY, f"autoscaling is disabled: {active.describe()}")
        if active.reason not in METRIC_REASONS:
            return _cannot_scale(active)
        if "missing request for" in active.message:
            return Health(
                HealthStatus.DEGRADED,
                f"cannot autoscale: {state(active)} (set resources.requests for that resource on every"
                " container of the target: utilization targets are relative to requests)",
            )
        return with_deadline(
            Health(
                HealthStatus.PROGRESSING,
                f"waiting for metrics: {state(active)} (metrics-server or the metrics adapter has none"
                " for the target's pods yet)",
            ),
            obj,
            ctx,
            since=since(active, obj),
        )
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
    if able is not None and able.false:
        note += f"; {able.message or 'backing off after the last scale'}"
    return Health(HealthStatus.HEALTHY, f"{current} replicas (desired {desired}, allowed {bounds}){note}")
