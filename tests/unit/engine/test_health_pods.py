"""A workload that is not Healthy, judged by its pods (engine/health/pods.py), and the sweep's scan
that lists those pods only when some workload is not Healthy."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from moorage.engine.context import EngineContext
from moorage.engine.health import (
    DEFAULT_PROGRESS_DEADLINE,
    Context,
    Health,
    HealthStatus,
    is_workload,
    owned_pods,
    with_pods,
)
from moorage.engine.sweep import scan
from moorage.helm.cli import Helm
from moorage.helm.storage import Release
from moorage.kube import errors as kube_errors
from moorage.kube.client import ApiResource, KubeClient
from moorage.spec.content import ResolvedAddon, ResolvedCluster, Sensitive
from moorage.spec.models import AddonSettings, JobConfiguration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CTX = Context(now=NOW, progress_deadline=DEFAULT_PROGRESS_DEADLINE)
H, P, D, S, U = (
    HealthStatus.HEALTHY,
    HealthStatus.PROGRESSING,
    HealthStatus.DEGRADED,
    HealthStatus.SUSPENDED,
    HealthStatus.UNKNOWN,
)
IMAGE = "registry.example/nginx:never-ready"
BACKOFF = f'Back-off pulling image "{IMAGE}"'


def ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def owner(kind: str, name: str, uid: str) -> dict[str, Any]:
    api = "batch/v1" if kind == "Job" else "apps/v1"
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True}


def meta(name: str, uid: str, *owners: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {"name": name, "namespace": "apps", "uid": uid, "creationTimestamp": ago(1), **extra}
    if owners:
        out["ownerReferences"] = list(owners)
    return out


def workload(kind: str = "Deployment", name: str = "web", uid: str = "d-1") -> dict[str, Any]:
    api = "batch/v1" if kind == "Job" else "apps/v1"
    return {"apiVersion": api, "kind": kind, "metadata": meta(name, uid), "spec": {}, "status": {}}


def replicaset(name: str, uid: str, deployment_uid: str = "d-1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta(name, uid, owner("Deployment", "web", deployment_uid)),
    }


def waiting(name: str, reason: str, message: str = "", restarts: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {
        "name": name,
        "image": IMAGE,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": state},
    }


RUNNING = {"name": "app", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": ago(1)}}}
READY = [{"type": "Ready", "status": "True", "lastTransitionTime": ago(1)}]


def pod(
    name: str,
    *statuses: dict[str, Any],
    phase: str = "Pending",
    owned_by: dict[str, Any] | None = None,
    uid: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **extra_meta: Any,
) -> dict[str, Any]:
    ref = owned_by if owned_by is not None else owner("ReplicaSet", "web-7d9f", "rs-1")
    status: dict[str, Any] = {"phase": phase, "containerStatuses": list(statuses)}
    if conditions is not None:
        status["conditions"] = conditions
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, uid or f"uid-{name}", ref, **extra_meta),
        "spec": {"containers": [{"name": s["name"], "image": IMAGE} for s in statuses]},
        "status": status,
    }


PROGRESSING = Health(P, "0 of 1 replicas available; waiting for rollout of revision 1")
BAD = pod("web-7d9f-abcde", waiting("app", "ImagePullBackOff", BACKOFF))

# ---------------------------------------------------------------------------------------- with_pods

CASES: list[tuple[str, Health, dict[str, Any], list[dict[str, Any]], HealthStatus, str]] = [
    (
        "image pull back-off names the pod and the container",
        PROGRESSING,
        workload(),
        [BAD],
        D,
        f"pod web-7d9f-abcde: container app is waiting: ImagePullBackOff: {BACKOFF}",
    ),
    (
        "crash loop, with its restarts",
        PROGRESSING,
        workload(),
        [
            pod(
                "web-7d9f-crash",
                waiting("app", "CrashLoopBackOff", "back-off 5m0s restarting failed container", 7),
                phase="Running",
            )
        ],
        D,
        "pod web-7d9f-crash: container app is waiting: CrashLoopBackOff (restarted 7 times): back-off 5m0s",
    ),
    (
        "ErrImagePull of an init container",
        Health(P, "0 of 1 ready"),
        workload("StatefulSet", "db"),
        [
            {
                **pod("db-0", owned_by=owner("StatefulSet", "db", "d-1")),
                "status": {"phase": "Pending", "initContainerStatuses": [waiting("migrate", "ErrImagePull")]},
            }
        ],
        D,
        "pod db-0: init container migrate is waiting: ErrImagePull",
    ),
    (
        "an already Degraded workload gets the pod's reason",
        Health(D, "rollout of revision 2 exceeded its progress deadline (600s)"),
        workload(),
        [BAD],
        D,
        "pod web-7d9f-abcde: container app is waiting: ImagePullBackOff",
    ),
    (
        "a paused rollout whose pod cannot pull",
        Health(S, "rollout is paused (spec.paused)"),
        workload(),
        [BAD],
        D,
        "ImagePullBackOff",
    ),
    (
        "the first Degraded pod by name, the others counted",
        PROGRESSING,
        workload("DaemonSet", "agent"),
        [
            pod("agent-a", RUNNING, phase="Running", conditions=READY),
            pod("agent-b", waiting("app", "ImagePullBackOff")),
            pod("agent-c", waiting("app", "ImagePullBackOff")),
            pod("agent-d", waiting("app", "ErrImagePull")),
        ],
        D,
        "pod agent-b: container app is waiting: ImagePullBackOff (also Degraded: pods agent-c, agent-d)",
    ),
    (
        "a pod pending past the deadline",
        PROGRESSING,
        workload(),
        [pod("web-7d9f-late", waiting("app", "ContainerCreating"), creationTimestamp=ago(30))],
        D,
        "pod web-7d9f-late: pending: container app is ContainerCreating; no progress for 30m",
    ),
    # ---- unchanged
    (
        "a Healthy workload is never judged by its pods",
        Health(H, "1 of 1 replicas available"),
        workload(),
        [BAD],
        H,
        "1 of 1 replicas available",
    ),
    (
        "pods still starting: the workload's own reason",
        PROGRESSING,
        workload(),
        [pod("web-7d9f-new", waiting("app", "ContainerCreating"))],
        P,
        PROGRESSING.reason,
    ),
    ("no pods", PROGRESSING, workload(), [], P, PROGRESSING.reason),
    (
        "a pod being deleted is on its way out",
        PROGRESSING,
        workload(),
        [pod("web-old-1", waiting("app", "ImagePullBackOff"), deletionTimestamp=ago(0.1))],
        P,
        PROGRESSING.reason,
    ),
    (
        "a failed Job pod: the Job retries, its own rule judges",
        Health(P, "1 active"),
        workload("Job", "migrate"),
        [
            {
                **pod("migrate-x1", owned_by=owner("Job", "migrate", "d-1")),
                "status": {"phase": "Failed", "reason": "Error"},
            }
        ],
        P,
        "1 active",
    ),
    (
        "an evicted pod is replaced",
        PROGRESSING,
        workload(),
        [{**pod("web-7d9f-ev"), "status": {"phase": "Failed", "reason": "Evicted"}}],
        P,
        PROGRESSING.reason,
    ),
    (
        "not a workload",
        PROGRESSING,
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("web", "d-1")},
        [BAD],
        P,
        PROGRESSING.reason,
    ),
    (
        "a malformed pod never raises",
        Health(U, "could not tell"),
        workload(),
        [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta("web-x", "p"),
                "status": {"containerStatuses": "no"},
            }
        ],
        U,
        "could not tell",
    ),
]


@pytest.mark.parametrize(
    ("health", "obj", "pods", "status", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_with_pods(
    health: Health, obj: dict[str, Any], pods: list[dict[str, Any]], status: HealthStatus, reason: str
) -> None:
    found = with_pods(health, obj, pods, CTX)
    assert found.status is status, found
    assert reason in found.reason, found


def test_with_pods_does_not_change_its_input() -> None:
    pods = [copy.deepcopy(BAD)]
    with_pods(PROGRESSING, workload(), pods, CTX)
    assert pods == [BAD]


@pytest.mark.parametrize(
    ("api_version", "kind", "expected"),
    [
        ("apps/v1", "Deployment", True),
        ("extensions/v1beta1", "Deployment", True),
        ("apps/v1", "StatefulSet", True),
        ("apps/v1", "DaemonSet", True),
        ("apps/v1", "ReplicaSet", True),
        ("batch/v1", "Job", True),
        ("batch/v1", "CronJob", False),
        ("v1", "Pod", False),
        ("v1", "Service", False),
        ("example.com/v1", "Deployment", False),
    ],
)
def test_is_workload(api_version: str, kind: str, expected: bool) -> None:
    assert is_workload({"apiVersion": api_version, "kind": kind}) is expected


# --------------------------------------------------------------------------------------- owned_pods


def names(pods: list[Any]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_deployment_pods_through_its_replicasets_by_uid() -> None:
    listed = [
        replicaset("web-7d9f", "rs-1"),
        replicaset("web-5c4b", "rs-2"),
        replicaset("web-lookalike", "rs-9", deployment_uid="d-other"),  # another Deployment's
        pod("web-7d9f-b", owned_by=owner("ReplicaSet", "web-7d9f", "rs-1")),
        pod("web-7d9f-a", owned_by=owner("ReplicaSet", "web-7d9f", "rs-1")),
        pod("web-5c4b-a", owned_by=owner("ReplicaSet", "web-5c4b", "rs-2")),
        pod("web-lookalike-a", owned_by=owner("ReplicaSet", "web-lookalike", "rs-9")),
        pod("web-7d9f-stale", owned_by=owner("ReplicaSet", "web-7d9f", "rs-gone")),  # same name, old UID
    ]
    assert names(owned_pods(workload(), listed)) == ["web-5c4b-a", "web-7d9f-a", "web-7d9f-b"]


def test_pods_owned_directly() -> None:
    for kind in ("StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        listed = [
            pod("mine", owned_by=owner(kind, "web", "d-1")),
            pod("theirs", owned_by=owner(kind, "web", "d-2")),
        ]
        assert names(owned_pods(workload(kind), listed)) == ["mine"], kind


def test_no_uid_owns_nothing_and_the_chain_stops_at_two_levels() -> None:
    nameless = workload()
    nameless["metadata"].pop("uid")
    assert owned_pods(nameless, [pod("x", owned_by={"kind": "Deployment", "name": "web"})]) == []
    # a Pod that a Pod "owns" is not followed; neither is a ReplicaSet three levels down
    deep = [
        replicaset("web-1", "rs-1"),
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta("web-1-x", "rs-2", owner("ReplicaSet", "web-1", "rs-1")),
        },
        pod("too-deep", owned_by=owner("ReplicaSet", "web-1-x", "rs-2")),
    ]
    assert owned_pods(workload(), deep) == []


# ----------------------------------------------------------------------------- the sweep's scan


def addon(name: str = "web", strict: bool = False) -> ResolvedAddon:
    return ResolvedAddon(
        name=name,
        stack="apps",
        chart_name="webapp",
        chart_version="1.0.0",
        registry_name="repo",
        registry_url="https://charts.example",
        namespace="apps",
        values=Sensitive({}, frozenset()),
        settings=AddonSettings.model_validate({"strict_health_check": strict}),
        job_configuration=JobConfiguration.model_validate({}),
        encrypted=False,
    )


MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
"""


