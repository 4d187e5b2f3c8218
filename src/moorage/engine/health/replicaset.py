"""apps/ReplicaSet (as Argo CD: ReplicaFailure condition, available replicas).

ReplicaSets have no progress deadline of their own; the engine's ``progress_deadline``
applies.
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
    integer,
    section,
    with_deadline,
)


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    return with_deadline(_assess(obj), obj, ctx)


def _assess(obj: Mapping[str, Any]) -> Health:
    lag = generation_lag(obj)
    if lag is not None:
        return lag
    desired = integer(section(obj, "spec").get("replicas"), 1)
    available = integer(section(obj, "status").get("availableReplicas"))
    failure = find(conditions(obj), "ReplicaFailure")
    if failure is not None and failure.true:
        return Health(HealthStatus.DEGRADED, f"cannot create pods: {failure.describe()}")
    if available < desired:
        return Health(HealthStatus.PROGRESSING, f"{available} of {desired} replicas available")
    if desired == 0:
        return Health(HealthStatus.HEALTHY, "scaled to 0 replicas")
    return Health(HealthStatus.HEALTHY, f"{available} of {desired} replicas available")
