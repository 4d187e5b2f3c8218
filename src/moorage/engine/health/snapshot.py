"""snapshot.storage.k8s.io: VolumeSnapshot, VolumeSnapshotContent (VolumeSnapshotClass has no status).

The snapshot controller and the CSI sidecar write ``status.readyToUse`` and, when something went
wrong, ``status.error`` (``message``, ``time``).

* ``readyToUse: true`` → Healthy (with the restore size).
* ``status.error`` and not ready → Degraded with the error message.
* Otherwise → Progressing, Degraded after ``progress_deadline`` (no snapshot controller, or a CSI
  driver that does not support snapshots).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline
from moorage.engine.health.types import Context, Health, HealthStatus, section, text

GROUP = "snapshot.storage.k8s.io"


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    size = status.get("restoreSize")
    if status.get("readyToUse") is True:
        restore = (
            f" (restore size {size})" if isinstance(size, str | int) and not isinstance(size, bool) else ""
        )
        return Health(HealthStatus.HEALTHY, f"ready to use{restore}")
    error = section(status, "error")
    message = text(error.get("message")).strip()
    if message:
        return Health(HealthStatus.DEGRADED, f"status.error: {message}")
    content = text(status.get("boundVolumeSnapshotContentName"))
    bound = f" (bound to {content})" if content else ""
    return deadline(
        Health(HealthStatus.PROGRESSING, f"waiting for the snapshot to be ready to use{bound}"), obj, ctx
    )


def snapshot_class(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    return Health(HealthStatus.HEALTHY, "exists (a VolumeSnapshotClass has no status to check)")


RULES: Rules = {
    (GROUP, "VolumeSnapshot"): assess,
    (GROUP, "VolumeSnapshotContent"): assess,
    (GROUP, "VolumeSnapshotClass"): snapshot_class,
}