def release() -> Release:
    return Release(
        name="web",
        namespace="apps",
        revision=1,
        status="deployed",
        chart_name="webapp",
        chart_version="1.0.0",
        app_version="1.0.0",
        last_deployed=NOW,
        values={},
        manifest=MANIFEST,
        secret_name="sh.helm.release.v1.web.v1",
        labels={},
    )


def live_deployment(available: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**meta("web", "d-1"), "generation": 1},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 600},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": available,
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": meta("web", "s-1"),
    "spec": {"type": "ClusterIP"},
}


class FakeKube:
    """GETs from `live`, LISTs from `listed` (recorded, so a test sees what the scan listed)."""

    def __init__(self, live: list[dict[str, Any]], listed: list[dict[str, Any]], fail: bool = False) -> None:
        self.live = {(o["kind"], o["metadata"]["name"]): o for o in live}
        self.listed = listed
        self.fail = fail
        self.lists: list[tuple[str, str, str | None]] = []

    async def resource(self, api_version: str, kind: str) -> ApiResource:
        group, _, version = api_version.rpartition("/")
        return ApiResource(group, version, kind, kind.lower() + "s", namespaced=True)

    async def get(self, _api_version: str, kind: str, name: str, _namespace: str | None = None) -> Any:
        return copy.deepcopy(self.live.get((kind, name)))

    async def list(self, api_version: str, kind: str, namespace: str | None = None, **_: Any) -> Any:
        self.lists.append((api_version, kind, namespace))
        if self.fail:
            raise kube_errors.Forbidden(f"pods is forbidden: cannot list {kind}")
        return [copy.deepcopy(o) for o in self.listed if o["kind"] == kind]


