"""core/PersistentVolumeClaim: Bound / Pending / Lost.

A Pending claim is Progressing. It turns Degraded after ``progress_deadline`` only once a
Pod has been scheduled to use it (the ``volume.kubernetes.io/selected-node`` annotation):
with a ``WaitForFirstConsumer`` storage class an unused claim stays Pending by design, and
that must not fail an add-on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    section,
    text,
    with_deadline,
)

SELECTED_NODE = "volume.kubernetes.io/selected-node"


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    phase = text(status.get("phase"))
    volume = text(section(obj, "spec").get("volumeName"))
    if phase == "Bound":
        return Health(HealthStatus.HEALTHY, f"bound to volume {volume}" if volume else "bound")
    if phase == "Lost":
        return Health(
            HealthStatus.DEGRADED,
            f"claim lost its volume {volume}".rstrip() + " (the PersistentVolume is gone)",
        )
    if phase in ("Pending", ""):
        node = text(section(obj, "metadata", "annotations").get(SELECTED_NODE))
        if node:
            return with_deadline(
                Health(
                    HealthStatus.PROGRESSING, f"pending: waiting for a volume to be provisioned on {node}"
                ),
                obj,
                ctx,
            )
        return Health(
            HealthStatus.PROGRESSING,
            "pending: waiting for a volume to be bound (with a WaitForFirstConsumer storage class "
            "this happens once a Pod uses the claim)",
        )
    return Health(HealthStatus.UNKNOWN, f"unexpected claim phase '{phase}'")
