"""apps/StatefulSet (as Argo CD: ready pods, partitioned and OnDelete updates, revisions).

StatefulSets have no progress deadline of their own, so a rollout that stops making
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
    optional_int,
    section,
    text,
    with_deadline,
)


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    return with_deadline(_assess(obj), obj, ctx)


def _assess(obj: Mapping[str, Any]) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    if optional_int(status.get("observedGeneration")) in (None, 0) and optional_int(
        section(obj, "metadata").get("generation")
    ):
        return Health(HealthStatus.PROGRESSING, "waiting for the controller to observe the StatefulSet")
    lag = generation_lag(obj)
    if lag is not None:
        return lag

    desired = integer(spec.get("replicas"), 1)
    ready = integer(status.get("readyReplicas"))
    updated = integer(status.get("updatedReplicas"))
    current_rev = text(status.get("currentRevision"))
    update_rev = text(status.get("updateRevision"))
    strategy = section(spec, "updateStrategy")
    strategy_type = text(strategy.get("type")) or "RollingUpdate"

    if ready < desired:
        rolling = f"; rolling out revision {update_rev}" if update_rev and current_rev != update_rev else ""
        return Health(HealthStatus.PROGRESSING, f"{ready} of {desired} pods ready{rolling}")

    if strategy_type == "RollingUpdate":
        partition = integer(section(strategy, "rollingUpdate").get("partition"))
        if partition > 0:
            target = max(0, desired - partition)
            if updated < target:
                return Health(
                    HealthStatus.PROGRESSING,
                    f"partitioned rollout: {updated} of {target} pods updated to revision {update_rev}",
                )
            return Health(
                HealthStatus.HEALTHY,
                f"partitioned rollout complete: {updated} pods at revision {update_rev}, "
                f"{partition} held back by partition {partition}",
            )
    if strategy_type == "OnDelete":
        return Health(
            HealthStatus.HEALTHY,
            f"{ready} of {desired} pods ready (updateStrategy OnDelete: pods are updated when deleted)",
        )
    if current_rev and update_rev and current_rev != update_rev:
        return Health(
            HealthStatus.PROGRESSING,
            f"{updated} of {desired} pods updated to revision {update_rev}; waiting for the rolling update",
        )
    if desired == 0:
        return Health(HealthStatus.HEALTHY, "scaled to 0 replicas")
    at = f" at revision {current_rev}" if current_rev else ""
    return Health(HealthStatus.HEALTHY, f"{ready} of {desired} pods ready{at}")
