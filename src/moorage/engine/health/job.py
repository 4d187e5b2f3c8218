"""batch/Job (as Argo CD: Complete / Failed conditions, suspend).

A running Job stays Progressing: Jobs carry their own deadline (``activeDeadlineSeconds``,
which ends in a ``Failed`` condition with reason ``DeadlineExceeded``) and batch work may
legitimately run for hours, so the engine's ``progress_deadline`` does not apply.
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
    integer,
    section,
)


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform rule signature
    spec, status = section(obj, "spec"), section(obj, "status")
    conds = conditions(obj)
    active, succeeded, failed = (integer(status.get(k)) for k in ("active", "succeeded", "failed"))

    for kind in ("Failed", "FailureTarget"):
        cond = find(conds, kind)
        if cond is not None and cond.true:
            return Health(HealthStatus.DEGRADED, f"job failed: {cond.describe()}")
    complete = find(conds, "Complete")
    if complete is not None and complete.true:
        return Health(HealthStatus.HEALTHY, f"job completed ({succeeded} succeeded)")
    criteria = find(conds, "SuccessCriteriaMet")
    if criteria is not None and criteria.true:
        return Health(HealthStatus.HEALTHY, "job met its success criteria; remaining pods are terminating")
    suspended = find(conds, "Suspended")
    if spec.get("suspend") is True or (suspended is not None and suspended.true):
        return Health(HealthStatus.SUSPENDED, f"job is suspended (spec.suspend); {active} pods active")
    return Health(
        HealthStatus.PROGRESSING,
        f"job running: {active} active, {succeeded} succeeded, {failed} failed",
    )
