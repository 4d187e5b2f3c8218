"""Health rules: table tests with status blocks as the API server and controllers write them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from moorage.engine.health import (
    HAS_RULE,
    SEVERITY,
    Health,
    HealthStatus,
    addon_health,
    assess,
    has_rule,
    worst,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
H, P, D, S, M, U = (
    HealthStatus.HEALTHY,
    HealthStatus.PROGRESSING,
    HealthStatus.DEGRADED,
    HealthStatus.SUSPENDED,
    HealthStatus.MISSING,
    HealthStatus.UNKNOWN,
)


def ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def obj(api: str, kind: str, *, spec: Any = None, status: Any = None, **meta: Any) -> dict[str, Any]:
    metadata = {"name": "x", "namespace": "ns", "creationTimestamp": ago(meta.pop("age", 60)), **meta}
    out: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": metadata}
    if spec is not None:
        out["spec"] = spec
    if status is not None:
        out["status"] = status
    return out


def cond(type_: str, status: str, reason: str = "", message: str = "", age: float = 1) -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": ago(age),
        "lastUpdateTime": ago(age),
    }


def deploy(desired: int = 3, gen: int = 4, observed: int = 4, **status: Any) -> dict[str, Any]:
    return obj(
        "apps/v1",
        "Deployment",
        generation=gen,
        annotations={"deployment.kubernetes.io/revision": "4"},
        spec={"replicas": desired, "progressDeadlineSeconds": 600, **status.pop("spec", {})},
        status={"observedGeneration": observed, **status},
    )


CASES: list[tuple[str, dict[str, Any], HealthStatus, str]] = [
    # ---- Deployment
    (
        "deployment healthy",
        deploy(3, replicas=3, updatedReplicas=3, readyReplicas=3, availableReplicas=3),
        H,
        "3 of 3 replicas available at revision 4",
    ),
    (
        "deployment rolling: new replicas not available",
        deploy(3, replicas=3, updatedReplicas=3, availableReplicas=1),
        P,
        "1 of 3 replicas available; waiting for rollout of revision 4",
    ),
    (
        "deployment rolling: not all updated",
        deploy(3, replicas=4, updatedReplicas=1, availableReplicas=3),
        P,
        "1 of 3 replicas updated; waiting for rollout of revision 4",
    ),
    (
        "deployment old replicas terminating",
        deploy(2, replicas=3, updatedReplicas=2, availableReplicas=2),
        P,
        "1 old replica pending termination",
    ),
    (
        "deployment generation not observed",
        deploy(3, gen=5, observed=4, replicas=3, updatedReplicas=3, availableReplicas=3),
        P,
        "observe generation 5",
    ),
    (
        "deployment progress deadline exceeded",
        deploy(
            2,
            replicas=2,
            updatedReplicas=2,
            availableReplicas=0,
            conditions=[
                cond(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                ),
                cond(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    'ReplicaSet "web-7d4b9c" has timed out progressing.',
                ),
            ],
        ),
        D,
        "exceeded its progress deadline (600s): 0 of 2 replicas available",
    ),
    ("deployment paused", deploy(2, spec={"paused": True}, availableReplicas=2), S, "rollout is paused"),
    ("deployment scaled to zero", deploy(0, replicas=0), H, "scaled to 0 replicas"),
    # ---- StatefulSet
    (
        "statefulset ready",
        obj(
            "apps/v1",
            "StatefulSet",
            generation=2,
            spec={"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
            status={
                "observedGeneration": 2,
                "replicas": 3,
                "readyReplicas": 3,
                "currentReplicas": 3,
                "updatedReplicas": 3,
                "currentRevision": "db-5f8",
                "updateRevision": "db-5f8",
            },
        ),
        H,
        "3 of 3 pods ready at revision db-5f8",
    ),
    (
        "statefulset rolling update",
        obj(
            "apps/v1",
            "StatefulSet",
            generation=3,
            age=2,
            spec={"replicas": 3},
            status={
                "observedGeneration": 3,
                "replicas": 3,
                "readyReplicas": 3,
                "updatedReplicas": 1,
                "currentRevision": "db-5f8",
                "updateRevision": "db-6a1",
            },
        ),
        P,
        "1 of 3 pods updated to revision db-6a1",
    ),
    (
        "statefulset partition complete",
        obj(
            "apps/v1",
            "StatefulSet",
            generation=3,
            spec={
                "replicas": 3,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            },
            status={
                "observedGeneration": 3,
                "replicas": 3,
                "readyReplicas": 3,
                "updatedReplicas": 1,
                "currentRevision": "db-5f8",
                "updateRevision": "db-6a1",
            },
        ),
        H,
        "partitioned rollout complete",
    ),
    (
        "statefulset OnDelete",
        obj(
            "apps/v1",
            "StatefulSet",
            generation=3,
            spec={"replicas": 2, "updateStrategy": {"type": "OnDelete"}},
            status={
                "observedGeneration": 3,
                "replicas": 2,
                "readyReplicas": 2,
                "updatedReplicas": 0,
                "currentRevision": "a",
                "updateRevision": "b",
            },
        ),
        H,
        "OnDelete",
    ),
    (
        "statefulset pods not ready, recent",
        obj(
            "apps/v1",
            "StatefulSet",
            generation=1,
            age=3,
            spec={"replicas": 3},
            status={"observedGeneration": 1, "replicas": 3, "readyReplicas": 1},
        ),
        P,
        "1 of 3 pods ready",
    ),
    (
        "statefulset pods not ready past the deadline",
        obj(
            "apps/v1",
            "StatefulSet",
            generation=1,
            age=30,
            spec={"replicas": 3},
            status={"observedGeneration": 1, "replicas": 3, "readyReplicas": 1},
        ),
        D,
        "1 of 3 pods ready; no progress for 30m (deadline 10m)",
    ),
    # ---- DaemonSet / ReplicaSet
    (
        "daemonset available",
        obj(
            "apps/v1",
            "DaemonSet",
            generation=1,
            status={
                "observedGeneration": 1,
                "desiredNumberScheduled": 3,
                "currentNumberScheduled": 3,
                "updatedNumberScheduled": 3,
                "numberAvailable": 3,
                "numberReady": 3,
            },
        ),
        H,
        "3 of 3 pods available",
    ),
    (
        "daemonset rolling",
        obj(
            "apps/v1",
            "DaemonSet",
            generation=2,
            age=2,
            status={
                "observedGeneration": 2,
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 1,
                "numberAvailable": 3,
            },
        ),
        P,
        "1 of 3 pods updated",
    ),
    (
        "replicaset failure",
        obj(
            "apps/v1",
            "ReplicaSet",
            generation=1,
            spec={"replicas": 2},
            status={
                "observedGeneration": 1,
                "replicas": 0,
                "conditions": [
                    cond(
                        "ReplicaFailure",
                        "True",
                        "FailedCreate",
                        'pods "web-" is forbidden: exceeded quota: compute',
                    )
                ],
            },
        ),
        D,
        "exceeded quota",
    ),
    # ---- Pod
    (
        "pod running and ready",
        obj(
            "v1",
            "Pod",
            spec={"restartPolicy": "Always"},
            status={
                "phase": "Running",
                "conditions": [cond("Ready", "True")],
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": ago(5)}},
                    }
                ],
            },
        ),
        H,
        "running and ready",
    ),
    (
        "pod crashloop",
        obj(
            "v1",
            "Pod",
            spec={"restartPolicy": "Always"},
            status={
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 5,
                        "state": {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": "back-off 2m40s restarting failed container=app",
                            }
                        },
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                    }
                ],
            },
        ),
        D,
        "container app is waiting: CrashLoopBackOff (restarted 5 times)",
    ),
    (
        "pod image pull backoff",
        obj(
            "v1",
            "Pod",
            age=1,
            status={
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": 'Back-off pulling image "nginx:does-not-exist"',
                            }
                        },
                    }
                ],
            },
        ),
        D,
        "ImagePullBackOff",
    ),
    (
        "pod init container config error",
        obj(
            "v1",
            "Pod",
            status={
                "phase": "Pending",
                "initContainerStatuses": [
                    {
                        "name": "migrate",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": 'secret "db" not found',
                            }
                        },
                    }
                ],
            },
        ),
        D,
        'init container migrate is waiting: CreateContainerConfigError: secret "db" not found',
    ),
    (
        "pod unschedulable, recent",
        obj(
            "v1",
            "Pod",
            age=2,
            status={
                "phase": "Pending",
                "conditions": [
                    cond(
                        "PodScheduled",
                        "False",
                        "Unschedulable",
                        "0/3 nodes are available: 3 Insufficient cpu.",
                        age=2,
                    )
                ],
            },
        ),
        P,
        "not scheduled: Unschedulable: 0/3 nodes are available",
    ),
    (
        "pod unschedulable for long",
        obj(
            "v1",
            "Pod",
            age=45,
            status={
                "phase": "Pending",
                "conditions": [
                    cond(
                        "PodScheduled",
                        "False",
                        "Unschedulable",
                        "0/3 nodes are available: 3 Insufficient cpu.",
                        age=45,
                    )
                ],
            },
        ),
        D,
        "no progress for 45m",
    ),
    ("pod succeeded", obj("v1", "Pod", status={"phase": "Succeeded"}), H, "completed"),
    (
        "pod evicted",
        obj(
            "v1",
            "Pod",
            status={
                "phase": "Failed",
                "reason": "Evicted",
                "message": "The node was low on resource: memory.",
            },
        ),
        D,
        "pod failed: Evicted: The node was low on resource: memory.",
    ),
    (
        "pod failed with exit code",
        obj(
            "v1",
            "Pod",
            spec={"restartPolicy": "Never"},
            status={
                "phase": "Failed",
                "containerStatuses": [
                    {"name": "job", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
                ],
            },
        ),
        D,
        "container job exited with code 137 (OOMKilled)",
    ),
    (
        "pod restartPolicy Never running",
        obj("v1", "Pod", age=120, spec={"restartPolicy": "Never"}, status={"phase": "Running"}),
        P,
        "running to completion (restartPolicy Never)",
    ),
    ("pod unknown", obj("v1", "Pod", status={"phase": "Unknown"}), U, "Unknown"),
    # ---- Job
    (
        "job complete",
        obj("batch/v1", "Job", status={"succeeded": 1, "conditions": [cond("Complete", "True")]}),
        H,
        "job completed (1 succeeded)",
    ),
    (
        "job failed",
        obj(
            "batch/v1",
            "Job",
            status={
                "failed": 7,
                "conditions": [
                    cond(
                        "Failed",
                        "True",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
                ],
            },
        ),
        D,
        "job failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
    ),
    ("job suspended", obj("batch/v1", "Job", spec={"suspend": True}, status={}), S, "suspended"),
    ("job running long", obj("batch/v1", "Job", age=300, status={"active": 1}), P, "job running: 1 active"),
    # ---- PVC
    (
        "pvc bound",
        obj("v1", "PersistentVolumeClaim", spec={"volumeName": "pvc-1f2e"}, status={"phase": "Bound"}),
        H,
        "bound to volume pvc-1f2e",
    ),
    (
        "pvc pending unused",
        obj("v1", "PersistentVolumeClaim", age=500, status={"phase": "Pending"}),
        P,
        "WaitForFirstConsumer",
    ),
    (
        "pvc pending with a consumer, long",
        obj(
            "v1",
            "PersistentVolumeClaim",
            age=30,
            annotations={"volume.kubernetes.io/selected-node": "node-2"},
            status={"phase": "Pending"},
        ),
        D,
        "provisioned on node-2",
    ),
    (
        "pvc lost",
        obj("v1", "PersistentVolumeClaim", spec={"volumeName": "pv-9"}, status={"phase": "Lost"}),
        D,
        "lost",
    ),
    # ---- Service / Ingress
    (
        "service clusterip",
        obj("v1", "Service", spec={"type": "ClusterIP"}, status={"loadBalancer": {}}),
        H,
        "ClusterIP",
    ),
    (
        "service lb ready",
        obj(
            "v1",
            "Service",
            spec={"type": "LoadBalancer"},
            status={"loadBalancer": {"ingress": [{"ip": "203.0.113.7", "ipMode": "VIP"}]}},
        ),
        H,
        "203.0.113.7",
    ),
    (
        "service lb pending",
        obj("v1", "Service", age=2, spec={"type": "LoadBalancer"}, status={"loadBalancer": {}}),
        P,
        "load balancer",
    ),
    (
        "service lb stuck",
        obj("v1", "Service", age=60, spec={"type": "LoadBalancer"}, status={"loadBalancer": {}}),
        D,
        "no progress for 1h",
    ),
    (
        "ingress with address",
        obj(
            "networking.k8s.io/v1",
            "Ingress",
            status={"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}},
        ),
        H,
        "lb.example.com",
    ),
    (
        "ingress waiting",
        obj("networking.k8s.io/v1", "Ingress", age=1, status={"loadBalancer": {}}),
        P,
        "ingress controller",
    ),
    # ---- HPA
    (
        "hpa healthy, limited",
        obj(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            spec={"minReplicas": 2, "maxReplicas": 5},
            status={
                "currentReplicas": 5,
                "desiredReplicas": 5,
                "conditions": [
                    cond("AbleToScale", "True", "ReadyForNewScale"),
                    cond("ScalingActive", "True", "ValidMetricFound"),
                    cond(
                        "ScalingLimited",
                        "True",
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum",
                    ),
                ],
            },
        ),
        H,
        "5 replicas (desired 5, allowed 2-5); at its replica limit",
    ),
    (
        "hpa missing metrics",
        obj(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            spec={"maxReplicas": 5},
            status={
                "conditions": [
                    cond("AbleToScale", "True", "SucceededGetScale"),
                    cond(
                        "ScalingActive",
                        "False",
                        "FailedGetResourceMetric",
                        "the HPA was unable to compute the replica count: failed to get cpu utilization",
                    ),
                ]
            },
        ),
        P,  # waiting for metrics, not broken (issue 14); Degraded once it lasts past the deadline
        "ScalingActive is False: FailedGetResourceMetric",
    ),
    (
        "hpa v1 conditions in annotation",
        obj(
            "autoscaling/v1",
            "HorizontalPodAutoscaler",
            spec={"maxReplicas": 3},
            annotations={
                "autoscaling.alpha.kubernetes.io/conditions": json.dumps(
                    [cond("AbleToScale", "False", "FailedGetScale", 'deployments/scale.apps "web" not found')]
                )
            },
            status={"currentReplicas": 0, "desiredReplicas": 0},
        ),
        D,
        "FailedGetScale",
    ),
    (
        "hpa no conditions yet",
        obj("autoscaling/v2", "HorizontalPodAutoscaler", age=1, status={}),
        P,
        "waiting for the autoscaler",
    ),
    # ---- APIService
    (
        "apiservice available",
        obj(
            "apiregistration.k8s.io/v1",
            "APIService",
            status={"conditions": [cond("Available", "True", "Passed")]},
        ),
        H,
        "available",
    ),
    (
        "apiservice unavailable, recent",
        obj(
            "apiregistration.k8s.io/v1",
            "APIService",
            status={
                "conditions": [
                    cond(
                        "Available",
                        "False",
                        "MissingEndpoints",
                        "endpoints for service/metrics-server have no addresses",
                        age=3,
                    )
                ]
            },
        ),
        P,
        "MissingEndpoints",
    ),
    (
        "apiservice unavailable for long",
        obj(
            "apiregistration.k8s.io/v1",
            "APIService",
            status={
                "conditions": [
                    cond("Available", "False", "FailedDiscoveryCheck", "failing or missing response", age=25)
                ]
            },
        ),
        D,
        "FailedDiscoveryCheck: failing or missing response; no progress for 25m",
    ),
    # ---- CRD
    (
        "crd established",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            spec={"group": "cert-manager.io", "names": {"plural": "certificates"}},
            status={
                "conditions": [
                    cond("NamesAccepted", "True", "NoConflicts"),
                    cond("Established", "True", "InitialNamesAccepted"),
                ]
            },
        ),
        H,
        "serving certificates.cert-manager.io",
    ),
    (
        "crd name conflict",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            status={
                "conditions": [
                    cond("NamesAccepted", "False", "ListKindConflict", '"FooList" is already in use')
                ]
            },
        ),
        D,
        "names not accepted",
    ),
    # ---- generic custom resources
    (
        "cr ready",
        obj(
            "cert-manager.io/v1",
            "Certificate",
            generation=1,
            status={
                "conditions": [
                    cond("Ready", "True", "Ready", "Certificate is up to date and has not expired")
                ]
            },
        ),
        H,
        "Ready is True: Certificate is up to date",
    ),
    (
        "cr ready false",
        obj(
            "cert-manager.io/v1",
            "Certificate",
            generation=1,
            status={"conditions": [cond("Ready", "False", "Failed", "issuer letsencrypt not found")]},
        ),
        D,
        "Ready is False: Failed: issuer letsencrypt not found",
    ),
    (
        "flux reconciling",
        obj(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            generation=2,
            status={
                "observedGeneration": 2,
                "conditions": [
                    cond("Reconciling", "True", "Progressing", "Fulfilling prerequisites"),
                    cond("Ready", "Unknown", "Progressing", "Reconciliation in progress"),
                ],
            },
        ),
        P,
        "Ready is Unknown",
    ),
    (
        "flux stalled",
        obj(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            generation=2,
            status={
                "observedGeneration": 2,
                "conditions": [
                    cond("Stalled", "True", "RetriesExceeded", "Failed to install after 1 attempt(s)"),
                    cond("Ready", "False", "InstallFailed", "context deadline exceeded"),
                ],
            },
        ),
        D,
        "stalled: RetriesExceeded",
    ),
    (
        "cr generation not observed",
        obj(
            "example.com/v1",
            "Widget",
            generation=3,
            age=1,
            status={"observedGeneration": 2, "conditions": [cond("Ready", "True")]},
        ),
        P,
        "observe generation 3",
    ),
    (
        "cr suspended",
        obj("source.toolkit.fluxcd.io/v1", "GitRepository", spec={"suspend": True}),
        S,
        "suspended",
    ),
    ("cr without status", obj("example.com/v1", "Widget"), H, "no health rule for Widget"),
    ("configmap", obj("v1", "ConfigMap"), H, "has no status to check"),
    # ---- deletion
    (
        "being deleted",
        obj(
            "v1",
            "Service",
            deletionTimestamp=ago(2),
            finalizers=["service.kubernetes.io/load-balancer-cleanup"],
        ),
        P,
        "being deleted; waiting for finalizers service.kubernetes.io/load-balancer-cleanup",
    ),
    (
        "stuck deleting",
        obj("example.com/v1", "Widget", deletionTimestamp=ago(90), finalizers=["x/y"]),
        D,
        "stuck in deletion for 1h30m",
    ),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=[c[0] for c in CASES])
def test_rules(name: str, live: dict[str, Any], status: HealthStatus, reason: str) -> None:
    health = assess(live, NOW)
    assert health.status is status, health
    assert reason in health.reason, health


def test_missing_and_malformed() -> None:
    assert assess(None, NOW) == Health(M, "does not exist in the cluster")
    weird = obj("apps/v1", "Deployment", age=1, spec={"replicas": "three"}, status=["not", "a", "map"])
    assert assess(weird, NOW).status in (H, P)  # never crashes on odd shapes
    broken = obj("example.com/v1", "Widget")
    broken["metadata"] = {"deletionTimestamp": 12}  # not a timestamp: ignored
    assert assess(broken, NOW).status is H
    assert assess(["not", "an", "object"], NOW).status is U  # type: ignore[arg-type]


def test_rule_errors_become_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    from moorage.engine import health

    def boom(obj: Any, ctx: Any) -> Health:
        raise KeyError("status")

    monkeypatch.setitem(health.RULES, ("apps", "Deployment"), boom)
    result = assess(deploy(), NOW)
    assert result.status is U
    assert "could not assess health: KeyError" in result.reason


def test_progress_deadline_is_a_parameter() -> None:
    svc = obj("v1", "Service", age=20, spec={"type": "LoadBalancer"}, status={"loadBalancer": {}})
    assert assess(svc, NOW).status is D
    assert assess(svc, NOW, progress_deadline=timedelta(hours=1)).status is P


def test_deadline_counts_from_the_latest_activity() -> None:
    sts = obj(
        "apps/v1",
        "StatefulSet",
        generation=2,
        age=600,
        spec={"replicas": 3},
        status={"observedGeneration": 2, "readyReplicas": 2},
    )
    assert assess(sts, NOW).status is D
    sts["metadata"]["managedFields"] = [
        {"manager": "moorage", "operation": "Apply", "time": ago(400)},
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "subresource": "status",
            "time": ago(2),
        },
    ]
    assert assess(sts, NOW).status is P


def test_has_rule() -> None:
    assert has_rule("apps", "Deployment")
    assert HAS_RULE("", "PersistentVolumeClaim")
    assert HAS_RULE("apiextensions.k8s.io", "CustomResourceDefinition")
    assert HAS_RULE("", "ConfigMap")
    assert HAS_RULE("cert-manager.io", "Certificate")  # a dedicated rule since issue 14
    assert not HAS_RULE("example.com", "Widget")
    assert not HAS_RULE("", "Deployment")


# --------------------------------------------------------------------------- aggregation


def test_severity_order() -> None:
    assert list(SEVERITY) == [D, M, P, S, U, H]
    for i, bad in enumerate(SEVERITY):
        for good in SEVERITY[i + 1 :]:
            assert worst([Health(good, "g"), Health(bad, "b")]).status is bad
    assert worst([]).status is H


def test_addon_health_names_the_resource() -> None:
    resources = [
        ("Service apps/web", Health(H, "ClusterIP service")),
        ("Deployment apps/web", Health(P, "0 of 2 replicas available; waiting for rollout of revision 1")),
        ("Deployment apps/worker", Health(P, "1 of 2 replicas available")),
    ]
    result = addon_health(resources, strict=False)
    assert result.status is P
    assert result.reason == (
        "Deployment apps/web: 0 of 2 replicas available; waiting for rollout of revision 1 "
        "(also Progressing: Deployment apps/worker)"
    )
    assert result.resource == "Deployment apps/web"
    assert result.acceptable
    assert not addon_health(resources, strict=True).acceptable


@pytest.mark.parametrize(
    ("status", "strict", "acceptable"),
    [
        (H, True, True),
        (P, True, False),
        (S, True, False),
        (U, True, False),
        (H, False, True),
        (P, False, True),
        (S, False, True),
        (U, False, True),
        (D, False, False),
        (M, False, False),
        (D, True, False),
        (M, True, False),
    ],
)
def test_acceptable(status: HealthStatus, strict: bool, acceptable: bool) -> None:
    result = addon_health(
        [("Deployment apps/web", Health(status, "r")), ("ConfigMap apps/c", Health(H, "ok"))], strict
    )
    assert result.acceptable is acceptable
    assert result.status is status


def test_addon_health_all_healthy_and_empty() -> None:
    ok = addon_health([("A", Health(H, "a")), ("B", Health(H, "b"))], strict=True)
    assert (ok.status, ok.reason, ok.acceptable, ok.resource) == (H, "all 2 resources healthy", True, None)
    empty = addon_health([], strict=True)
    assert empty.status is H
    assert empty.acceptable
