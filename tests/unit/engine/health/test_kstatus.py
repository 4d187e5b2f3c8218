"""The generic rule: kstatus conventions on a custom resource no dedicated rule knows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, S, check, cond, ids, obj


def widget(
    *conds: Any, gen: int = 2, observed: int | None = 2, age: float = 3, **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conds), **extra}
    if observed is not None:
        status["observedGeneration"] = observed
    return obj("example.com/v1", "Widget", age=age, generation=gen, status=status)


CASES: list[Case] = [
    ("ready", widget(cond("Ready", "True", "Succeeded", "all good")), H, "Ready is True: all good"),
    ("available", widget(cond("Available", "True")), H, "Available is True"),
    ("generation not observed", widget(cond("Ready", "True"), gen=3, observed=2), P, "observe generation 3"),
    (
        "reconciling wins over ready",
        widget(cond("Reconciling", "True", "Progressing", "applying"), cond("Ready", "True")),
        P,
        "reconciling: Progressing: applying",
    ),
    (
        "stalled",
        widget(cond("Stalled", "True", "InvalidSpec", "spec.replicas must be positive")),
        D,
        "stalled: InvalidSpec: spec.replicas must be positive",
    ),
    (
        "abnormal-true NotReady",
        widget(cond("NotReady", "True", "BackendDown", "backend unreachable")),
        D,
        "NotReady: BackendDown: backend unreachable",
    ),
    (
        "abnormal-true Degraded",
        widget(cond("Degraded", "True", "Quorum", "2 of 3 members")),
        D,
        "Degraded: Quorum",
    ),
    ("abnormal-true Failed", widget(cond("Failed", "True", "", "boom")), D, "Failed: boom"),
    ("abnormal-true Error", widget(cond("Error", "True", "Crash")), D, "Error: Crash"),
    (
        "abnormal condition False is fine",
        widget(cond("Degraded", "False"), cond("Ready", "True")),
        H,
        "Ready is True",
    ),
    ("ready unknown", widget(cond("Ready", "Unknown", "Waiting")), P, "Ready is Unknown: Waiting"),
    ("ready without status", widget({"type": "Ready"}), P, "Ready is unset"),
    (
        "ready false with a not-yet reason",
        widget(cond("Ready", "False", "Creating", "provisioning the volume")),
        P,
        "Ready is False: Creating",
    ),
    (
        "ready false while reconciling",
        widget(cond("Ready", "False", "Failed", "x"), cond("Reconciling", "True", "Progressing")),
        P,
        "reconciling: Progressing (Ready is False: Failed: x)",
    ),
    (
        "ready false",
        widget(cond("Ready", "False", "BadConfig", "no such key")),
        D,
        "Ready is False: BadConfig",
    ),
    (
        "stale ready condition",
        widget(cond("Ready", "True", observedGeneration=2), gen=3, observed=None),
        P,
        "Ready describes generation 2",
    ),
    (
        "progressing past the deadline",
        widget(cond("Ready", "Unknown", "Waiting", age=45), age=60),
        D,
        "no progress for 45m",
    ),
    (
        "CRD default condition from 1970 does not trip the deadline",
        widget({"type": "Ready", "status": "Unknown", "lastTransitionTime": "1970-01-01T00:00:00Z"}, age=2),
        P,
        "Ready is Unknown",
    ),
    (
        "suspended",
        obj(
            "example.com/v1",
            "Widget",
            spec={"suspend": True},
            status={"conditions": [cond("Ready", "False")]},
        ),
        S,
        "suspended",
    ),
    ("no conditions", widget(), H, "no health rule for Widget"),
    ("malformed", widget("Ready", 7, {"type": ["x"]}, observed=None), H, "reports no readiness condition"),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_generic(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
