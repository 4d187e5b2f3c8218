"""argoproj.io: Rollout, AnalysisRun, Experiment (Argo Rollouts).

Rollout: the controller sums its state up in ``status.phase`` (``Healthy``, ``Progressing``,
``Paused``, ``Degraded``) with ``status.message``, and enforces ``spec.progressDeadlineSeconds``
itself (``Progressing=False/ProgressDeadlineExceeded`` → phase ``Degraded``), so no engine
deadline is added while the phase is current.

* ``InvalidSpec=True`` → Degraded with its message.
* ``status.abort: true`` → Degraded: the update was aborted and the stable version serves (the
  reason says how to go on: ``kubectl argo rollouts retry`` or a new revision).
* ``spec.paused: true`` → Suspended (paused by a person); phase ``Paused`` → Suspended with the
  pause reasons from ``status.pauseConditions`` (``CanaryPauseStep``, ``BlueGreenPause``,
  ``AnalysisRunInconclusive``, ``InconclusiveExperiment``).
* ``status.observedGeneration`` behind → Progressing (it is a string; older versions wrote a
  hash, which cannot be compared and is ignored).
* ``Degraded`` / ``Progressing`` / ``Healthy`` phases map to themselves. No phase (controller
  older than v1.0, or not reconciled yet) → the ``Progressing`` condition decides, else Progressing
  with the engine deadline.

AnalysisRun and Experiment: ``status.phase`` ``Pending``/``Running`` → Progressing (an analysis
runs as long as its metrics say; no engine deadline), ``Successful`` → Healthy, ``Failed`` /
``Error`` → Degraded with ``status.message``, ``Inconclusive`` → Unknown (a person has to judge).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, stated
from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    human_duration,
    items,
    names,
    parse_time,
    section,
    text,
)

GROUP = "argoproj.io"


def _pause_reasons(status: Mapping[str, Any], now: datetime) -> str:
    reasons = []
    for pause in items(status.get("pauseConditions")):
        reason = text(pause.get("reason")) or "paused"
        started = parse_time(pause.get("startTime"))
        reasons.append(f"{reason} for {human_duration(now - started)}" if started is not None else reason)
    return names(reasons)


def rollout(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    conds = conditions(obj)
    message = text(status.get("message")).strip()
    invalid = find(conds, "InvalidSpec")
    if invalid is not None and invalid.true:
        return Health(HealthStatus.DEGRADED, stated(invalid))
    if status.get("abort") is True:
        progressing = find(conds, "Progressing")
        why = message or (progressing.message if progressing is not None else "") or "the update was aborted"
        return Health(
            HealthStatus.DEGRADED,
            f"aborted: {why} (the stable ReplicaSet serves; `kubectl argo rollouts retry rollout` or a new"
            " revision starts over)",
        )
    if spec.get("paused") is True:
        return Health(HealthStatus.SUSPENDED, "paused (spec.paused is true)")
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx, conds=conds)
    phase = text(status.get("phase"))
    said = f": {message}" if message else ""
    if phase == "Paused":
        reasons = _pause_reasons(status, ctx.now)
        why = f" ({reasons})" if reasons else ""
        return Health(
            HealthStatus.SUSPENDED,
            f"paused{why}{said}; `kubectl argo rollouts promote` resumes it",
        )
    if phase == "Degraded":
        return Health(HealthStatus.DEGRADED, f"phase Degraded{said}")
    if phase == "Progressing":
        return Health(HealthStatus.PROGRESSING, f"phase Progressing{said}")
    if phase == "Healthy":
        return Health(HealthStatus.HEALTHY, f"phase Healthy{said}")
    progressing = find(conds, "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return Health(HealthStatus.DEGRADED, stated(progressing))
    return deadline(
        Health(HealthStatus.PROGRESSING, "waiting for the Argo Rollouts controller to report a phase"),
        obj,
        ctx,
        conds=conds,
    )


def run(obj: Mapping[str, Any], ctx: Context) -> Health:
    """AnalysisRun and Experiment, by ``status.phase``."""
    status = section(obj, "status")
    phase = text(status.get("phase"))
    message = text(status.get("message")).strip()
    said = f": {message}" if message else ""
    if phase == "Successful":
        return Health(HealthStatus.HEALTHY, f"phase Successful{said}")
    if phase in ("Failed", "Error"):
        return Health(HealthStatus.DEGRADED, f"phase {phase}{said}")
    if phase == "Inconclusive":
        return Health(HealthStatus.UNKNOWN, f"phase Inconclusive{said} (a person has to judge the result)")
    if phase in ("Pending", "Running"):
        return Health(HealthStatus.PROGRESSING, f"phase {phase}{said}")
    return deadline(
        Health(HealthStatus.PROGRESSING, "waiting for the Argo Rollouts controller to report a phase"),
        obj,
        ctx,
    )


def template(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    return Health(HealthStatus.HEALTHY, "exists (a template has no status to check)")


RULES: Rules = {
    (GROUP, "Rollout"): rollout,
    (GROUP, "AnalysisRun"): run,
    (GROUP, "Experiment"): run,
    (GROUP, "AnalysisTemplate"): template,
    (GROUP, "ClusterAnalysisTemplate"): template,
}
