"""Flux (``*.toolkit.fluxcd.io``): HelmRelease, Kustomization, the sources (GitRepository,
HelmRepository, OCIRepository, Bucket, HelmChart), notification and image automation kinds.

Flux follows kstatus: ``Ready``, ``Reconciling`` and ``Stalled`` (``fluxcd/pkg`` runtime
conditions). While it works, ``Reconciling=True`` (reason ``Progressing``) and ``Ready=Unknown``.
When an attempt fails, ``Ready=False`` carries the failure reason (``InstallFailed``,
``UpgradeFailed``, ``BuildFailed``, ``HealthCheckFailed``, ``ArtifactFailed``,
``AuthenticationFailed``, …) and the controller keeps ``Reconciling=True`` with reason
``ProgressingWithRetry``; ``status.observedGeneration`` is only advanced once Ready or Stalled.

* ``spec.suspend: true`` → Suspended.
* ``Stalled=True`` → Degraded (retries exhausted, or an error no retry can fix).
* ``Ready=False`` with a failure reason → Degraded with the failure message, also while Flux
  retries — a retrying failure is still a failure (it reads "retrying" in the reason). Only when
  the failure describes an older generation than the one Flux is now reconciling (the
  condition's ``observedGeneration``) is it Progressing.
* Source failures reported as abnormal-true conditions (``FetchFailed``, ``BuildFailed``,
  ``StorageOperationFailed``, ``IncludeUnavailable``) → Degraded.
* ``Ready=False`` with ``DependencyNotReady`` / ``Progressing``, or ``ArtifactFailed`` because the
  source has no artifact yet, ``Ready=Unknown``, or generation not observed → Progressing,
  Degraded after ``progress_deadline``.
* ``Ready=True`` → Healthy with its message (the applied revision).
* No conditions: notification ``Alert``/``Provider`` (v1beta3 has no status) and HelmRepository
  of ``type: oci`` (not reconciled by source-controller) are Healthy; anything else is waiting
  for its controller → Progressing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import (
    Rules,
    abnormal,
    deadline,
    flagged,
    good,
    raw_condition,
    state,
    suspended,
)
from moorage.engine.health.types import (
    Condition,
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    generation_lag,
    optional_int,
    section,
    text,
)

#: Ready=False reasons that mean "not yet" rather than "failed".
WAITING = frozenset({"Progressing", "ProgressingWithRetry", "DependencyNotReady", "Reconciling"})
SOURCE_FAILURES = ("FetchFailed", "BuildFailed", "StorageOperationFailed", "IncludeUnavailable")
STATUSLESS = frozenset({"Alert", "Provider"})


def _source_pending(ready: Condition) -> bool:
    """``ArtifactFailed`` because the source has no artifact *yet* (``Source artifact not found``,
    ``Source is not ready``): a fresh install where the source is still fetching."""
    message = ready.message.lower()
    return (
        ready.reason == "ArtifactFailed"
        and message.startswith("source")
        and ("not found" in message or "not ready" in message)
    )


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    kind = text(obj.get("kind"))
    paused = suspended(obj)
    if paused is not None:
        return paused
    conds = conditions(obj)
    if not conds:
        if kind in STATUSLESS and not section(obj, "status"):
            return Health(HealthStatus.HEALTHY, f"exists (a {kind} of this API version has no status)")
        if kind == "HelmRepository" and text(section(obj, "spec").get("type")) == "oci":
            return Health(
                HealthStatus.HEALTHY,
                "exists (an OCI HelmRepository is not reconciled; charts are pulled directly)",
            )
        return deadline(
            Health(
                HealthStatus.PROGRESSING,
                f"waiting for the Flux controller to reconcile the {kind or 'object'}",
            ),
            obj,
            ctx,
        )
    stalled = find(conds, "Stalled")
    if stalled is not None and stalled.true:
        return Health(HealthStatus.DEGRADED, f"stalled: {stalled.describe()}")
    ready, reconciling = find(conds, "Ready"), find(conds, "Reconciling")
    retrying = reconciling is not None and reconciling.true
    if ready is not None and ready.false and _source_pending(ready):
        return deadline(
            Health(HealthStatus.PROGRESSING, f"waiting for the source: {state(ready)}"), obj, ctx, ready
        )
    if ready is not None and ready.false and ready.reason not in WAITING:
        generation = optional_int(section(obj, "metadata").get("generation"))
        observed = optional_int(raw_condition(obj, "Ready").get("observedGeneration"))
        if retrying and generation is not None and observed is not None and observed < generation:
            return deadline(
                Health(
                    HealthStatus.PROGRESSING,
                    f"reconciling generation {generation}; the previous one failed ({state(ready)})",
                ),
                obj,
                ctx,
                reconciling,
            )
        retry = f" (retrying: {reconciling.describe()})" if retrying and reconciling is not None else ""
        return Health(HealthStatus.DEGRADED, f"{state(ready)}{retry}")
    failure = abnormal(conds, SOURCE_FAILURES)
    if failure is not None:
        return Health(HealthStatus.DEGRADED, flagged(failure))
    lag = generation_lag(obj)
    if lag is not None:
        return deadline(lag, obj, ctx, conds=conds)
    if ready is None:
        return deadline(
            Health(HealthStatus.PROGRESSING, "waiting for the Ready condition"), obj, ctx, conds=conds
        )
    if not ready.true:
        what = state(ready)
        if ready.reason == "DependencyNotReady":
            what = f"waiting for a dependency: {what}"
        return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, ready)
    if retrying and reconciling is not None:
        return deadline(
            Health(HealthStatus.PROGRESSING, f"reconciling: {reconciling.describe()}"), obj, ctx, reconciling
        )
    return Health(HealthStatus.HEALTHY, good(ready))


RULES: Rules = {
    ("helm.toolkit.fluxcd.io", "HelmRelease"): assess,
    ("kustomize.toolkit.fluxcd.io", "Kustomization"): assess,
    **{
        ("source.toolkit.fluxcd.io", kind): assess
        for kind in ("GitRepository", "HelmRepository", "OCIRepository", "Bucket", "HelmChart")
    },
    **{("notification.toolkit.fluxcd.io", kind): assess for kind in ("Alert", "Provider", "Receiver")},
    **{
        ("image.toolkit.fluxcd.io", kind): assess
        for kind in ("ImageRepository", "ImagePolicy", "ImageUpdateAutomation")
    },
}
