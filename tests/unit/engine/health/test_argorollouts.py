"""Argo Rollouts: Rollout (phase, pause, abort), AnalysisRun and Experiment (phase)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, S, U, ago, check, cond, ids, obj

API = "argoproj.io/v1alpha1"


def rollout(spec: Any = None, gen: int = 3, observed: Any = "3", **status: Any) -> dict[str, Any]:
    return obj(
        API,
        "Rollout",
        name="web",
        age=5,
        generation=gen,
        spec={
            "replicas": 4,
            "strategy": {"canary": {"steps": [{"setWeight": 25}, {"pause": {}}]}},
            **(spec or {}),
        },
        status={
            "observedGeneration": observed,
            "replicas": 4,
            "updatedReplicas": 1,
            "availableReplicas": 4,
            **status,
        },
    )


CASES: list[Case] = [
    (
        "rollout healthy",
        rollout(
            phase="Healthy",
            conditions=[cond("Available", "True"), cond("Progressing", "True", "NewReplicaSetAvailable")],
        ),
        H,
        "phase Healthy",
    ),
    (
        "rollout progressing",
        rollout(phase="Progressing", message="more replicas need to be updated"),
        P,
        "phase Progressing: more replicas need to be updated",
    ),
    (
        "rollout paused at a canary step",
        rollout(
            phase="Paused",
            message="CanaryPauseStep",
            controllerPause=True,
            pauseConditions=[{"reason": "CanaryPauseStep", "startTime": ago(12)}],
        ),
        S,
        "paused (CanaryPauseStep for 12m): CanaryPauseStep; `kubectl argo rollouts promote` resumes it",
    ),
    (
        "rollout paused by a person",
        rollout({"paused": True}, phase="Paused"),
        S,
        "paused (spec.paused is true)",
    ),
    (
        "rollout aborted",
        rollout(
            abort=True,
            phase="Degraded",
            message="RolloutAborted: Rollout aborted update to revision 3",
            conditions=[
                cond("Progressing", "False", "RolloutAborted", "Rollout aborted update to revision 3")
            ],
        ),
        D,
        "aborted: RolloutAborted: Rollout aborted update to revision 3",
    ),
    (
        "rollout progress deadline",
        rollout(
            phase="Degraded",
            message='ProgressDeadlineExceeded: ReplicaSet "web-6f7" has timed out progressing.',
        ),
        D,
        "phase Degraded: ProgressDeadlineExceeded",
    ),
    (
        "rollout invalid spec",
        rollout(
            conditions=[
                cond(
                    "InvalidSpec",
                    "True",
                    "InvalidSpec",
                    'The Rollout "web" is invalid: spec.strategy.canary.steps[1]',
                )
            ]
        ),
        D,
        "InvalidSpec: The Rollout",
    ),
    (
        "rollout generation not observed",
        rollout(gen=4, observed="3", phase="Healthy"),
        P,
        "observe generation 4",
    ),
    (
        "rollout old hashed observedGeneration",
        rollout(observed="7c4f9f8d5", phase="Healthy"),
        H,
        "phase Healthy",
    ),
    ("rollout no phase yet", rollout(observed=None), P, "waiting for the Argo Rollouts controller"),
    (
        "rollout malformed",
        rollout(observed=[1], phase=3, pauseConditions="x", conditions={"a": 1}),
        P,
        "waiting",
    ),
    ("analysisrun running", obj(API, "AnalysisRun", status={"phase": "Running"}), P, "phase Running"),
    (
        "analysisrun successful",
        obj(
            API,
            "AnalysisRun",
            status={"phase": "Successful", "message": 'Metric "success-rate" assessed Successful'},
        ),
        H,
        "phase Successful",
    ),
    (
        "analysisrun failed",
        obj(
            API,
            "AnalysisRun",
            status={
                "phase": "Failed",
                "message": 'Metric "success-rate" assessed Failed due to failed (3) > failureLimit (2)',
            },
        ),
        D,
        'phase Failed: Metric "success-rate" assessed Failed',
    ),
    (
        "analysisrun inconclusive",
        obj(API, "AnalysisRun", status={"phase": "Inconclusive"}),
        U,
        "a person has to judge",
    ),
    (
        "experiment error",
        obj(API, "Experiment", status={"phase": "Error", "message": "x"}),
        D,
        "phase Error: x",
    ),
    ("analysisrun malformed", obj(API, "AnalysisRun", age=2, status={"phase": None}), P, "report a phase"),
    ("analysistemplate", obj(API, "AnalysisTemplate"), H, "no status to check"),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_argorollouts(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
