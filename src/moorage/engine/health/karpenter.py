"""Karpenter: NodePool and NodeClaim (``karpenter.sh``), and the node classes
(``karpenter.k8s.aws`` EC2NodeClass, ``karpenter.azure.com`` AKSNodeClass).

Karpenter's conditions (``operatorpkg`` status conditions) have a root ``Ready`` that is ``True``
only when every dependent condition is; when it is not, the dependent that is not ``True`` says
why, so the reason names that one.

* NodePool: dependents ``ValidationSucceeded``, ``NodeClassReady``, ``NodeRegistrationHealthy``.
  ``Ready=True`` → Healthy; a dependent ``False`` → Degraded naming it; otherwise Progressing.
* NodeClaim: the lifecycle ``Launched`` → ``Registered`` → ``Initialized``. The first stage that
  is ``False`` → Degraded (e.g. ``Launched=False/InsufficientCapacity``); ``Unknown`` → Progressing
  (Karpenter itself gives up on a node that does not register and deletes the claim).
  ``Drifted=True`` is noted: Karpenter will replace the node.
* Node classes: ``Ready`` with dependents such as ``SubnetsReady``, ``SecurityGroupsReady``,
  ``AMIsReady``, ``InstanceProfileReady``, ``ValidationSucceeded``.

A stale condition (``observedGeneration`` behind) → Progressing; Progressing turns Degraded after
``progress_deadline``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, good, stale_condition, state, stated
from moorage.engine.health.types import (
    Condition,
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    section,
    text,
)

NODEPOOL_PARTS = ("ValidationSucceeded", "NodeClassReady", "NodeRegistrationHealthy")
NODECLAIM_STAGES = ("Launched", "Registered", "Initialized")


def _first_failed(conds: list[Condition], parts: tuple[str, ...] | None) -> Condition | None:
    """The first dependent condition that is False (all non-Ready conditions if ``parts`` is None)."""
    if parts is None:
        return next((c for c in conds if c.type != "Ready" and c.false), None)
    return next((c for t in parts if (c := find(conds, t)) is not None and c.false), None)


def _rooted(obj: Mapping[str, Any], ctx: Context, parts: tuple[str, ...] | None) -> Health:
    conds = conditions(obj)
    ready = find(conds, "Ready")
    stale = stale_condition(obj, ready)
    if stale is not None:
        return deadline(stale, obj, ctx, ready)
    if ready is not None and ready.true:
        return Health(HealthStatus.HEALTHY, good(ready))
    failed = _first_failed(conds, parts)
    if failed is not None:
        return Health(HealthStatus.DEGRADED, state(failed))
    if ready is not None and ready.false:
        return Health(HealthStatus.DEGRADED, state(ready))
    what = state(ready) if ready is not None else "waiting for Karpenter to report Ready"
    return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, ready)


def nodepool(obj: Mapping[str, Any], ctx: Context) -> Health:
    return _rooted(obj, ctx, NODEPOOL_PARTS)


def nodeclass(obj: Mapping[str, Any], ctx: Context) -> Health:
    return _rooted(obj, ctx, None)


def nodeclaim(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    conds = conditions(obj)
    node = text(status.get("nodeName"))
    drifted = find(conds, "Drifted")
    drift = (
        f"; {stated(drifted)} (Karpenter will replace the node)"
        if drifted is not None and drifted.true
        else ""
    )
    ready = find(conds, "Ready")
    if ready is not None and ready.true:
        on = f"node {node} " if node else ""
        return Health(HealthStatus.HEALTHY, f"{on}{good(ready)}{drift}")
    for stage in NODECLAIM_STAGES:
        cond = find(conds, stage)
        if cond is not None and cond.true:
            continue
        if cond is not None and cond.false:
            return Health(HealthStatus.DEGRADED, state(cond))
        what = state(cond) if cond is not None else f"waiting for {stage}"
        return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, cond)
    if ready is not None and ready.false:
        return Health(HealthStatus.DEGRADED, state(ready))
    what = state(ready) if ready is not None else "waiting for Ready"
    return deadline(Health(HealthStatus.PROGRESSING, what + drift), obj, ctx, ready)


RULES: Rules = {
    ("karpenter.sh", "NodePool"): nodepool,
    ("karpenter.sh", "NodeClaim"): nodeclaim,
    ("karpenter.k8s.aws", "EC2NodeClass"): nodeclass,
    ("karpenter.azure.com", "AKSNodeClass"): nodeclass,
}