async def scanned(kube: FakeKube) -> tuple[Any, FakeKube]:
    ctx = EngineContext(cast(KubeClient, kube), Helm(binary="/usr/local/bin/helm"), fights=None)
    ctx.clock = lambda: NOW
    cluster = ResolvedCluster(name="dev", addons={"web": addon()})
    found = await scan(ctx, cluster, {("apps", "web"): release()})
    return found.health(addon(), NOW), kube


async def test_a_healthy_scan_lists_nothing() -> None:
    health, kube = await scanned(FakeKube([live_deployment(1), SERVICE], [BAD]))
    assert health is not None
    assert health.status is H, health
    assert kube.lists == []


async def test_an_unready_deployment_is_degraded_naming_its_container() -> None:
    listed = [replicaset("web-7d9f", "rs-1"), BAD]
    health, kube = await scanned(FakeKube([live_deployment(0), SERVICE], listed))
    assert health is not None
    assert health.status is D, health
    assert health.reason == (
        f"Deployment apps/web: pod web-7d9f-abcde: container app is waiting: ImagePullBackOff: {BACKOFF}"
    )
    assert not health.acceptable
    assert sorted(kube.lists) == [("apps/v1", "ReplicaSet", "apps"), ("v1", "Pod", "apps")]


async def test_pods_that_cannot_be_listed_leave_the_workloads_own_health() -> None:
    health, _ = await scanned(FakeKube([live_deployment(0), SERVICE], [], fail=True))
    assert health is not None
    assert health.status is P, health
    assert "0 of 1 replicas available" in health.reason
