"""Flux: HelmRelease, Kustomization, sources, notification kinds (conditions as fluxcd/pkg's
runtime writes them)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, S, check, cond, ids, obj


def hr(*conds: Any, gen: int = 2, observed: int = 2, age: float = 3, spec: Any = None) -> dict[str, Any]:
    return obj(
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        name="podinfo",
        namespace="flux-system",
        age=age,
        generation=gen,
        spec={"interval": "10m", "chart": {"spec": {"chart": "podinfo"}}, **(spec or {})},
        status={"observedGeneration": observed, "conditions": list(conds)},
    )


def ks(*conds: Any, gen: int = 5, observed: int = 5) -> dict[str, Any]:
    return obj(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        name="apps",
        namespace="flux-system",
        age=3,
        generation=gen,
        spec={
            "interval": "5m",
            "path": "./apps",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
        status={"observedGeneration": observed, "conditions": list(conds)},
    )


def source(
    kind: str, *conds: Any, api: str = "source.toolkit.fluxcd.io/v1", spec: Any = None
) -> dict[str, Any]:
    return obj(
        api,
        kind,
        name="flux-system",
        age=3,
        generation=1,
        spec=spec or {"interval": "1m"},
        status={"observedGeneration": 1, "conditions": list(conds)},
    )


INSTALL_FAILED = (
    "Helm install failed for release flux-system/podinfo with chart podinfo@6.5.0: context deadline exceeded"
)
CASES: list[Case] = [
    (
        "helmrelease ready",
        hr(
            cond(
                "Ready",
                "True",
                "InstallSucceeded",
                "Helm install succeeded for release flux-system/podinfo.v1 with chart podinfo@6.5.0",
            )
        ),
        H,
        "Ready is True: Helm install succeeded",
    ),
    (
        "helmrelease installing",
        hr(
            cond("Reconciling", "True", "Progressing", "Running 'install' action with timeout of 5m0s"),
            cond("Ready", "Unknown", "Progressing", "Running 'install' action with timeout of 5m0s"),
        ),
        P,
        "Ready is Unknown: Progressing",
    ),
    (
        "helmrelease retrying after a failure",
        hr(
            cond("Ready", "False", "InstallFailed", INSTALL_FAILED, observedGeneration=2),
            cond("Released", "False", "InstallFailed", INSTALL_FAILED),
            cond("Reconciling", "True", "ProgressingWithRetry", "Detecting drift for revision 0"),
            observed=1,
        ),
        D,
        f"Ready is False: InstallFailed: {INSTALL_FAILED} (retrying: ProgressingWithRetry",
    ),
    (
        "helmrelease failure of an older generation, new one reconciling",
        hr(
            cond(
                "Ready",
                "False",
                "UpgradeFailed",
                "values don't meet the specifications of the schema",
                observedGeneration=2,
            ),
            cond("Reconciling", "True", "ProgressingWithRetry", "Running 'upgrade' action"),
            gen=3,
        ),
        P,
        "reconciling generation 3; the previous one failed",
    ),
    (
        "helmrelease stalled",
        hr(
            cond("Stalled", "True", "RetriesExceeded", "Failed to install after 1 attempt(s)"),
            cond("Ready", "False", "InstallFailed", INSTALL_FAILED),
        ),
        D,
        "stalled: RetriesExceeded: Failed to install after 1 attempt(s)",
    ),
    (
        "helmrelease suspended",
        hr(cond("Ready", "True"), spec={"suspend": True}),
        S,
        "suspended (spec.suspend is true)",
    ),
    (
        "helmrelease waiting for a dependency",
        hr(
            cond("Ready", "False", "DependencyNotReady", "dependency 'flux-system/cert-manager' is not ready")
        ),
        P,
        "waiting for a dependency: Ready is False: DependencyNotReady",
    ),
    (
        "kustomization applied",
        ks(cond("Ready", "True", "ReconciliationSucceeded", "Applied revision: main@sha1:5f2a9c1")),
        H,
        "Applied revision: main@sha1:5f2a9c1",
    ),
    (
        "kustomization health check failed",
        ks(
            cond(
                "Ready",
                "False",
                "HealthCheckFailed",
                "health check failed after 5m0s: timeout waiting for:"
                " [Deployment/apps/web status: 'InProgress']",
            ),
            cond("Healthy", "False", "HealthCheckFailed", "timeout"),
        ),
        D,
        "Ready is False: HealthCheckFailed",
    ),
    (
        "kustomization build failed",
        ks(
            cond("Ready", "False", "BuildFailed", "kustomize build failed: accumulating resources"),
            gen=6,
            observed=5,
        ),
        D,
        "Ready is False: BuildFailed",
    ),
    (
        "kustomization source not fetched yet",
        ks(cond("Ready", "False", "ArtifactFailed", "Source artifact not found, retrying in 30s")),
        P,
        "waiting for the source: Ready is False: ArtifactFailed",
    ),
    ("kustomization new generation", ks(cond("Ready", "True"), gen=6, observed=5), P, "observe generation 6"),
    (
        "gitrepository ready",
        source(
            "GitRepository",
            cond("Ready", "True", "Succeeded", "stored artifact for revision 'main@sha1:5f2a9c1'"),
        ),
        H,
        "stored artifact for revision",
    ),
    (
        "gitrepository auth failed",
        source(
            "GitRepository",
            cond(
                "FetchFailed",
                "True",
                "AuthenticationFailed",
                "failed to checkout and determine revision: authentication required",
            ),
            cond(
                "Ready",
                "False",
                "AuthenticationFailed",
                "failed to checkout and determine revision: authentication required",
            ),
        ),
        D,
        "Ready is False: AuthenticationFailed",
    ),
    (
        "helmrepository oci has no status",
        obj(
            "source.toolkit.fluxcd.io/v1",
            "HelmRepository",
            spec={"type": "oci", "url": "oci://ghcr.io/stefanprodan/charts"},
        ),
        H,
        "OCI HelmRepository is not reconciled",
    ),
    (
        "ocirepository fetching",
        source(
            "OCIRepository",
            cond("Reconciling", "True", "Progressing", "building artifact"),
            cond("Ready", "Unknown", "Progressing", "reconciliation in progress"),
            api="source.toolkit.fluxcd.io/v1beta2",
        ),
        P,
        "Ready is Unknown",
    ),
    ("bucket suspended", source("Bucket", spec={"suspend": True}), S, "suspended"),
    ("alert without status", obj("notification.toolkit.fluxcd.io/v1beta3", "Alert"), H, "has no status"),
    (
        "kustomization not reconciled yet",
        obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization", age=2),
        P,
        "waiting for the Flux controller",
    ),
    ("helmrelease malformed", hr("Ready", {"type": "Ready", "status": ["False"]}, observed=2), P, "Ready is"),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_flux(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
