"""apps/Deployment (as Argo CD: generation, updated/available replicas, progress deadline)."""

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
    plural,
    section,
    text,
    with_deadline,
)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    desired = integer(spec.get("replicas"), 1)
    updated = integer(status.get("updatedReplicas"))
    available = integer(status.get("availableReplicas"))
    current = integer(status.get("replicas"))
    revision = text(section(obj, "metadata", "annotations").get(REVISION_ANNOTATION))
    rollout = f"; waiting for rollout of revision {revision}" if revision else "; waiting for the rollout"

    if spec.get("paused") is True:
        return Health(
            HealthStatus.SUSPENDED,
            f"rollout is paused (spec.paused); {available} of {desired} replicas available",
        )
    lag = generation_lag(obj)
    if lag is not None:
        return lag if "progressDeadlineSeconds" in spec else with_deadline(lag, obj, ctx)

    conds = conditions(obj)
    progressing = find(conds, "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        what = f"rollout of revision {revision}" if revision else "rollout"
        deadline = spec.get("progressDeadlineSeconds")
        limit = f" ({deadline}s)" if isinstance(deadline, int) else ""
        return Health(
            HealthStatus.DEGRADED,
            f"{what} exceeded its progress deadline{limit}: {available} of {desired} replicas available"
            + (f"; {progressing.message}" if progressing.message else ""),
        )

    health: Health | None = None
    if updated < desired:
        health = Health(HealthStatus.PROGRESSING, f"{updated} of {desired} replicas updated{rollout}")
    elif current > updated:
        old = current - updated
        health = Health(
            HealthStatus.PROGRESSING,
            f"{plural(old, 'old replica')} pending termination{rollout}",
        )
    elif available < updated:
        health = Health(HealthStatus.PROGRESSING, f"{available} of {desired} replicas available{rollout}")
    if health is not None:
        # The controller enforces spec.progressDeadlineSeconds itself (600s by default).
        return health if "progressDeadlineSeconds" in spec else with_deadline(health, obj, ctx, conds=conds)

    if desired == 0:
        return Health(HealthStatus.HEALTHY, "scaled to 0 replicas")
    at = f" at revision {revision}" if revision else ""
    return Health(HealthStatus.HEALTHY, f"{available} of {desired} replicas available{at}")
