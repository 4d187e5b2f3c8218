"""The status conventions most controllers follow (kstatus, Kubernetes API conventions), as
small pieces the dedicated rules share, and :func:`evaluate`: the generic reading of them.

Sources (see ``docs/health.md`` for the table):

* sigs.k8s.io/cli-utils ``pkg/kstatus/status`` (``generic.go``, ``status.go``, ``README.md``):
  ``status.observedGeneration`` behind ``metadata.generation`` means in progress;
  ``Reconciling=True`` means in progress, ``Stalled=True`` means failed; both follow the
  "abnormal-true" polarity, so their absence means "normal"; a ``Ready`` condition is used when
  a resource has neither.
* Kubernetes API conventions (typical status properties): condition status is ``True``,
  ``False`` or ``Unknown``; ``Unknown`` (or a condition with no status) means the controller has
  not decided yet — in progress; condition types named for an abnormal state (``NotReady``,
  ``Degraded``, ``Failed``, ``Error``) are bad when ``True``.
* ``metav1.Condition.observedGeneration``: a condition written for an older generation is stale.
* Condition ``severity`` (Cluster API, Knative): ``Error`` on a ``False`` condition is a failure,
  ``Warning``/``Info`` a state that is expected to resolve.

Everything here is pure and reads objects defensively; nothing raises on odd shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from moorage.engine.health.types import (
    Condition,
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    items,
    last_activity,
    optional_int,
    parse_time,
    section,
    text,
    with_deadline,
)

__all__ = [
    "ABNORMAL_TRUE",
    "IN_PROGRESS_REASONS",
    "READINESS",
    "WORKING",
    "Rule",
    "Rules",
    "evaluate",
]

#: A health rule: pure, never raises on odd shapes (``assess`` turns an exception into Unknown).
Rule = Callable[[Mapping[str, Any], Context], Health]
#: What a rule module registers: (API group, kind) → rule.
Rules = dict[tuple[str, str], Rule]

#: Conditions whose ``True`` means "works" (normal-true polarity).
READINESS: tuple[str, ...] = ("Ready", "Available", "Healthy")
#: Conditions whose ``True`` means something is wrong (abnormal-true polarity).
ABNORMAL_TRUE: tuple[str, ...] = ("NotReady", "Degraded", "Failed", "Error")
#: Conditions whose ``True`` means the controller is still working.
WORKING: tuple[str, ...] = ("Reconciling", "Progressing")
#: A ``Progressing=True`` condition with these reasons reports a finished rollout (Deployment style).
DONE_REASONS = frozenset({"NewReplicaSetAvailable", "Complete", "Completed", "Succeeded", "RolloutCompleted"})
#: Reasons of a ``Ready=False`` condition that say "not yet" rather than "failed".
IN_PROGRESS_REASONS = frozenset(
    {
        "Progressing",
        "Reconciling",
        "Pending",
        "InProgress",
        "Creating",
        "Provisioning",
        "Initializing",
        "Installing",
        "Upgrading",
        "Updating",
        "Deploying",
        "Waiting",
        "NotReconciled",
        "DependencyNotReady",
    }
)


# --------------------------------------------------------------------------- phrases


def said(cond: Condition) -> str:
    """What a condition says: its message, else its reason, else ``Type=Status``."""
    return cond.message or cond.reason or f"{cond.type}={cond.status or 'unset'}"


def state(cond: Condition) -> str:
    """``Ready is False: Reason: message`` — a condition that is not in its good state."""
    return f"{cond.type} is {cond.status or 'unset'}: {cond.describe()}"


def stated(cond: Condition) -> str:
    """``Issuing: message`` — a condition that is set (True) and says what is happening."""
    return f"{cond.type}: {said(cond)}"


def flagged(cond: Condition) -> str:
    """``NotReady: Reason: message`` — an abnormal-true condition that is set."""
    return f"{cond.type}: {cond.describe()}"


def good(cond: Condition) -> str:
    """``Ready is True: message`` (or just ``Ready is True``)."""
    return f"{cond.type} is True" + (f": {cond.message}" if cond.message else "")


# --------------------------------------------------------------------------- raw condition fields


def raw_condition(obj: Mapping[str, Any], type_: str, path: Sequence[str] = ("status",)) -> Mapping[str, Any]:
    """The condition mapping of ``type_`` under ``path`` (``status.conditions`` by default)."""
    return raw_in(section(obj, *path).get("conditions"), type_)


def raw_in(raw_conditions: Any, type_: str) -> Mapping[str, Any]:
    """The condition mapping of ``type_`` in a list of raw conditions (``{}`` if absent)."""
    for raw in items(raw_conditions):
        if text(raw.get("type")) == type_:
            return raw
    return {}


def stale_condition(
    obj: Mapping[str, Any], cond: Condition | None, raw_conditions: Any = None
) -> Health | None:
    """Progressing when ``cond`` carries an ``observedGeneration`` older than the object's
    ``metadata.generation`` (``metav1.Condition``): it describes a spec that is gone.

    ``raw_conditions`` is the list ``cond`` came from (``status.conditions`` by default)."""
    if cond is None:
        return None
    raw = raw_condition(obj, cond.type) if raw_conditions is None else raw_in(raw_conditions, cond.type)
    generation = optional_int(section(obj, "metadata").get("generation"))
    observed = optional_int(raw.get("observedGeneration"))
    if generation is None or observed is None or observed >= generation:
        return None
    return Health(
        HealthStatus.PROGRESSING,
        f"waiting for the controller to report on generation {generation} "
        f"({cond.type} describes generation {observed})",
    )


def severity(obj: Mapping[str, Any], cond: Condition, path: Sequence[str] = ("status",)) -> str:
    """The ``severity`` of a condition (Cluster API, Knative): ``Error``, ``Warning``, ``Info`` or ``""``."""
    return text(raw_condition(obj, cond.type, path).get("severity"))


def since(cond: Condition | None, obj: Mapping[str, Any]) -> datetime | None:
    """When a state began: the condition's last transition, else the object's creation — never
    before the creation (CRD defaults such as Gateway API's ``Waiting for controller`` carry a
    ``lastTransitionTime`` of 1970)."""
    created = parse_time(section(obj, "metadata").get("creationTimestamp"))
    changed = cond.last_transition if cond is not None else None
    if changed is None:
        return created
    return changed if created is None or changed >= created else created


def activity(obj: Mapping[str, Any], conds: Iterable[Condition] | None = None) -> datetime | None:
    """:func:`~moorage.engine.health.types.last_activity`, never before the object's creation."""
    created = parse_time(section(obj, "metadata").get("creationTimestamp"))
    last = last_activity(obj, conds)
    if last is None or (created is not None and last < created):
        return created
    return last


