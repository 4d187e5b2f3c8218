"""Crossplane, Cluster API, Istio, Knative."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, S, check, cond, ids, obj


def managed(
    *conds: Any, api: str = "s3.aws.upbound.io/v1beta1", kind: str = "Bucket", age: float = 3, **meta: Any
) -> dict[str, Any]:
    return obj(
        api,
        kind,
        name="logs",
        namespace=None,
        age=age,
        spec={"forProvider": {"region": "eu-west-1"}, "providerConfigRef": {"name": "default"}},
        status={"conditions": list(conds)},
        **meta,
    )


CROSSPLANE: list[Case] = [
    (
        "managed resource ready",
        managed(cond("Synced", "True", "ReconcileSuccess"), cond("Ready", "True", "Available")),
        H,
        "Ready is True",
    ),
    (
        "managed resource creating",
        managed(cond("Synced", "True", "ReconcileSuccess"), cond("Ready", "False", "Creating")),
        P,
        "Ready is False: Creating",
    ),
    (
        "managed resource reconcile error",
        managed(
            cond(
                "Synced",
                "False",
                "ReconcileError",
                "create failed: operation error S3: CreateBucket, BucketAlreadyExists",
            ),
            cond("Ready", "False", "Creating"),
        ),
        D,
        "Synced is False: ReconcileError: create failed",
    ),
    (
        "managed resource async failure",
        managed(cond("Synced", "True"), cond("LastAsyncOperation", "False", "AsyncCreateFailure", "timeout")),
        D,
        "LastAsyncOperation is False: AsyncCreateFailure",
    ),
    (
        "managed resource paused",
        managed(cond("Synced", "True"), annotations={"crossplane.io/paused": "true"}),
        S,
        "paused",
    ),
    (
        "managed resource creating for long",
        managed(cond("Ready", "False", "Creating", age=40), age=60),
        D,
        "no progress for 40m",
    ),
    (
        "composite of a user group",
        obj(
            "platform.example.org/v1alpha1",
            "XDatabase",
            age=3,
            spec={"compositionRef": {"name": "xdatabase-aws"}, "resourceRefs": []},
            status={
                "conditions": [
                    cond("Synced", "True"),
                    cond("Ready", "False", "Creating", "Unready resources: instance, subnet-group"),
                ]
            },
        ),
        P,
        "Ready is False: Creating: Unready resources: instance, subnet-group",
    ),
    (
        "claim of a user group failing",
        obj(
            "platform.example.org/v1alpha1",
            "Database",
            spec={"compositionSelector": {"matchLabels": {"provider": "aws"}}},
            status={
                "conditions": [
                    cond("Synced", "False", "ReconcileError", "cannot compose resources: no composition")
                ]
            },
        ),
        D,
        "Synced is False: ReconcileError",
    ),
    (
        "provider healthy",
        obj(
            "pkg.crossplane.io/v1",
            "Provider",
            status={
                "conditions": [
                    cond("Installed", "True", "ActivePackageRevision"),
                    cond("Healthy", "True", "HealthyPackageRevision"),
                ]
            },
        ),
        H,
        "Healthy is True",
    ),
    (
        "provider unhealthy revision",
        obj(
            "pkg.crossplane.io/v1",
            "Provider",
            age=3,
            status={
                "conditions": [
                    cond("Installed", "True"),
                    cond(
                        "Healthy", "False", "UnhealthyPackageRevision", "post establish runtime hook failed"
                    ),
                ]
            },
        ),
        P,
        "Healthy is False: UnhealthyPackageRevision",
    ),
    (
        "xrd established",
        obj(
            "apiextensions.crossplane.io/v1",
            "CompositeResourceDefinition",
            spec={"claimNames": {"kind": "Database", "plural": "databases"}},
            status={"conditions": [cond("Established", "True"), cond("Offered", "True")]},
        ),
        H,
        "established and offered",
    ),
    ("composition", obj("apiextensions.crossplane.io/v1", "Composition"), H, "no health of its own"),
    ("providerconfig", obj("aws.upbound.io/v1beta1", "ProviderConfig"), H, "no health of its own"),
    (
        "managed resource malformed",
        managed("Ready", {"type": "Synced", "status": 0}, age=1),
        P,
        "waiting for Crossplane",
    ),
]

CAPI = "cluster.x-k8s.io/v1beta1"


def capi(kind: str, spec: Any = None, *conds: Any, age: float = 3, **status: Any) -> dict[str, Any]:
    return obj(
        CAPI,
        kind,
        name="prod",
        age=age,
        generation=2,
        spec=spec or {},
        status={"observedGeneration": 2, "conditions": list(conds), **status},
    )


CLUSTERAPI: list[Case] = [
    (
        "capi cluster provisioned",
        capi("Cluster", None, cond("Ready", "True"), phase="Provisioned"),
        H,
        "phase Provisioned; Ready is True",
    ),
    (
        "capi cluster provisioning",
        capi(
            "Cluster",
            None,
            cond("Ready", "False", "WaitingForControlPlane", severity="Info"),
            phase="Provisioning",
        ),
        P,
        "phase Provisioning (Ready is False: WaitingForControlPlane)",
    ),
    (
        "capi cluster error",
        capi(
            "Cluster",
            None,
            cond(
                "Ready", "False", "InfrastructureProvisioningFailed", "VPC quota exceeded", severity="Error"
            ),
            phase="Provisioning",
        ),
        D,
        "Ready is False: InfrastructureProvisioningFailed: VPC quota exceeded",
    ),
    ("capi cluster paused", capi("Cluster", {"paused": True}, phase="Provisioned"), S, "paused"),
    (
        "capi machine failed",
        capi(
            "Machine", None, phase="Failed", failureReason="CreateError", failureMessage="instance terminated"
        ),
        D,
        "failed: CreateError: instance terminated",
    ),
    (
        "capi machine running",
        capi("Machine", None, cond("Ready", "True"), phase="Running"),
        H,
        "phase Running",
    ),
    (
        "capi machinedeployment scaling",
        capi(
            "MachineDeployment",
            {"replicas": 3},
            cond("Ready", "False", "WaitingForAvailableMachines", severity="Warning"),
            phase="ScalingUp",
            replicas=3,
            readyReplicas=1,
            updatedReplicas=3,
            availableReplicas=1,
        ),
        P,
        "1 of 3 ready, 3 updated, 1 available",
    ),
    (
        "capi machinedeployment running",
        capi(
            "MachineDeployment",
            {"replicas": 3},
            cond("Ready", "True"),
            phase="Running",
            replicas=3,
            readyReplicas=3,
            updatedReplicas=3,
            availableReplicas=3,
        ),
        H,
        "3 of 3 ready, 3 updated, 3 available",
    ),
    (
        "capi kubeadmcontrolplane ready",
        obj(
            "controlplane.cluster.x-k8s.io/v1beta1",
            "KubeadmControlPlane",
            spec={"replicas": 3},
            status={
                "replicas": 3,
                "readyReplicas": 3,
                "updatedReplicas": 3,
                "conditions": [cond("Ready", "True")],
            },
        ),
        H,
        "3 of 3 ready",
    ),
    (
        "capi machinehealthcheck blocked",
        capi(
            "MachineHealthCheck",
            None,
            cond(
                "RemediationAllowed",
                "False",
                "TooManyUnhealthy",
                "Remediation is not allowed, the number of not started or unhealthy machines"
                " exceeds maxUnhealthy",
            ),
            expectedMachines=3,
            currentHealthy=1,
        ),
        D,
        "RemediationAllowed is False: TooManyUnhealthy",
    ),
    (
        "capi malformed",
        capi("Machine", None, "x", phase=["Running"], failureMessage=3),
        P,
        "phase not reported yet",
    ),
]

ISTIO: list[Case] = [
    (
        "istio virtualservice without status",
        obj("networking.istio.io/v1", "VirtualService"),
        H,
        "istiod writes no status",
    ),
    (
        "istio analysis error",
        obj(
            "networking.istio.io/v1",
            "VirtualService",
            status={
                "observedGeneration": "1",
                "validationMessages": [
                    {
                        "documentationUrl": "https://istio.io/v1.22/docs/reference/config/analysis/ist0101/",
                        "level": "ERROR",
                        "type": {"code": "IST0101"},
                    }
                ],
            },
        ),
        D,
        "istiod analysis: IST0101 (see https://istio.io/v1.22/docs/reference/config/analysis/ist0101/)",
    ),
    (
        "istio analysis warning",
        obj(
            "networking.istio.io/v1",
            "DestinationRule",
            status={"validationMessages": [{"level": "WARNING", "type": {"code": "IST0128"}}]},
        ),
        H,
        "istiod warns: IST0128",
    ),
    (
        "istio distributing",
        obj(
            "security.istio.io/v1",
            "AuthorizationPolicy",
            age=2,
            generation=2,
            status={
                "observedGeneration": "2",
                "conditions": [cond("Reconciled", "False", "", "1/3 proxies up to date")],
            },
        ),
        P,
        "Reconciled is False",
    ),
    (
        "istiooperator healthy",
        obj("install.istio.io/v1alpha1", "IstioOperator", status={"status": "HEALTHY"}),
        H,
        "status HEALTHY",
    ),
    (
        "istiooperator error",
        obj(
            "install.istio.io/v1alpha1",
            "IstioOperator",
            status={"status": "ERROR", "componentStatus": {"Pilot": {"status": "ERROR"}}},
        ),
        D,
        "status ERROR (components: Pilot)",
    ),
    (
        "sail istio ready",
        obj(
            "sailoperator.io/v1",
            "Istio",
            status={"conditions": [cond("Reconciled", "True"), cond("Ready", "True")]},
        ),
        H,
        "Ready is True",
    ),
    (
        "istio malformed",
        obj("networking.istio.io/v1", "Gateway", status={"validationMessages": "x", "conditions": 2}),
        H,
        "no analysis errors",
    ),
]

KNATIVE = "serving.knative.dev/v1"
KNATIVE_CASES: list[Case] = [
    (
        "knative service ready",
        obj(
            KNATIVE,
            "Service",
            generation=2,
            status={
                "observedGeneration": 2,
                "url": "https://hello.apps.example.com",
                "latestReadyRevisionName": "hello-00002",
                "conditions": [
                    cond("ConfigurationsReady", "True"),
                    cond("Ready", "True"),
                    cond("RoutesReady", "True"),
                ],
            },
        ),
        H,
        "Ready is True (serving https://hello.apps.example.com; revision hello-00002)",
    ),
    (
        "knative service revision failed",
        obj(
            KNATIVE,
            "Service",
            generation=3,
            status={
                "observedGeneration": 3,
                "conditions": [
                    cond(
                        "ConfigurationsReady",
                        "False",
                        "RevisionFailed",
                        'Revision "hello-00003" failed with message:'
                        ' Unable to fetch image "ghcr.io/x/hello:v3"',
                    ),
                    cond("Ready", "False", "RevisionFailed"),
                    cond("RoutesReady", "True"),
                ],
            },
        ),
        D,
        "ConfigurationsReady is False: RevisionFailed",
    ),
    (
        "knative service rolling out",
        obj(
            KNATIVE,
            "Service",
            age=2,
            generation=1,
            status={
                "observedGeneration": 1,
                "conditions": [
                    cond("ConfigurationsReady", "Unknown"),
                    cond("Ready", "Unknown"),
                    cond("RoutesReady", "Unknown"),
                ],
            },
        ),
        P,
        "ConfigurationsReady is Unknown",
    ),
    (
        "knative generation not observed",
        obj(KNATIVE, "Service", age=2, generation=2, status={"observedGeneration": 1}),
        P,
        "observe generation 2",
    ),
    (
        "knative revision scaled to zero",
        obj(
            KNATIVE,
            "Revision",
            status={
                "conditions": [
                    cond("Active", "False", "NoTraffic", severity="Info"),
                    cond("Ready", "True"),
                    cond("ContainerHealthy", "True"),
                ]
            },
        ),
        H,
        "scaled to zero (NoTraffic)",
    ),
    (
        "knative warning does not count",
        obj(
            "eventing.knative.dev/v1",
            "Broker",
            age=2,
            status={
                "conditions": [
                    cond("DeadLetterSinkResolved", "False", severity="Warning"),
                    cond("Ready", "Unknown"),
                    cond("Addressable", "Unknown"),
                ]
            },
        ),
        P,
        "Addressable is Unknown",
    ),
    (
        "knative malformed",
        obj(KNATIVE, "Route", age=1, status={"conditions": [None, "Ready"], "url": 3}),
        P,
        "waiting for Ready",
    ),
]

CASES: list[Case] = CROSSPLANE + CLUSTERAPI + ISTIO + KNATIVE_CASES


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_platforms(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
