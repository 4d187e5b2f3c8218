"""CronJob, PodDisruptionBudget, HorizontalPodAutoscaler and Pod: status blocks as the
kube-controller-manager and the kubelet write them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from moorage.engine.health.cronjob import job_name
from tests.unit.engine.health.helpers import NOW, Case, D, H, P, S, ago, check, cond, ids, obj

# ---------------------------------------------------------------------------- CronJob


def cronjob(spec: Any = None, **status: Any) -> dict[str, Any]:
    return obj(
        "batch/v1", "CronJob", name="backup", spec={"schedule": "0 * * * *", **(spec or {})}, status=status
    )


CRONJOB: list[Case] = [
    ("cronjob never ran", cronjob(), H, "not run yet (schedule '0 * * * *')"),
    (
        "cronjob last run succeeded",
        cronjob(lastScheduleTime=ago(60), lastSuccessfulTime=ago(55)),
        H,
        "last run succeeded 55m ago",
    ),
    (
        "cronjob running",
        cronjob(
            lastScheduleTime=ago(2),
            lastSuccessfulTime=ago(58),
            active=[{"kind": "Job", "namespace": "ns", "name": "backup-28576078", "apiVersion": "batch/v1"}],
        ),
        H,
        "running Job backup-28576078",
    ),
    (
        "cronjob last run failed",
        cronjob(lastScheduleTime="2024-05-01T11:00:00Z", lastSuccessfulTime="2024-05-01T10:04:12Z"),
        D,
        "last run failed: Job backup-28576020 (scheduled 1h ago) did not complete; last success 1h55m ago",
    ),
    (
        "cronjob never succeeded",
        cronjob(lastScheduleTime=ago(30)),
        D,
        "no run has succeeded yet",
    ),
    (
        "cronjob suspended",
        cronjob({"suspend": True}, lastScheduleTime=ago(600)),
        S,
        "suspended (spec.suspend is true)",
    ),
    (
        "cronjob malformed",
        cronjob(active="x", lastScheduleTime=17, lastSuccessfulTime=["x"]),
        H,
        "not run yet",
    ),
]


def test_job_name_is_the_controllers() -> None:
    # kube-controller-manager: fmt.Sprintf("%s-%d", cj.Name, scheduledTime.Unix()/60)
    assert job_name("backup", datetime.fromisoformat("2024-05-01T11:00:00+00:00")) == "backup-28576020"


# ---------------------------------------------------------------------------- PodDisruptionBudget


def pdb(
    condition: dict[str, Any] | None, gen: int = 2, observed: int = 2, age: float = 2, **status: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"observedGeneration": observed, **status}
    if condition is not None:
        body["conditions"] = [condition]
    return obj(
        "policy/v1", "PodDisruptionBudget", age=age, generation=gen, spec={"minAvailable": 2}, status=body
    )


PDB: list[Case] = [
    (
        "pdb allows disruptions",
        pdb(
            cond("DisruptionAllowed", "True", "SufficientPods"),
            expectedPods=3,
            currentHealthy=3,
            desiredHealthy=2,
            disruptionsAllowed=1,
        ),
        H,
        "1 disruption allowed (3 of 3 pods healthy, 2 required)",
    ),
    (
        "pdb waiting for pods",
        pdb(
            cond("DisruptionAllowed", "False", "InsufficientPods", age=2),
            expectedPods=3,
            currentHealthy=1,
            desiredHealthy=2,
            disruptionsAllowed=0,
        ),
        P,
        "DisruptionAllowed is False: InsufficientPods: 1 of 3 pods healthy, 2 required",
    ),
    (
        "pdb pods unhealthy for long",
        pdb(
            cond("DisruptionAllowed", "False", "InsufficientPods", age=40),
            age=60,
            expectedPods=3,
            currentHealthy=1,
            desiredHealthy=2,
        ),
        D,
        "no progress for 40m",
    ),
    (
        "pdb cannot compute",
        pdb(
            cond(
                "DisruptionAllowed",
                "False",
                "SyncFailed",
                'found no controllers for pod "debug"',
            ),
        ),
        D,
        'DisruptionAllowed is False: SyncFailed: found no controllers for pod "debug"',
    ),
    (
        "pdb allows nothing by design",
        pdb(
            cond("DisruptionAllowed", "False", "InsufficientPods"),
            expectedPods=2,
            currentHealthy=2,
            desiredHealthy=2,
        ),
        H,
        "no disruption allowed (2 of 2 pods healthy, 2 required): node drains wait",
    ),
    (
        "pdb selects nothing",
        pdb(cond("DisruptionAllowed", "False", "InsufficientPods")),
        H,
        "selects no pods",
    ),
    ("pdb not observed", pdb(None, gen=3, observed=2), P, "observe generation 3"),
    ("pdb no condition yet", pdb(None), P, "waiting for the disruption controller"),
    ("pdb malformed", pdb({"type": 5}, expectedPods="many", currentHealthy=None), P, "waiting"),
]


# ---------------------------------------------------------------------------- HorizontalPodAutoscaler


def hpa(*conds: Any, api: str = "autoscaling/v2", age: float = 2, **status: Any) -> dict[str, Any]:
    return obj(
        api,
        "HorizontalPodAutoscaler",
        age=age,
        spec={"minReplicas": 2, "maxReplicas": 10},
        status={"currentReplicas": 2, "desiredReplicas": 2, "conditions": list(conds), **status},
    )


NO_METRICS = (
    "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics"
    " for resource cpu: no metrics returned from resource metrics API"
)
HPA: list[Case] = [
    (
        "hpa scaling",
        hpa(
            cond("AbleToScale", "True", "ReadyForNewScale"), cond("ScalingActive", "True", "ValidMetricFound")
        ),
        H,
        "2 replicas (desired 2, allowed 2-10)",
    ),
    (
        "hpa waiting for metrics",
        hpa(
            cond("AbleToScale", "True", "SucceededGetScale"),
            cond("ScalingActive", "False", "FailedGetResourceMetric", NO_METRICS, age=2),
        ),
        P,
        "waiting for metrics: ScalingActive is False: FailedGetResourceMetric",
    ),
    (
        "hpa external metrics waiting",
        hpa(
            cond("AbleToScale", "True", "SucceededGetScale"),
            cond("ScalingActive", "False", "FailedGetExternalMetric", "unable to get external metric", age=3),
        ),
        P,
        "FailedGetExternalMetric",
    ),
    (
        "hpa metrics missing for long",
        hpa(
            cond("AbleToScale", "True", "SucceededGetScale"),
            cond("ScalingActive", "False", "FailedGetResourceMetric", NO_METRICS, age=30),
            age=60,
        ),
        D,
        "no progress for 30m",
    ),
    (
        "hpa missing resource requests",
        hpa(
            cond("AbleToScale", "True", "SucceededGetScale"),
            cond(
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                "the HPA was unable to compute the replica count: failed to get cpu utilization:"
                " missing request for cpu in container app of Pod web-7d4b9c-x2x9z",
            ),
        ),
        D,
        "set resources.requests",
    ),
    (
        "hpa invalid selector",
        hpa(
            cond("AbleToScale", "True", "SucceededGetScale"),
            cond(
                "ScalingActive",
                "False",
                "InvalidSelector",
                "couldn't convert selector into a corresponding internal selector object",
            ),
        ),
        D,
        "cannot autoscale: ScalingActive is False: InvalidSelector",
    ),
    (
        "hpa cannot read the target",
        hpa(cond("AbleToScale", "False", "FailedGetScale", 'deployments/scale.apps "web" not found')),
        D,
        "cannot autoscale: AbleToScale is False: FailedGetScale",
    ),
    (
        "hpa backing off",
        hpa(
            cond(
                "AbleToScale",
                "False",
                "BackoffBoth",
                "the time since the previous scale is still within both the downscale and upscale"
                " forbidden windows",
            ),
            cond("ScalingActive", "True", "ValidMetricFound"),
        ),
        H,
        "still within both the downscale and upscale forbidden windows",
    ),
    (
        "hpa scaled to zero",
        hpa(
            cond(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        ),
        H,
        "autoscaling is disabled",
    ),
    (
        "hpa v1 annotation waiting for metrics",
        obj(
            "autoscaling/v1",
            "HorizontalPodAutoscaler",
            spec={"maxReplicas": 3},
            annotations={
                "autoscaling.alpha.kubernetes.io/conditions": json.dumps(
                    [cond("ScalingActive", "False", "FailedGetResourceMetric", NO_METRICS, age=1)]
                )
            },
        ),
        P,
        "waiting for metrics",
    ),
    ("hpa malformed", hpa("x", {"type": None}, currentReplicas="two"), P, "waiting for the autoscaler"),
]


# ---------------------------------------------------------------------------- Pod


def pod(policy: str, phase: str, *containers: Any, ready: bool = False, **status: Any) -> dict[str, Any]:
    conds = [cond("Ready", "True" if ready else "False")]
    return obj(
        "v1",
        "Pod",
        age=3,
        spec={"restartPolicy": policy},
        status={"phase": phase, "conditions": conds, "containerStatuses": list(containers), **status},
    )


def running(name: str, ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": 0,
        "state": {"running": {"startedAt": ago(3)}},
        **extra,
    }


def exited(name: str, code: int, reason: str = "Error") -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "reason": reason, "finishedAt": ago(1)}},
    }


POD: list[Case] = [
    ("pod ready", pod("Always", "Running", running("app"), ready=True), H, "running and ready"),
    (
        "pod Never: container failed while the sidecar runs",
        pod("Never", "Running", exited("main", 2), running("proxy")),
        D,
        "container main exited with code 2 (Error); it will not be restarted (restartPolicy Never)",
    ),
    (
        "pod Always: container just crashed",
        pod("Always", "Running", exited("app", 137, "OOMKilled"), running("proxy")),
        D,
        "container app exited with code 137 (OOMKilled); the kubelet will restart it",
    ),
    (
        "pod OnFailure: container failed",
        pod("OnFailure", "Running", exited("work", 1), running("proxy")),
        D,
        "container work exited with code 1 (Error); the kubelet will restart it",
    ),
    (
        "pod Never: one container done, the other runs",
        pod("Never", "Running", exited("setup", 0, "Completed"), running("main")),
        P,
        "running to completion (restartPolicy Never)",
    ),
    (
        "pod finishing: sidecar stopped after the main container succeeded",
        obj(
            "v1",
            "Pod",
            age=3,
            spec={"restartPolicy": "Never"},
            status={
                "phase": "Running",
                "initContainerStatuses": [exited("istio-proxy", 143)],
                "containerStatuses": [exited("job", 0, "Completed")],
            },
        ),
        P,
        "running to completion",
    ),
    (
        "pod sidecar crashed while the main container runs",
        obj(
            "v1",
            "Pod",
            age=3,
            spec={"restartPolicy": "Always"},
            status={
                "phase": "Running",
                "initContainerStatuses": [exited("log-shipper", 1)],
                "containerStatuses": [running("app")],
            },
        ),
        D,
        "init container log-shipper exited with code 1 (Error); the kubelet will restart it",
    ),
    (
        "pod init container failed",
        obj(
            "v1",
            "Pod",
            spec={"restartPolicy": "Always"},
            status={"phase": "Pending", "initContainerStatuses": [exited("migrate", 1)]},
        ),
        D,
        "init container migrate exited with code 1 (Error)",
    ),
    (
        "pod Always: not ready after a crash, restarted",
        pod(
            "Always",
            "Running",
            running(
                "app",
                ready=False,
                restartCount=2,
                lastState={"terminated": {"exitCode": 1, "reason": "Error"}},
            ),
        ),
        P,
        "containers not ready: app; container app last exited with code 1 (Error), restarted 2 times",
    ),
    (
        "pod malformed",
        pod("Always", "Running", "x", {"state": "terminated"}, {"state": {"terminated": 3}}),
        P,
        "running",
    ),
]

CASES: list[Case] = CRONJOB + PDB + HPA + POD


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_builtin(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)


def test_cronjob_failure_names_the_job_of_the_last_schedule() -> None:
    scheduled = "2024-05-01T11:00:00Z"
    health = check(cronjob(lastScheduleTime=scheduled), D, "Job backup-")
    assert job_name("backup", datetime.fromisoformat(scheduled)) in health.reason
    assert NOW.tzinfo is not None
