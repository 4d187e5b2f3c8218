"""postgresql.cnpg.io (CloudNativePG): Cluster, Backup, Database.

Cluster: the operator writes ``status.phase`` (a sentence) and ``status.phaseReason``, and the
conditions ``Ready`` and ``ContinuousArchiving``.

* Annotation ``cnpg.io/reconciliation: disabled`` or the condition ``cnpg.io/hibernation=True`` →
  Suspended (a person stopped it).
* ``Cluster in healthy state`` → Healthy, unless ``ContinuousArchiving=False`` (WAL archiving is
  failing: backups and point-in-time recovery are broken) → Degraded.
* Phases of planned work (setting up, creating a replica, upgrading, switchover, applying
  configuration, waiting for instances, restarts) → Progressing, Degraded after
  ``progress_deadline``; ``Failing over`` → Degraded (the primary failed).
* Phases that wait for a person (``Waiting for user action``, ``Cluster upgrade delayed`` under a
  supervised primary update) → Suspended; phases that need fixing (cannot create objects,
  unknown plugin, invalid image catalog, unrecoverable, missing architecture binary) → Degraded.
* An unknown phase: the ``Ready`` condition decides.

Backup: ``status.phase`` ``completed`` → Healthy, ``failed`` / ``walArchivingFailing`` → Degraded
with ``status.error``, others (``started``, ``running``, ``finalizing``, …) → Progressing (no
deadline: a base backup takes as long as the database is large).
Database: ``status.applied`` ``true`` → Healthy, ``false`` → Degraded with ``status.message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, annotation, deadline, good, state, stated
from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    integer,
    section,
    text,
)

GROUP = "postgresql.cnpg.io"
HEALTHY_PHASE = "Cluster in healthy state"
WORKING_PHASES = frozenset(
    {
        "Setting up primary",
        "Creating a new replica",
        "Upgrading cluster",
        "Waiting for the instances to become active",
        "Promoting to primary cluster",
        "Switchover in progress",
        "Upgrading Postgres major version",
        "Primary instance is being restarted in-place",
        "Primary instance is being restarted without a switchover",
        "Online upgrade in progress",
        "Applying configuration",
        "Creating replica cluster",
    }
)
FAILED_PHASES = frozenset(
    {
        "Failing over",
        "Unable to create required cluster objects",
        "Cluster cannot proceed to reconciliation due to an unknown plugin being required",
        "Cluster has incomplete or invalid image catalog",
        "Cluster is unrecoverable and needs manual intervention",
        "Cluster cannot execute instance online upgrade due to missing architecture binary",
    }
)
WAITING_FOR_A_PERSON = frozenset({"Waiting for user action", "Cluster upgrade delayed"})


def cluster(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    conds = conditions(obj)
    if annotation(obj, "cnpg.io/reconciliation") == "disabled":
        return Health(HealthStatus.SUSPENDED, "reconciliation disabled (annotation cnpg.io/reconciliation)")
    hibernation = find(conds, "cnpg.io/hibernation")
    if hibernation is not None and hibernation.true:
        return Health(HealthStatus.SUSPENDED, f"hibernated: {stated(hibernation)}")
    phase = text(status.get("phase"))
    why = text(status.get("phaseReason")).strip()
    said = f"{phase}" + (f": {why}" if why else "")
    ready_count = (
        f"{integer(status.get('readyInstances'))} of {integer(status.get('instances'))} instances ready"
    )
    if phase == HEALTHY_PHASE:
        archiving = find(conds, "ContinuousArchiving")
        if archiving is not None and archiving.false:
            return Health(
                HealthStatus.DEGRADED,
                f"{state(archiving)} (backups and point-in-time recovery are not working)",
            )
        return Health(HealthStatus.HEALTHY, f"{phase} ({ready_count})")
    if phase in FAILED_PHASES:
        return Health(HealthStatus.DEGRADED, said)
    if phase in WAITING_FOR_A_PERSON:
        return Health(HealthStatus.SUSPENDED, f"{said} (supervised: waits for a person)")
    if phase in WORKING_PHASES:
        return deadline(Health(HealthStatus.PROGRESSING, f"{said} ({ready_count})"), obj, ctx, conds=conds)
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx, conds=conds)
    ready = find(conds, "Ready")
    if ready is not None and ready.true:
        return Health(HealthStatus.HEALTHY, good(ready) + (f" (phase {said})" if phase else ""))
    what = said or (state(ready) if ready is not None else "waiting for the operator to report a phase")
    return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, conds=conds)


def backup(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    phase = text(status.get("phase"))
    error = text(status.get("error")).strip()
    if phase == "completed":
        return Health(HealthStatus.HEALTHY, "backup completed")
    if phase in ("failed", "walArchivingFailing"):
        return Health(HealthStatus.DEGRADED, f"backup {phase}" + (f": {error}" if error else ""))
    if phase:
        return Health(HealthStatus.PROGRESSING, f"backup {phase}")
    return deadline(
        Health(HealthStatus.PROGRESSING, "waiting for the operator to start the backup"), obj, ctx
    )


def database(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx)
    message = text(status.get("message")).strip()
    applied = status.get("applied")
    if applied is True:
        return Health(HealthStatus.HEALTHY, "applied to the database")
    if applied is False:
        return Health(HealthStatus.DEGRADED, "not applied" + (f": {message}" if message else ""))
    return deadline(Health(HealthStatus.PROGRESSING, "waiting for the operator to apply it"), obj, ctx)


RULES: Rules = {
    (GROUP, "Cluster"): cluster,
    (GROUP, "Backup"): backup,
    (GROUP, "Database"): database,
}
