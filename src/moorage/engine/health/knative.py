"""Knative: Serving (Service, Configuration, Route, Revision, DomainMapping) and Eventing
(Broker, Trigger, channels, subscriptions, sources).

Knative resources have a ``Ready`` condition summarising the others (a Service:
``ConfigurationsReady`` and ``RoutesReady``; a Revision: ``ResourcesAvailable``,
``ContainerHealthy``; a Route: ``AllTrafficAssigned``, ``IngressReady``, ``CertificateProvisioned``).
Conditions may carry a ``severity``: only ``Error`` (or none) ones count towards ``Ready``;
``Warning``/``Info`` are informational. ``status.observedGeneration`` is written.

* Generation not observed → Progressing.
* ``Ready=True`` → Healthy, with the URL and latest ready revision where present.
* ``Ready=False`` → Degraded, naming the first ``False`` dependent condition (``ConfigurationsReady``:
  ``RevisionFailed`` …) — also when an older revision still serves: the new spec did not go live.
* ``Ready=Unknown`` (or missing) → Progressing, naming the dependent that is not ready yet;
  Degraded after ``progress_deadline``.
* A Revision ``Active=False`` (``NoTraffic``: scaled to zero) is fine and said so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, good, severity, state
from moorage.engine.health.types import (
    Condition,
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    section,
    text,
)

SERVING = ("Service", "Configuration", "Route", "Revision", "DomainMapping")
EVENTING = {
    "eventing.knative.dev": ("Broker", "Trigger", "EventType"),
    "messaging.knative.dev": ("Channel", "InMemoryChannel", "Subscription"),
    "sources.knative.dev": ("ApiServerSource", "PingSource", "ContainerSource", "SinkBinding"),
}


def _dependents(obj: Mapping[str, Any], conds: list[Condition]) -> list[Condition]:
    return [c for c in conds if c.type != "Ready" and severity(obj, c) in ("", "Error")]


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx)
    conds = conditions(obj)
    ready = find(conds, "Ready")
    deps = _dependents(obj, conds)
    if ready is not None and ready.true:
        url = text(status.get("url"))
        revision = text(status.get("latestReadyRevisionName"))
        notes = [f"serving {url}" if url else "", f"revision {revision}" if revision else ""]
        active = find(conds, "Active")
        if active is not None and active.false:
            notes.append(f"scaled to zero ({active.reason or 'inactive'})")
        extra = "; ".join(n for n in notes if n)
        return Health(HealthStatus.HEALTHY, good(ready) + (f" ({extra})" if extra else ""))
    if ready is not None and ready.false:
        failed = next((c for c in deps if c.false and c.type != "Active"), None)
        return Health(HealthStatus.DEGRADED, state(failed if failed is not None else ready))
    pending = next((c for c in deps if not c.true and c.type != "Active"), None)
    what = (
        state(pending)
        if pending is not None
        else (state(ready) if ready is not None else "waiting for Ready")
    )
    return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, ready)


RULES: Rules = {
    **{("serving.knative.dev", kind): assess for kind in SERVING},
    **{(group, kind): assess for group, kinds in EVENTING.items() for kind in kinds},
}
