"""monitoring.coreos.com (Prometheus Operator): the workloads (Prometheus, PrometheusAgent,
Alertmanager, ThanosRuler) and the configuration resources (ServiceMonitor, PodMonitor, Probe,
PrometheusRule, ScrapeConfig, AlertmanagerConfig).

Workloads carry ``Available`` and ``Reconciled``. ``Available`` has a third status besides
``True``/``False``/``Unknown``: ``Degraded`` (some pods are not ready).

* ``spec.paused: true`` → Suspended (the operator leaves it alone).
* ``Reconciled=False`` → Degraded: the operator could not turn the spec into the StatefulSet and
  its configuration (an invalid config, a missing Secret, …).
* ``Available`` not ``True`` (``False``: no pod ready, ``Degraded``: some) → Progressing while pods
  start or roll, Degraded after ``progress_deadline`` counted from the condition's transition.
* Both ``True`` → Healthy with the replica counts. Operators before v0.67 write no conditions:
  then ``availableReplicas`` against the desired replicas decides.

Configuration resources report, when the operator's status feature is on, one binding per
workload in ``status.bindings[]`` with an ``Accepted`` (or ``Reconciled``) condition: ``False`` →
Degraded naming the workload (the configuration was rejected). Without bindings they are Healthy
once they exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, good, stale_condition, state
from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    conditions_of,
    find,
    integer,
    items,
    names,
    optional_int,
    section,
    text,
)

GROUP = "monitoring.coreos.com"
WORKLOADS = ("Prometheus", "PrometheusAgent", "Alertmanager", "ThanosRuler")
CONFIGS = ("ServiceMonitor", "PodMonitor", "Probe", "PrometheusRule", "ScrapeConfig", "AlertmanagerConfig")


def _replicas(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[int, int]:
    """(available, desired) pods; desired counts every shard."""
    desired = optional_int(status.get("replicas"))
    if desired is None:
        desired = integer(spec.get("replicas"), 1) * max(1, integer(spec.get("shards"), 1))
    return integer(status.get("availableReplicas")), desired


def workload(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    if spec.get("paused") is True:
        return Health(
            HealthStatus.SUSPENDED, "paused (spec.paused is true): the operator does not reconcile it"
        )
    conds = conditions(obj)
    available, desired = _replicas(spec, status)
    counts = f"{available} of {desired} pods available"
    reconciled, ready = find(conds, "Reconciled"), find(conds, "Available")
    for cond in (reconciled, ready):
        stale = stale_condition(obj, cond)
        if stale is not None:
            return deadline(stale, obj, ctx, cond)
    if reconciled is not None and reconciled.false:
        return Health(HealthStatus.DEGRADED, f"{state(reconciled)} (the operator's log has the details)")
    if ready is None:
        if reconciled is None and available >= desired and "availableReplicas" in status:
            return Health(HealthStatus.HEALTHY, counts)
        return deadline(
            Health(HealthStatus.PROGRESSING, f"waiting for pods: {counts}"), obj, ctx, conds=conds
        )
    if not ready.true:
        return deadline(Health(HealthStatus.PROGRESSING, f"{state(ready)} ({counts})"), obj, ctx, ready)
    return Health(HealthStatus.HEALTHY, f"{good(ready)} ({counts})")


def config(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    accepted_by = []
    for binding in items(section(obj, "status").get("bindings")):
        where = f"{text(binding.get('namespace'))}/" if text(binding.get("namespace")) else ""
        who = f"{text(binding.get('resource')) or 'workload'} {where}{text(binding.get('name'))}"
        bconds = conditions_of(binding.get("conditions"))
        for type_ in ("Accepted", "Reconciled"):
            cond = find(bconds, type_)
            if cond is not None and cond.false:
                return Health(HealthStatus.DEGRADED, f"rejected by {who}: {state(cond)}")
        accepted_by.append(who)
    if accepted_by:
        return Health(HealthStatus.HEALTHY, f"accepted by {names(accepted_by)}")
    return Health(HealthStatus.HEALTHY, "exists (no workload reports on it in status.bindings)")


RULES: Rules = {
    **{(GROUP, kind): workload for kind in WORKLOADS},
    **{(GROUP, kind): config for kind in CONFIGS},
}
