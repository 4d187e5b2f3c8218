"""external-secrets: ExternalSecret, ClusterExternalSecret, PushSecret, SecretStore, ClusterSecretStore."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, ago, check, cond, ids, obj

API = "external-secrets.io/v1beta1"


def es(*conds: Any, kind: str = "ExternalSecret", age: float = 2, **status: Any) -> dict[str, Any]:
    return obj(
        API,
        kind,
        name="db-credentials",
        namespace="apps",
        age=age,
        spec={"refreshInterval": "1h", "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"}},
        status={"conditions": list(conds), **status},
    )


CASES: list[Case] = [
    (
        "externalsecret synced",
        es(
            cond("Ready", "True", "SecretSynced", "Secret was synced"),
            refreshTime=ago(5),
            syncedResourceVersion="1-8f2",
        ),
        H,
        "Ready is True: Secret was synced; refreshed 5m ago",
    ),
    (
        "externalsecret sync error",
        es(cond("Ready", "False", "SecretSyncedError", "could not get secret data from provider")),
        D,
        "Ready is False: SecretSyncedError: could not get secret data from provider"
        " (check the referenced SecretStore",
    ),
    (
        "externalsecret negative condition",
        es(cond("NotReady", "True", "StoreNotReady", "SecretStore vault is not ready")),
        D,
        "NotReady: StoreNotReady: SecretStore vault is not ready",
    ),
    ("externalsecret new", es(), P, "waiting for the external-secrets controller"),
    ("externalsecret never synced", es(age=20), D, "no progress for 20m"),
    (
        "pushsecret errored",
        es(cond("Ready", "False", "Errored", "set secret failed: AccessDenied"), kind="PushSecret"),
        D,
        "Ready is False: Errored",
    ),
    (
        "clusterexternalsecret provisioned",
        es(cond("Ready", "True"), kind="ClusterExternalSecret", provisionedNamespaces=["a", "b"]),
        H,
        "provisioned in 2 namespaces",
    ),
    (
        "clusterexternalsecret failed namespaces",
        es(
            cond("Ready", "False", "", "one or more namespaces failed"),
            kind="ClusterExternalSecret",
            failedNamespaces=[
                {"namespace": "team-a", "reason": "external secret already exists in namespace"}
            ],
        ),
        D,
        "failed in 1 namespace: team-a (external secret already exists in namespace)",
    ),
    (
        "clusterexternalsecret old NotReady type",
        es(
            {"type": "NotReady", "status": "False", "message": "one or more namespaces failed"},
            kind="ClusterExternalSecret",
        ),
        D,
        "NotReady: one or more namespaces failed",
    ),
    (
        "clustersecretstore valid",
        es(
            cond("Ready", "True", "Valid", "store validated"),
            kind="ClusterSecretStore",
            capabilities="ReadWrite",
        ),
        H,
        "Ready is True: store validated (ReadWrite)",
    ),
    (
        "secretstore invalid",
        es(
            cond("Ready", "False", "InvalidProviderConfig", "unable to log in to Vault: permission denied"),
            kind="SecretStore",
        ),
        D,
        "Ready is False: InvalidProviderConfig",
    ),
    (
        "secretstore malformed",
        es("x", {"type": 1}, kind="SecretStore", capabilities=3),
        P,
        "no Ready condition",
    ),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_externalsecrets(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
