"""Prometheus Operator: Prometheus, Alertmanager (Available/Reconciled) and the config kinds' bindings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, S, check, cond, ids, obj

API = "monitoring.coreos.com/v1"


def prom(
    *conds: Any, kind: str = "Prometheus", spec: Any = None, age: float = 3, **status: Any
) -> dict[str, Any]:
    return obj(
        API,
        kind,
        name="k8s",
        namespace="monitoring",
        age=age,
        generation=4,
        spec={"replicas": 2, **(spec or {})},
        status={"conditions": list(conds), **status},
    )


CASES: list[Case] = [
    (
        "prometheus available",
        prom(
            cond("Available", "True", observedGeneration=4),
            cond("Reconciled", "True", observedGeneration=4),
            replicas=2,
            availableReplicas=2,
        ),
        H,
        "Available is True (2 of 2 pods available)",
    ),
    (
        "prometheus partially available",
        prom(
            cond("Available", "Degraded", "SomePodsNotReady", "prometheus-k8s-1: pod is not ready"),
            cond("Reconciled", "True"),
            replicas=2,
            availableReplicas=1,
        ),
        P,
        "Available is Degraded: SomePodsNotReady",
    ),
    (
        "prometheus unavailable for long",
        prom(
            cond("Available", "False", "NoPodReady", age=30), cond("Reconciled", "True"), age=60, replicas=2
        ),
        D,
        "no progress for 30m",
    ),
    (
        "alertmanager reconcile failed",
        prom(
            cond(
                "Reconciled",
                "False",
                "ReconciliationFailed",
                "provision alertmanager configuration: failed to get secret",
            ),
            cond("Available", "True"),
            kind="Alertmanager",
        ),
        D,
        "Reconciled is False: ReconciliationFailed",
    ),
    ("prometheus paused", prom(spec={"paused": True}), S, "paused (spec.paused is true)"),
    ("prometheus old operator", prom(replicas=2, availableReplicas=2), H, "2 of 2 pods available"),
    ("prometheus stale", prom(cond("Available", "True", observedGeneration=3)), P, "describes generation 3"),
    ("prometheus malformed", prom("x", replicas="two", availableReplicas=None), P, "waiting for pods"),
    (
        "servicemonitor rejected",
        obj(
            API,
            "ServiceMonitor",
            status={
                "bindings": [
                    {
                        "group": "monitoring.coreos.com",
                        "resource": "prometheuses",
                        "name": "k8s",
                        "namespace": "monitoring",
                        "conditions": [
                            cond("Accepted", "False", "InvalidConfiguration", "invalid relabeling")
                        ],
                    }
                ]
            },
        ),
        D,
        "rejected by prometheuses monitoring/k8s: Accepted is False: InvalidConfiguration",
    ),
    (
        "prometheusrule accepted",
        obj(
            API,
            "PrometheusRule",
            status={
                "bindings": [
                    {
                        "resource": "prometheuses",
                        "name": "k8s",
                        "namespace": "monitoring",
                        "conditions": [cond("Accepted", "True")],
                    }
                ]
            },
        ),
        H,
        "accepted by prometheuses monitoring/k8s",
    ),
    ("podmonitor without status", obj(API, "PodMonitor"), H, "no workload reports on it"),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_monitoring(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
