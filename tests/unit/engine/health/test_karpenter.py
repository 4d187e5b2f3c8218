"""Karpenter: NodePool, NodeClaim, EC2NodeClass."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, check, cond, ids, obj


def karp(kind: str, *conds: Any, api: str = "karpenter.sh/v1", gen: int = 1, **status: Any) -> dict[str, Any]:
    return obj(
        api,
        kind,
        name="default",
        namespace=None,
        age=3,
        generation=gen,
        status={"conditions": list(conds), **status},
    )


CASES: list[Case] = [
    (
        "nodepool ready",
        karp(
            "NodePool",
            cond("ValidationSucceeded", "True", "ValidationSucceeded", observedGeneration=1),
            cond("NodeClassReady", "True", "NodeClassReady", observedGeneration=1),
            cond("Ready", "True", "Ready", observedGeneration=1),
        ),
        H,
        "Ready is True",
    ),
    (
        "nodepool node class not ready",
        karp(
            "NodePool",
            cond("ValidationSucceeded", "True", "ValidationSucceeded"),
            cond("NodeClassReady", "False", "NodeClassNotReady", "EC2NodeClass default is not ready"),
            cond("Ready", "False", "UnhealthyDependents", "NodeClassReady=False"),
        ),
        D,
        "NodeClassReady is False: NodeClassNotReady",
    ),
    ("nodepool not reconciled", karp("NodePool"), P, "waiting for Karpenter"),
    (
        "nodepool stale",
        karp("NodePool", cond("Ready", "True", observedGeneration=1), gen=2),
        P,
        "describes generation 1",
    ),
    (
        "nodeclaim ready",
        karp(
            "NodeClaim",
            cond("Launched", "True"),
            cond("Registered", "True"),
            cond("Initialized", "True"),
            cond("Ready", "True"),
            nodeName="ip-10-0-1-23.ec2.internal",
        ),
        H,
        "node ip-10-0-1-23.ec2.internal Ready is True",
    ),
    (
        "nodeclaim registering",
        karp("NodeClaim", cond("Launched", "True"), cond("Registered", "Unknown", "AwaitingReconciliation")),
        P,
        "Registered is Unknown",
    ),
    (
        "nodeclaim launch failed",
        karp(
            "NodeClaim",
            cond(
                "Launched",
                "False",
                "InsufficientCapacityError",
                "all requested instance types were unavailable",
            ),
        ),
        D,
        "Launched is False: InsufficientCapacityError",
    ),
    (
        "nodeclaim drifted",
        karp(
            "NodeClaim",
            cond("Ready", "True"),
            cond("Drifted", "True", "NodePoolDrifted", "NodePool template changed"),
        ),
        H,
        "Drifted: NodePool template changed (Karpenter will replace the node)",
    ),
    (
        "ec2nodeclass subnets missing",
        karp(
            "EC2NodeClass",
            cond("SubnetsReady", "False", "SubnetsNotFound", "SubnetSelector did not match any Subnets"),
            cond("Ready", "False", "UnhealthyDependents"),
            api="karpenter.k8s.aws/v1",
        ),
        D,
        "SubnetsReady is False: SubnetsNotFound",
    ),
    (
        "nodeclaim malformed",
        karp("NodeClaim", {"type": "Launched", "status": None}, 3),
        P,
        "Launched is unset",
    ),
]


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_karpenter(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
