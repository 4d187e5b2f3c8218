"""apps/DaemonSet (as Argo CD: scheduled, updated and available pods per node).

DaemonSets have no progress deadline of their own, so a rollout that stops making
progress turns Degraded after the engine's ``progress_deadline``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    generation_lag,
    integer,
    section,
    text,
    with_deadline,
)


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    return with_deadline(_assess(obj), obj, ctx)


def _assess(obj: Mapping[str, Any]) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    lag = generation_lag(obj)
    if lag is not None:
        return lag
    desired = integer(status.get("desiredNumberScheduled"))
    updated = integer(status.get("updatedNumberScheduled"))
    available = integer(status.get("numberAvailable"))
    strategy = text(section(spec, "updateStrategy").get("type")) or "RollingUpdate"

    if strategy == "OnDelete":
        return Health(
            HealthStatus.HEALTHY,
            f"{available} of {desired} pods available "
            "(updateStrategy OnDelete: pods are updated when deleted)",
        )
    if updated < desired:
        return Health(
            HealthStatus.PROGRESSING, f"{updated} of {desired} pods updated; waiting for the rollout"
        )
    if available < desired:
        return Health(HealthStatus.PROGRESSING, f"{available} of {desired} pods available")
    if desired == 0:
        return Health(HealthStatus.HEALTHY, "no node needs a pod (0 scheduled)")
    return Health(HealthStatus.HEALTHY, f"{available} of {desired} pods available")
