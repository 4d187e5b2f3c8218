"""external-secrets.io: ExternalSecret, ClusterExternalSecret, PushSecret, SecretStore,
ClusterSecretStore.

* ExternalSecret / PushSecret: ``Ready=True`` (``SecretSynced``) → Healthy with the last refresh;
  ``Ready=False`` (``SecretSyncedError``, ``UpdateFailed``, ``InvalidStoreRef``, ``Errored``, …) →
  Degraded with the message and a hint (the store and the remote key are the usual causes);
  no ``Ready`` yet → Progressing, Degraded after ``progress_deadline``.
* ClusterExternalSecret: ``status.failedNamespaces`` → Degraded, naming the namespaces and why;
  a negative condition (``NotReady``, ``PartiallyReady`` — older versions, set only on failure)
  → Degraded; then ``Ready`` as above.
* SecretStore / ClusterSecretStore: ``Ready=True`` (``Valid``) → Healthy; ``Ready=False``
  (``InvalidProviderConfig``, ``ValidationFailed``, …) → Degraded; none yet → Progressing.

Any abnormal-true condition (``NotReady``, ``Degraded``, ``Failed``, ``Error``) set to ``True`` is
Degraded first, and a generation not observed yet (``status.observedGeneration`` where written)
is Progressing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, abnormal, deadline, flagged, good, state, stated
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
    plural,
    section,
    text,
)

GROUP = "external-secrets.io"


def _ready(obj: Mapping[str, Any], ctx: Context, *, hint: str, healthy_note: str = "") -> Health:
    conds = conditions(obj)
    failure = abnormal(conds)
    if failure is not None:
        return Health(HealthStatus.DEGRADED, flagged(failure))
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx, conds=conds)
    ready = find(conds, "Ready")
    if ready is None:
        return deadline(
            Health(
                HealthStatus.PROGRESSING,
                "waiting for the external-secrets controller (no Ready condition yet)",
            ),
            obj,
            ctx,
        )
    if ready.true:
        return Health(HealthStatus.HEALTHY, good(ready) + healthy_note)
    if ready.false:
        return Health(HealthStatus.DEGRADED, f"{state(ready)} ({hint})")
    return deadline(Health(HealthStatus.PROGRESSING, state(ready)), obj, ctx, ready)


def external_secret(obj: Mapping[str, Any], ctx: Context) -> Health:
    refreshed = parse_time(section(obj, "status").get("refreshTime"))
    note = f"; refreshed {human_duration(ctx.now - refreshed)} ago" if refreshed is not None else ""
    return _ready(
        obj,
        ctx,
        hint="check the referenced SecretStore's Ready condition and that the remote key exists",
        healthy_note=note,
    )


def cluster_external_secret(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    failed = items(status.get("failedNamespaces"))
    if failed:
        first = failed[0]
        why = text(first.get("reason"))
        return Health(
            HealthStatus.DEGRADED,
            f"failed in {plural(len(failed), 'namespace')}: "
            f"{names([text(f.get('namespace')) or '?' for f in failed])}" + (f" ({why})" if why else ""),
        )
    conds = conditions(obj)
    for type_ in ("NotReady", "PartiallyReady"):
        cond = find(conds, type_)
        # Older versions set these types only on failure, some with status False.
        if cond is not None and cond.status in ("True", "False"):
            return Health(HealthStatus.DEGRADED, stated(cond))
    listed = status.get("provisionedNamespaces")
    provisioned = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    note = f"; provisioned in {plural(len(provisioned), 'namespace')}" if provisioned else ""
    return _ready(obj, ctx, hint="see the ExternalSecrets it created", healthy_note=note)


def store(obj: Mapping[str, Any], ctx: Context) -> Health:
    capabilities = text(section(obj, "status").get("capabilities"))
    note = f" ({capabilities})" if capabilities else ""
    return _ready(
        obj,
        ctx,
        hint="check the provider settings and the credentials the store references",
        healthy_note=note,
    )


RULES: Rules = {
    (GROUP, "ExternalSecret"): external_secret,
    (GROUP, "PushSecret"): external_secret,
    (GROUP, "ClusterExternalSecret"): cluster_external_secret,
    (GROUP, "SecretStore"): store,
    (GROUP, "ClusterSecretStore"): store,
}
