"""KEDA: ScaledObject and ScaledJob (annotations and conditions as keda-operator writes them)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, S, check, cond, ids, obj

API = "keda.sh/v1alpha1"
READY = cond(
    "Ready", "True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling"
)


def so(*conds: Any, annotations: Any = None, kind: str = "ScaledObject", **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"annotations": annotations} if annotations else {}
    return obj(
        API,
        kind,
        name="worker",
        age=2,
        spec={
            "scaleTargetRef": {"name": "worker"},
            "minReplicaCount": 1,
            "maxReplicaCount": 10,
            "fallback": {"failureThreshold": 3, "replicas": 5},
        },
        status={"conditions": list(conds), **status},
        **meta,
    )


CASES: list[Case] = [
    (
        "scaledobject active",
        so(
            READY,
            cond("Active", "True", "ScalerActive", "Scaling is performed because triggers are active"),
            cond("Fallback", "False", "NoFallbackFound"),
        ),
        H,
        "ready for scaling; triggers are active",
    ),
    (
        "scaledobject idle",
        so(READY, cond("Active", "False", "ScalerNotActive")),
        H,
        "triggers are not active",
    ),
    (
        "scaledobject paused",
        so(READY, annotations={"autoscaling.keda.sh/paused": "true"}),
        S,
        'autoscaling paused at the current replica count (annotation autoscaling.keda.sh/paused: "true")',
    ),
    (
        "scaledobject paused at replicas",
        so(READY, annotations={"autoscaling.keda.sh/paused-replicas": "0"}),
        S,
        "autoscaling paused at 0 replicas",
    ),
    (
        "scaledobject unpaused",
        so(READY, annotations={"autoscaling.keda.sh/paused": "false"}),
        H,
        "ready for scaling",
    ),
    (
        "scaledobject paused condition",
        so(READY, cond("Paused", "True", "ScaledObjectPaused", "ScaledObject is paused")),
        S,
        "Paused: ScaledObject is paused",
    ),
    (
        "scaledobject fallback",
        so(
            READY,
            cond(
                "Fallback",
                "True",
                "FallbackExists",
                "At least one trigger is falling back on this scaled object",
            ),
            health={"s0-prometheus": {"numberOfFailures": 4, "status": "Failing"}},
        ),
        D,
        "Fallback: At least one trigger is falling back on this scaled object;"
        " failing triggers: s0-prometheus (4 failures); running on 5 fallback replicas",
    ),
    (
        "scaledobject wrong target",
        so(
            cond(
                "Ready",
                "False",
                "ScaledObjectCheckFailed",
                "ScaledObject doesn't have correct scaleTargetRef specification",
            )
        ),
        D,
        "Ready is False: ScaledObjectCheckFailed",
    ),
    (
        "scaledobject hpa waiting for metrics",
        so(
            cond(
                "Ready",
                "False",
                "HPAMetricsUnavailable",
                "ScaledObject is configured correctly but HPA is not healthy: FailedGetResourceMetric",
            )
        ),
        P,
        "Ready is False: HPAMetricsUnavailable",
    ),
    ("scaledobject new", so(), P, "waiting for KEDA"),
    (
        "scaledjob paused",
        so(READY, annotations={"autoscaling.keda.sh/paused": "true"}, kind="ScaledJob"),
        S,
        "autoscaling paused",
    ),
    (
        "scaledobject malformed",
        so("Ready", annotations={"autoscaling.keda.sh/paused": 1}, health=[1]),
        P,
        "waiting",
    ),
    ("triggerauthentication", obj(API, "TriggerAuthentication"), H, "no status to check"),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_keda(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
