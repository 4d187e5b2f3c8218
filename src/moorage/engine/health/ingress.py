"""networking.k8s.io/Ingress: Healthy once the ingress controller publishes an address in
``status.loadBalancer.ingress``; Progressing until then, Degraded after
``progress_deadline`` (some ingress controllers never publish status: the reason says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.service import lb_addresses
from moorage.engine.health.types import Context, Health, HealthStatus, names, with_deadline


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    addresses = lb_addresses(obj)
    if addresses:
        return Health(HealthStatus.HEALTHY, f"ingress has address {names(addresses)}")
    return with_deadline(
        Health(
            HealthStatus.PROGRESSING,
            "waiting for the ingress controller to publish an address in status.loadBalancer",
        ),
        obj,
        ctx,
    )
