"""CloudNativePG, SealedSecret, VolumeSnapshot: status as their controllers write it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, S, check, cond, ids, obj

CNPG = "postgresql.cnpg.io/v1"


def pg(
    phase: str | None, *conds: Any, annotations: Any = None, age: float = 3, **status: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"annotations": annotations} if annotations else {}
    body: dict[str, Any] = {"conditions": list(conds), "instances": 3, "readyInstances": 3, **status}
    if phase is not None:
        body["phase"] = phase
    return obj(CNPG, "Cluster", name="pg", age=age, generation=1, spec={"instances": 3}, status=body, **meta)


CNPG_CASES: list[Case] = [
    (
        "cnpg healthy",
        pg(
            "Cluster in healthy state",
            cond("Ready", "True", "ClusterIsReady", "Cluster is Ready"),
            cond(
                "ContinuousArchiving", "True", "ContinuousArchivingSuccess", "Continuous archiving is working"
            ),
        ),
        H,
        "Cluster in healthy state (3 of 3 instances ready)",
    ),
    (
        "cnpg archiving failing",
        pg(
            "Cluster in healthy state",
            cond("Ready", "True"),
            cond(
                "ContinuousArchiving",
                "False",
                "ContinuousArchivingFailing",
                "unexpected failure invoking barman-cloud-wal-archive",
            ),
        ),
        D,
        "ContinuousArchiving is False: ContinuousArchivingFailing",
    ),
    (
        "cnpg creating a replica",
        pg(
            "Creating a new replica",
            cond("Ready", "False", "ClusterIsNotReady", "Cluster Is Not Ready"),
            phaseReason="Creating replica pg-3",
            readyInstances=2,
        ),
        P,
        "Creating a new replica: Creating replica pg-3 (2 of 3 instances ready)",
    ),
    (
        "cnpg failing over",
        pg("Failing over", cond("Ready", "False"), phaseReason="Initiating a failover from pg-2"),
        D,
        "Failing over: Initiating a failover from pg-2",
    ),
    (
        "cnpg supervised upgrade waits",
        pg("Waiting for user action", phaseReason="User must issue a supervised switchover"),
        S,
        "Waiting for user action: User must issue a supervised switchover (supervised: waits for a person)",
    ),
    (
        "cnpg reconciliation disabled",
        pg("Cluster in healthy state", annotations={"cnpg.io/reconciliation": "disabled"}),
        S,
        "reconciliation disabled",
    ),
    (
        "cnpg hibernated",
        pg(
            "Cluster in healthy state",
            cond("cnpg.io/hibernation", "True", "Hibernated", "Cluster has been hibernated"),
        ),
        S,
        "hibernated",
    ),
    (
        "cnpg unknown phase, ready",
        pg("Something new", cond("Ready", "True")),
        H,
        "Ready is True (phase Something new)",
    ),
    ("cnpg new", pg(None), P, "waiting for the operator to report a phase"),
    ("cnpg malformed", pg(None, "x", instances="three", phaseReason=4), P, "waiting"),
    ("cnpg backup completed", obj(CNPG, "Backup", status={"phase": "completed"}), H, "backup completed"),
    (
        "cnpg backup failed",
        obj(
            CNPG, "Backup", status={"phase": "failed", "error": "can't execute backup: no barmanObjectStore"}
        ),
        D,
        "backup failed: can't execute backup",
    ),
    ("cnpg backup running", obj(CNPG, "Backup", age=300, status={"phase": "running"}), P, "backup running"),
    (
        "cnpg database applied",
        obj(CNPG, "Database", generation=1, status={"observedGeneration": 1, "applied": True}),
        H,
        "applied",
    ),
    (
        "cnpg database not applied",
        obj(
            CNPG,
            "Database",
            generation=1,
            status={"observedGeneration": 1, "applied": False, "message": 'role "app2" does not exist'},
        ),
        D,
        'not applied: role "app2" does not exist',
    ),
]


def sealed(*conds: Any, gen: int = 1, observed: int = 1, age: float = 2) -> dict[str, Any]:
    return obj(
        "bitnami.com/v1alpha1",
        "SealedSecret",
        name="db",
        age=age,
        generation=gen,
        spec={"encryptedData": {"password": "AgBy3i4OJSWK+PiTySYZZA=="}},
        status={"observedGeneration": observed, "conditions": list(conds)},
    )


SEALED: list[Case] = [
    ("sealedsecret unsealed", sealed(cond("Synced", "True")), H, "Synced is True"),
    (
        "sealedsecret wrong key",
        sealed(cond("Synced", "False", "ErrUnsealFailed", "no key could decrypt secret (password)")),
        D,
        "Synced is False: ErrUnsealFailed: no key could decrypt secret (password) (re-seal it",
    ),
    (
        "sealedsecret generation not observed",
        sealed(cond("Synced", "True"), gen=2),
        P,
        "observe generation 2",
    ),
    (
        "sealedsecret no controller",
        obj("bitnami.com/v1alpha1", "SealedSecret", age=30),
        D,
        "waiting for the sealed-secrets controller",
    ),
    (
        "sealedsecret malformed",
        obj("bitnami.com/v1alpha1", "SealedSecret", age=1, status={"conditions": "Synced"}),
        P,
        "waiting",
    ),
]

SNAP = "snapshot.storage.k8s.io/v1"
SNAPSHOT: list[Case] = [
    (
        "volumesnapshot ready",
        obj(
            SNAP,
            "VolumeSnapshot",
            status={
                "readyToUse": True,
                "restoreSize": "10Gi",
                "boundVolumeSnapshotContentName": "snapcontent-1",
            },
        ),
        H,
        "ready to use (restore size 10Gi)",
    ),
    (
        "volumesnapshot error",
        obj(
            SNAP,
            "VolumeSnapshot",
            status={
                "readyToUse": False,
                "error": {
                    "message": "Failed to check and update snapshot content: rpc error: code = Internal",
                    "time": "2024-05-01T11:50:00Z",
                },
            },
        ),
        D,
        "status.error: Failed to check and update snapshot content",
    ),
    (
        "volumesnapshot in progress",
        obj(SNAP, "VolumeSnapshot", age=2, status={"readyToUse": False}),
        P,
        "waiting for the snapshot",
    ),
    (
        "volumesnapshotcontent ready",
        obj(SNAP, "VolumeSnapshotContent", status={"readyToUse": True}),
        H,
        "ready to use",
    ),
    ("volumesnapshotclass", obj(SNAP, "VolumeSnapshotClass"), H, "no status to check"),
    (
        "volumesnapshot malformed",
        obj(SNAP, "VolumeSnapshot", age=1, status={"readyToUse": "yes", "error": "x", "restoreSize": True}),
        P,
        "waiting",
    ),
]

CASES: list[Case] = CNPG_CASES + SEALED + SNAPSHOT


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_operators(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
