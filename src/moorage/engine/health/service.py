"""core/Service: a LoadBalancer needs an address in ``status.loadBalancer.ingress``; every
other type is Healthy once it exists. A load balancer that never gets an address turns
Degraded after ``progress_deadline`` instead of staying Progressing forever
(the long-standing Argo CD complaint, argo-cd#14607).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    items,
    names,
    section,
    text,
    with_deadline,
)


def lb_addresses(obj: Mapping[str, Any]) -> list[str]:
    return [
        text(entry.get("ip")) or text(entry.get("hostname")) or "an address"
        for entry in items(section(obj, "status", "loadBalancer").get("ingress"))
    ]


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    service_type = text(section(obj, "spec").get("type")) or "ClusterIP"
    if service_type != "LoadBalancer":
        return Health(HealthStatus.HEALTHY, f"{service_type} service")
    addresses = lb_addresses(obj)
    if addresses:
        return Health(HealthStatus.HEALTHY, f"load balancer ready at {names(addresses)}")
    return with_deadline(
        Health(HealthStatus.PROGRESSING, "waiting for the load balancer to get an address"), obj, ctx
    )
