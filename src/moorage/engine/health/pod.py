"""core/Pod (as Argo CD: phase, container waiting reasons, restartPolicy).

* A container waiting with an error reason (``ErrImagePull``, ``ImagePullBackOff``,
  ``CrashLoopBackOff``, ``CreateContainerConfigError``, …) makes the Pod Degraded at once.
* A container (or init container) whose current state is ``terminated`` with a non-zero exit
  code while the Pod has not finished is Degraded at once, whatever the restart policy:
  with ``Never`` it will not run again, so the Pod cannot succeed (and with a sidecar still
  running it may never even reach ``Failed``); with ``OnFailure``/``Always`` the kubelet
  restarts it, but it has just crashed. A container that exited 0 under ``Never``/``OnFailure``
  has simply finished its part.
* ``Succeeded`` is Healthy, ``Failed`` Degraded (with the eviction or exit reason).
* ``Running`` with ``restartPolicy: Always`` is Healthy once Ready (a container that is not
  ready yet names its last crash, if any); with ``Never`` or ``OnFailure`` the Pod runs to
  completion and stays Progressing until it ends (no deadline: such pods are batch work, like
  Jobs).
* ``Pending`` and running-but-not-ready turn Degraded after ``progress_deadline``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    integer,
    items,
    names,
    section,
    text,
    with_deadline,
)


def _is_error_reason(reason: str) -> bool:
    return reason.startswith("Err") or reason.endswith(("Error", "BackOff")) or reason == "InvalidImageName"


def _container_statuses(status: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any]]] = []
    for key, label in (("initContainerStatuses", "init container"), ("containerStatuses", "container")):
        out.extend((label, cs) for cs in items(status.get(key)))
    return out


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    spec, status = section(obj, "spec"), section(obj, "status")
    phase = text(status.get("phase"))
    restart_policy = text(spec.get("restartPolicy")) or "Always"
    statuses = _container_statuses(status)

    for label, cs in statuses:
        waiting = section(cs, "state", "waiting")
        reason = text(waiting.get("reason"))
        if reason and _is_error_reason(reason):
            message = text(waiting.get("message")).strip()
            restarts = integer(cs.get("restartCount"))
            detail = f" (restarted {restarts} times)" if restarts else ""
            return Health(
                HealthStatus.DEGRADED,
                f"{label} {text(cs.get('name'))} is waiting: {reason}{detail}"
                + (f": {message}" if message else ""),
            )

    if phase not in ("Succeeded", "Failed"):
        crashed = _crashed(statuses, restart_policy)
        if crashed is not None:
            return crashed

    if phase == "Succeeded":
        return Health(HealthStatus.HEALTHY, "pod completed successfully")
    if phase == "Failed":
        return Health(HealthStatus.DEGRADED, _failure(status, statuses))
    if phase == "Pending":
        return with_deadline(Health(HealthStatus.PROGRESSING, _pending(obj, statuses)), obj, ctx)
    if phase == "Running":
        if restart_policy != "Always":
            return Health(HealthStatus.PROGRESSING, f"running to completion (restartPolicy {restart_policy})")
        ready = find(conditions(obj), "Ready")
        if ready is not None and ready.true:
            return Health(HealthStatus.HEALTHY, "running and ready")
        unready = [
            text(cs.get("name")) for label, cs in statuses if label == "container" and not cs.get("ready")
        ]
        what = f"containers not ready: {names(unready)}" if unready else "pod is not ready"
        return with_deadline(
            Health(HealthStatus.PROGRESSING, f"running; {what}{_last_crash(statuses)}"), obj, ctx
        )
    if phase == "Unknown":
        return Health(HealthStatus.UNKNOWN, "pod phase is Unknown (its node may have stopped reporting)")
    return with_deadline(
        Health(HealthStatus.PROGRESSING, "waiting for the pod to be scheduled and report a phase"), obj, ctx
    )


def _exit(terminated: Mapping[str, Any]) -> str:
    code = integer(terminated.get("exitCode"))
    why = text(terminated.get("reason")) or "Error"
    msg = text(terminated.get("message")).strip()
    return f"exited with code {code} ({why})" + (f": {msg}" if msg else "")


def _crashed(statuses: list[tuple[str, Mapping[str, Any]]], restart_policy: str) -> Health | None:
    """Degraded when a container's current state is terminated with an error. Sidecars (init
    containers that keep running) stopped after every container finished are a pod finishing."""
    containers = [cs for label, cs in statuses if label == "container"]
    finishing = bool(containers) and all(section(cs, "state", "terminated") for cs in containers)
    for label, cs in statuses:
        terminated = section(cs, "state", "terminated")
        if not terminated or integer(terminated.get("exitCode")) == 0:
            continue
        if finishing and label == "init container":
            continue
        again = (
            "it will not be restarted (restartPolicy Never), so the pod cannot succeed"
            if restart_policy == "Never" and label == "container"
            else "the kubelet will restart it"
        )
        return Health(
            HealthStatus.DEGRADED,
            f"{label} {text(cs.get('name'))} {_exit(terminated)}; {again}",
        )
    return None


def _last_crash(statuses: list[tuple[str, Mapping[str, Any]]]) -> str:
    """``; container app last exited with code 1 (Error), restarted 2 times`` — a hint for a
    running container that is not ready yet and has crashed before."""
    for label, cs in statuses:
        if label != "container" or cs.get("ready") is True:
            continue
        last = section(cs, "lastState", "terminated")
        if last and integer(last.get("exitCode")) != 0:
            restarts = integer(cs.get("restartCount"))
            again = f", restarted {restarts} times" if restarts else ""
            return f"; {label} {text(cs.get('name'))} last {_exit(last)}{again}"
    return ""


def _failure(status: Mapping[str, Any], statuses: list[tuple[str, Mapping[str, Any]]]) -> str:
    reason, message = text(status.get("reason")), text(status.get("message")).strip()
    if reason or message:
        return "pod failed: " + ": ".join(p for p in (reason, message) if p)
    for label, cs in statuses:
        terminated = section(cs, "state", "terminated")
        if terminated and integer(terminated.get("exitCode")) != 0:
            return f"pod failed: {label} {text(cs.get('name'))} {_exit(terminated)}"
    return "pod failed"


def _pending(obj: Mapping[str, Any], statuses: list[tuple[str, Mapping[str, Any]]]) -> str:
    scheduled = find(conditions(obj), "PodScheduled")
    if scheduled is not None and scheduled.false:
        return f"pending: not scheduled: {scheduled.describe()}"
    for label, cs in statuses:
        waiting = section(cs, "state", "waiting")
        if waiting:
            return f"pending: {label} {text(cs.get('name'))} is {text(waiting.get('reason')) or 'waiting'}"
    return "pending"
