"""bitnami.com/SealedSecret: did the controller unseal it into a Secret?

The sealed-secrets controller sets ``status.observedGeneration`` and the condition ``Synced``:
``True`` once the Secret is written, ``False`` with the error otherwise (typically ``no key could
decrypt secret``: it was sealed for another cluster's key, or for another name/namespace under
the default ``strict`` scope).

* Generation not observed → Progressing.
* ``Synced=False`` → Degraded with the message and a hint.
* ``Synced=True`` → Healthy.
* No status yet → Progressing, Degraded after ``progress_deadline`` (the controller is not
  running, or watches other namespaces).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, good, state
from moorage.engine.health.types import Context, Health, HealthStatus, conditions, find, generation_lag


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx)
    synced = find(conditions(obj), "Synced")
    if synced is None:
        return deadline(
            Health(HealthStatus.PROGRESSING, "waiting for the sealed-secrets controller to unseal it"),
            obj,
            ctx,
        )
    if synced.true:
        return Health(HealthStatus.HEALTHY, good(synced))
    if synced.false:
        hint = (
            " (re-seal it with this cluster's certificate: `kubeseal --fetch-cert`; the name and namespace"
            " are part of the seal unless its scope says otherwise)"
            if "decrypt" in synced.message
            else ""
        )
        return Health(HealthStatus.DEGRADED, f"{state(synced)}{hint}")
    return deadline(Health(HealthStatus.PROGRESSING, state(synced)), obj, ctx, synced)


RULES: Rules = {("bitnami.com", "SealedSecret"): assess}
