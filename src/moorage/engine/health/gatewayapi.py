"""gateway.networking.k8s.io: GatewayClass, Gateway, the routes, and policies with ancestors.

Every condition carries ``observedGeneration``; one older than ``metadata.generation`` is stale
(the controller has not looked at the new spec yet) → Progressing. The CRDs default new objects
to ``Accepted=Unknown`` with reason ``Pending`` ("Waiting for controller"); ``Pending`` (and the
older ``NotReconciled``/``Waiting``, and ``AddressNotAssigned`` while a load balancer is being
provisioned) mean "not yet": Progressing, Degraded after ``progress_deadline``. Any other
``False`` is a definite answer → Degraded, naming the condition and its reason.

* GatewayClass: ``Accepted`` (``InvalidParameters``, ``Unsupported``, ``UnsupportedVersion`` → Degraded).
  Never accepted: no controller with ``spec.controllerName`` is running.
* Gateway: ``Accepted`` and ``Programmed``; then every listener in ``status.listeners``:
  ``Conflicted=True``, or ``Accepted``/``ResolvedRefs``/``Programmed`` ``False`` → Degraded,
  naming the listener (e.g. ``ResolvedRefs=False/InvalidCertificateRef``).
* HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute: per parent in ``status.parents``:
  ``Accepted=False`` (``NotAllowedByListeners``, ``NoMatchingListenerHostname``,
  ``NoMatchingParent``, ``UnsupportedValue``), ``ResolvedRefs=False`` (``BackendNotFound``,
  ``RefNotPermitted``, ``InvalidKind``, ``UnsupportedProtocol``) or ``PartiallyInvalid=True`` →
  Degraded naming the parent. No parent status yet → Progressing (a Gateway that never answers
  means ``parentRefs`` point nowhere, or its controller ignores the route).
* BackendTLSPolicy (and other policies with ``status.ancestors``): the same per ancestor.
* ReferenceGrant has no status: it exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, flagged, good, stale_condition, state
from moorage.engine.health.types import (
    Condition,
    Context,
    Health,
    HealthStatus,
    conditions,
    conditions_of,
    find,
    items,
    names,
    plural,
    section,
    text,
)

GROUP = "gateway.networking.k8s.io"
#: Reasons that mean "not decided yet".
WAITING = frozenset({"Pending", "NotReconciled", "Waiting", "AddressNotAssigned"})


def _failed(cond: Condition) -> bool:
    return cond.false and cond.reason not in WAITING


def _settled(cond: Condition | None) -> bool:
    return cond is not None and cond.true


def gateway_class(obj: Mapping[str, Any], ctx: Context) -> Health:
    accepted = find(conditions(obj), "Accepted")
    stale = stale_condition(obj, accepted)
    if stale is not None:
        return deadline(stale, obj, ctx, accepted)
    if accepted is not None and _failed(accepted):
        return Health(HealthStatus.DEGRADED, state(accepted))
    if accepted is not None and accepted.true:
        return Health(HealthStatus.HEALTHY, good(accepted))
    controller = text(section(obj, "spec").get("controllerName"))
    who = f" {controller}" if controller else ""
    what = state(accepted) if accepted is not None else "no Accepted condition"
    return deadline(
        Health(
            HealthStatus.PROGRESSING,
            f"waiting for the controller{who} to accept the class ({what});"
            " if none is running, nothing ever will",
        ),
        obj,
        ctx,
        accepted,
    )


def _listener_problem(listener: Mapping[str, Any]) -> str | None:
    lconds = conditions_of(listener.get("conditions"))
    name = text(listener.get("name")) or "?"
    conflicted = find(lconds, "Conflicted")
    if conflicted is not None and conflicted.true:
        return f"listener {name}: {flagged(conflicted)}"
    for type_ in ("Accepted", "ResolvedRefs", "Programmed"):
        cond = find(lconds, type_)
        if cond is not None and _failed(cond):
            return f"listener {name}: {state(cond)}"
    return None


def gateway(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    conds = conditions(obj)
    accepted, programmed = find(conds, "Accepted"), find(conds, "Programmed")
    for cond in (accepted, programmed):
        stale = stale_condition(obj, cond)
        if stale is not None:
            return deadline(stale, obj, ctx, cond)
    for cond in (accepted, programmed):
        if cond is not None and _failed(cond):
            return Health(HealthStatus.DEGRADED, state(cond))
    for listener in items(status.get("listeners")):
        problem = _listener_problem(listener)
        if problem is not None:
            return Health(HealthStatus.DEGRADED, problem)
    for cond, type_ in ((accepted, "Accepted"), (programmed, "Programmed")):
        if not _settled(cond):
            what = state(cond) if cond is not None else f"no {type_} condition yet"
            return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, cond)
    addresses = [text(a.get("value")) for a in items(status.get("addresses")) if text(a.get("value"))]
    at = f" at {names(addresses)}" if addresses else ""
    routes = sum(
        r
        for r in (listener.get("attachedRoutes") for listener in items(status.get("listeners")))
        if isinstance(r, int) and not isinstance(r, bool)
    )
    listeners = len(items(status.get("listeners")))
    attached = f"; {plural(listeners, 'listener')}, {plural(routes, 'attached route')}" if listeners else ""
    done = programmed if programmed is not None else accepted
    head = good(done) if done is not None else "programmed"
    return Health(HealthStatus.HEALTHY, f"{head}{at}{attached}")


def _ref_label(ref: Mapping[str, Any]) -> str:
    kind = text(ref.get("kind")) or "Gateway"
    where = f"{text(ref.get('namespace'))}/" if text(ref.get("namespace")) else ""
    part = f"/{text(ref.get('sectionName'))}" if text(ref.get("sectionName")) else ""
    return f"{kind} {where}{text(ref.get('name')) or '?'}{part}"


def _with_parents(
    obj: Mapping[str, Any], ctx: Context, *, key: str, ref_key: str, wanted_key: str, hint: str
) -> Health:
    status, spec = section(obj, "status"), section(obj, "spec")
    entries = items(status.get(key))
    if not entries:
        return deadline(
            Health(
                HealthStatus.PROGRESSING, f"nothing has reported on it yet (status.{key} is empty); {hint}"
            ),
            obj,
            ctx,
        )
    labels, pending = [], []
    for entry in entries:
        label = _ref_label(section(entry, ref_key))
        labels.append(label)
        raw = entry.get("conditions")
        pconds = conditions_of(raw)
        accepted, resolved = find(pconds, "Accepted"), find(pconds, "ResolvedRefs")
        for cond in (accepted, resolved):
            stale = stale_condition(obj, cond, raw)
            if stale is not None:
                return deadline(Health(stale.status, f"{label}: {stale.reason}"), obj, ctx, cond)
        for cond in (accepted, resolved):
            if cond is not None and _failed(cond):
                return Health(HealthStatus.DEGRADED, f"{label}: {state(cond)}")
        partial = find(pconds, "PartiallyInvalid")
        if partial is not None and partial.true:
            return Health(HealthStatus.DEGRADED, f"{label}: {flagged(partial)}")
        if not _settled(accepted):
            what = state(accepted) if accepted is not None else "no Accepted condition yet"
            pending.append((label, what, accepted))
    if pending:
        label, what, cond = pending[0]
        return deadline(Health(HealthStatus.PROGRESSING, f"{label}: {what}"), obj, ctx, cond)
    reported = {
        (text(section(e, ref_key).get("name")), text(section(e, ref_key).get("sectionName"))) for e in entries
    }
    missing = [
        _ref_label(ref)
        for ref in (items(spec.get(wanted_key)) if wanted_key else [])
        if (text(ref.get("name")), text(ref.get("sectionName"))) not in reported
    ]
    if missing:
        return deadline(
            Health(HealthStatus.PROGRESSING, f"waiting for {names(missing)} to report on it"), obj, ctx
        )
    return Health(HealthStatus.HEALTHY, f"accepted by {names(labels)}")


def route(obj: Mapping[str, Any], ctx: Context) -> Health:
    return _with_parents(
        obj,
        ctx,
        key="parents",
        ref_key="parentRef",
        wanted_key="parentRefs",
        hint="check that parentRefs name an existing Gateway whose controller handles this kind of route",
    )


def policy(obj: Mapping[str, Any], ctx: Context) -> Health:
    return _with_parents(
        obj,
        ctx,
        key="ancestors",
        ref_key="ancestorRef",
        wanted_key="",
        hint="check that targetRefs name a backend used by a Gateway whose controller supports this policy",
    )


def reference_grant(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    return Health(HealthStatus.HEALTHY, "exists (a ReferenceGrant has no status to check)")


RULES: Rules = {
    (GROUP, "GatewayClass"): gateway_class,
    (GROUP, "Gateway"): gateway,
    **{(GROUP, kind): route for kind in ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute")},
    (GROUP, "BackendTLSPolicy"): policy,
    (GROUP, "ReferenceGrant"): reference_grant,
}
