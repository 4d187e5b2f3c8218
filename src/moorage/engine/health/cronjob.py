"""batch/CronJob: suspended, and whether its last run succeeded.

The CronJob controller keeps ``status.active`` (the Jobs running now), ``lastScheduleTime`` (when
the newest Job was created) and ``lastSuccessfulTime`` (when a Job last completed successfully).

* ``spec.suspend: true`` → Suspended.
* Jobs running → Healthy, naming them.
* Never scheduled → Healthy (nothing has run yet; the schedule is all there is to check).
* No Job running and the last success older than the last schedule (or no success at all) →
  Degraded: the newest run ended without success. The reason names that Job: the controller
  names each Job ``<cronjob>-<scheduled time in minutes since the epoch>``.
* Otherwise Healthy: the last run succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    human_duration,
    items,
    names,
    parse_time,
    section,
    text,
)


def job_name(cronjob: str, scheduled: datetime) -> str:
    """The name the CronJob controller gives the Job it creates for ``scheduled``."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    name = text(section(obj, "metadata").get("name")) or "cronjob"
    schedule = text(spec.get("schedule"))
    last_schedule = parse_time(status.get("lastScheduleTime"))
    last_success = parse_time(status.get("lastSuccessfulTime"))

    def ago(when: datetime) -> str:
        return f"{human_duration(ctx.now - when)} ago"

    if spec.get("suspend") is True:
        last = f"; last run {ago(last_schedule)}" if last_schedule is not None else ""
        return Health(HealthStatus.SUSPENDED, f"suspended (spec.suspend is true){last}")
    active = [text(ref.get("name")) or "?" for ref in items(status.get("active"))]
    if active:
        return Health(HealthStatus.HEALTHY, f"running Job {names(active)}")
    if last_schedule is None:
        when = f" (schedule {schedule!r})" if schedule else ""
        return Health(HealthStatus.HEALTHY, f"not run yet{when}")
    if last_success is None or last_success < last_schedule:
        job = job_name(name, last_schedule)
        before = (
            f"; last success {ago(last_success)}"
            if last_success is not None
            else "; no run has succeeded yet"
        )
        return Health(
            HealthStatus.DEGRADED,
            f"last run failed: Job {job} (scheduled {ago(last_schedule)}) did not complete{before}"
            f" (see `kubectl describe job {job}`)",
        )
    return Health(HealthStatus.HEALTHY, f"last run succeeded {ago(last_success)}")
