"""apiregistration.k8s.io/APIService: Healthy when ``Available=True``.

An aggregated API that is not available yet (its backing Pod still starting) is
Progressing, and Degraded once ``Available`` has not been True for ``progress_deadline``
(counted from that condition's last transition).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import Context, Health, HealthStatus, conditions, find, with_deadline


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    available = find(conditions(obj), "Available")
    if available is not None and available.true:
        return Health(HealthStatus.HEALTHY, "API service is available")
    if available is None:
        health = Health(HealthStatus.PROGRESSING, "waiting for the API service to report availability")
        return with_deadline(health, obj, ctx)
    health = Health(HealthStatus.PROGRESSING, f"API service is not available: {available.describe()}")
    return with_deadline(health, obj, ctx, since=available.last_transition)