def deadline(
    health: Health,
    obj: Mapping[str, Any],
    ctx: Context,
    cond: Condition | None = None,
    conds: Iterable[Condition] | None = None,
) -> Health:
    """Progressing turns Degraded after ``ctx.progress_deadline``: counted from ``cond``'s
    transition when given (the state that decided), else from the object's last activity."""
    start = since(cond, obj) if cond is not None else activity(obj, conds)
    return with_deadline(health, obj, ctx, since=start)


def working(conds: Iterable[Condition]) -> Condition | None:
    """A ``Reconciling`` / ``Progressing`` condition saying the controller is still at work."""
    listed = list(conds)
    for type_ in WORKING:
        cond = find(listed, type_)
        if cond is not None and cond.true and cond.reason not in DONE_REASONS:
            return cond
    return None


def abnormal(conds: Iterable[Condition], types: Iterable[str] = ABNORMAL_TRUE) -> Condition | None:
    """The first abnormal-true condition that is ``True``."""
    listed = list(conds)
    for type_ in types:
        cond = find(listed, type_)
        if cond is not None and cond.true:
            return cond
    return None


def suspended(obj: Mapping[str, Any]) -> Health | None:
    if section(obj, "spec").get("suspend") is True:
        return Health(HealthStatus.SUSPENDED, "suspended (spec.suspend is true)")
    return None


def annotation(obj: Mapping[str, Any], key: str) -> str:
    return text(section(obj, "metadata", "annotations").get(key))


def kind_of(obj: Mapping[str, Any]) -> str:
    return text(obj.get("kind")) or "resource"


# --------------------------------------------------------------------------- the generic reading


def evaluate(obj: Mapping[str, Any], conds: list[Condition] | None = None) -> Health:
    """The kstatus reading of an object, without a deadline (callers apply theirs):

    1. ``spec.suspend: true`` → Suspended;
    2. ``status.observedGeneration`` behind ``metadata.generation`` → Progressing;
    3. ``Stalled=True`` → Degraded;
    4. an abnormal-true condition (``NotReady``, ``Degraded``, ``Failed``, ``Error``) ``True`` → Degraded;
    5. readiness conditions (``Ready``, ``Available``, ``Healthy``): a stale one (its
       ``observedGeneration`` behind) → Progressing; ``False`` → Degraded, unless
       ``Reconciling``/``Progressing`` is ``True`` or its reason says "not yet" (then Progressing);
       ``Unknown`` or unset → Progressing; all ``True`` → Healthy, unless still reconciling;
    6. no readiness condition: ``Reconciling``/``Progressing=True`` → Progressing, else Healthy —
       the reason says nothing was checked.
    """
    conds = conditions(obj) if conds is None else conds
    pause = suspended(obj)
    if pause is not None:
        return pause
    lag = generation_lag(obj)
    if lag is not None:
        return lag
    stalled = find(conds, "Stalled")
    if stalled is not None and stalled.true:
        return Health(HealthStatus.DEGRADED, f"stalled: {stalled.describe()}")
    failure = abnormal(conds)
    if failure is not None:
        return Health(HealthStatus.DEGRADED, flagged(failure))
    busy = working(conds)
    readiness = [c for t in READINESS if (c := find(conds, t)) is not None]
    if readiness:
        for cond in readiness:
            stale = stale_condition(obj, cond)
            if stale is not None:
                return stale
        failed = next((c for c in readiness if c.false), None)
        if failed is not None:
            if busy is not None:
                return Health(
                    HealthStatus.PROGRESSING,
                    f"{busy.type.lower()}: {busy.describe()} ({state(failed)})",
                )
            if failed.reason in IN_PROGRESS_REASONS:
                return Health(HealthStatus.PROGRESSING, state(failed))
            return Health(HealthStatus.DEGRADED, state(failed))
        pending = next((c for c in readiness if not c.true), None)
        if pending is not None:
            return Health(HealthStatus.PROGRESSING, state(pending))
        if busy is not None:
            return Health(HealthStatus.PROGRESSING, f"{busy.type.lower()}: {busy.describe()}")
        return Health(HealthStatus.HEALTHY, good(readiness[0]))
    if busy is not None:
        return Health(HealthStatus.PROGRESSING, f"{busy.type.lower()}: {busy.describe()}")
    what = "has no status" if not section(obj, "status") else "reports no readiness condition"
    return Health(
        HealthStatus.HEALTHY,
        f"exists and {what}; there is no health rule for {kind_of(obj)},"
        " so it counts as healthy once it exists",
    )


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    """:func:`evaluate`, Progressing turning Degraded after ``ctx.progress_deadline`` (counted
    from the newest condition transition, managedFields write or creation)."""
    conds = conditions(obj)
    return deadline(evaluate(obj, conds), obj, ctx, conds=conds)
