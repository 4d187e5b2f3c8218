"""Istio: only what Istio really writes.

Istio's configuration kinds (``networking.istio.io``, ``security.istio.io``,
``telemetry.istio.io``, ``extensions.istio.io``) get a ``status`` only when istiod is told to
write one: ``status.validationMessages`` from its analyzers (``level`` ``ERROR``/``WARNING``/
``INFO``, ``type.code`` such as ``IST0101``, ``documentationUrl``) and, with status distribution
on, the condition ``Reconciled`` (the configuration reached all proxies).
``status.observedGeneration`` is a string there.

* An analysis message of level ``ERROR`` → Degraded, naming its code and name.
* ``Reconciled=False`` → Progressing (proxies still receive it), Degraded after ``progress_deadline``.
* Otherwise Healthy — and with no status at all the reason says that istiod writes none by
  default, so nothing was checked. Warnings are named in the reason.

The installation kinds: IstioOperator (``install.istio.io``) reports ``status.status``
(``HEALTHY``, ``RECONCILING``/``UPDATING``, ``ERROR``, ``ACTION_REQUIRED``); the Sail operator's
kinds (``sailoperator.io`` Istio, IstioRevision, IstioCNI, ZTunnel) use ``Ready``/``Reconciled``
conditions and are read by the kstatus conventions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health import kstatus
from moorage.engine.health.kstatus import Rules, deadline, good, state
from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    items,
    names,
    section,
    text,
)

CONFIG_KINDS = {
    "networking.istio.io": (
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "Sidecar",
        "WorkloadEntry",
        "WorkloadGroup",
        "EnvoyFilter",
        "ProxyConfig",
    ),
    "security.istio.io": ("AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"),
    "telemetry.istio.io": ("Telemetry",),
    "extensions.istio.io": ("WasmPlugin",),
}
SAIL_KINDS = ("Istio", "IstioRevision", "IstioCNI", "ZTunnel", "IstioRevisionTag")


def _message(entry: Mapping[str, Any]) -> str:
    kind = section(entry, "type")
    code, name = text(kind.get("code")), text(kind.get("name"))
    url = text(entry.get("documentationUrl"))
    label = " ".join(p for p in (code, name) if p) or "analysis message"
    return label + (f" (see {url})" if url else "")


def config(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    kind = text(obj.get("kind")) or "object"
    messages = items(status.get("validationMessages"))
    errors = [_message(m) for m in messages if text(m.get("level")).upper() == "ERROR"]
    if errors:
        return Health(HealthStatus.DEGRADED, f"istiod analysis: {names(errors)}")
    warnings = [_message(m) for m in messages if text(m.get("level")).upper() == "WARNING"]
    warned = f"; istiod warns: {names(warnings)}" if warnings else ""
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx)
    reconciled = find(conditions(obj), "Reconciled")
    if reconciled is not None and not reconciled.true:
        return deadline(Health(HealthStatus.PROGRESSING, state(reconciled) + warned), obj, ctx, reconciled)
    if reconciled is not None:
        return Health(HealthStatus.HEALTHY, good(reconciled) + warned)
    if not status:
        return Health(
            HealthStatus.HEALTHY,
            f"exists (istiod writes no status on a {kind} unless status reporting is enabled;"
            " nothing checked)",
        )
    return Health(HealthStatus.HEALTHY, f"no analysis errors{warned}")


def istio_operator(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    state_ = text(status.get("status")).upper()
    message = text(status.get("message")).strip()
    said = f": {message}" if message else ""
    broken = [
        name
        for name, component in section(status, "componentStatus").items()
        if isinstance(component, Mapping)
        and text(component.get("status")).upper() in ("ERROR", "ACTION_REQUIRED")
    ]
    which = f" (components: {names([str(b) for b in broken])})" if broken else ""
    if state_ == "HEALTHY":
        return Health(HealthStatus.HEALTHY, "status HEALTHY")
    if state_ in ("ERROR", "ACTION_REQUIRED"):
        return Health(HealthStatus.DEGRADED, f"status {state_}{said}{which}")
    what = f"status {state_}{said}" if state_ else "waiting for the operator to report a status"
    return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx)


RULES: Rules = {
    **{(group, kind): config for group, kinds in CONFIG_KINDS.items() for kind in kinds},
    ("install.istio.io", "IstioOperator"): istio_operator,
    **{("sailoperator.io", kind): kstatus.assess for kind in SAIL_KINDS},
}
