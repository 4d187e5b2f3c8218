"""Crossplane: packages, composition machinery, managed resources, composites and claims.

Managed resources (provider groups such as ``s3.aws.upbound.io``), composite resources and claims
(any group an XRD defines) share two conditions: ``Synced`` (the last reconcile worked:
``ReconcileSuccess`` / ``ReconcileError``) and ``Ready`` (the external resource is usable:
``Available``; ``Creating``, ``Deleting``, ``Unavailable`` otherwise; for composites
``Creating`` with the names of the unready composed resources). Asynchronous providers add
``LastAsyncOperation``.

* Annotation ``crossplane.io/paused: "true"`` → Suspended.
* ``Synced=False`` or ``LastAsyncOperation=False`` → Degraded with the error.
* ``Ready=True`` → Healthy; ``Ready`` not ``True`` → Progressing, Degraded after
  ``progress_deadline`` counted from its transition.
* Packages (``pkg.crossplane.io`` Provider, Configuration, Function and their revisions):
  ``Installed=False`` → Degraded unless it is unpacking; ``Healthy=False`` → Progressing with the
  deadline (a new revision's runtime is starting); both ``True`` → Healthy.
* CompositeResourceDefinition: ``Established`` (and ``Offered`` when it offers a claim).
* Compositions, revisions, environment and runtime configs, ProviderConfigs and their usages
  have no health of their own: they exist.

Crossplane's own groups end in ``.crossplane.io``; Upbound's providers in ``.upbound.io``. Those
are recognised by group (:func:`handles_group`); composites and claims of other groups by their
shape (:func:`looks_like`), from the generic rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, annotation, deadline, good, state
from moorage.engine.health.types import Context, Health, HealthStatus, conditions, find, section, text

GROUP_SUFFIXES = (".crossplane.io", ".upbound.io")
STATIC_KINDS = frozenset(
    {
        "Composition",
        "CompositionRevision",
        "EnvironmentConfig",
        "DeploymentRuntimeConfig",
        "ControllerConfig",
        "ImageConfig",
        "ProviderConfig",
        "ClusterProviderConfig",
        "ProviderConfigUsage",
        "ClusterProviderConfigUsage",
        "StoreConfig",
    }
)
PACKAGE_KINDS = (
    "Provider",
    "Configuration",
    "Function",
    "ProviderRevision",
    "ConfigurationRevision",
    "FunctionRevision",
)
#: ``spec`` fields only Crossplane resources have (managed: forProvider/providerConfigRef;
#: composites and claims: compositionRef/compositionSelector/resourceRefs/crossplane).
SHAPE_FIELDS = (
    "forProvider",
    "providerConfigRef",
    "compositionRef",
    "compositionSelector",
    "resourceRefs",
    "crossplane",
)


def handles_group(group: str) -> bool:
    return group.endswith(GROUP_SUFFIXES)


def looks_like(obj: Mapping[str, Any]) -> bool:
    """A managed resource, composite or claim of any group: Crossplane spec fields and a
    ``Synced`` or ``Ready`` condition."""
    spec = section(obj, "spec")
    if not any(field in spec for field in SHAPE_FIELDS):
        return False
    return any(c.type in ("Synced", "Ready") for c in conditions(obj))


def resource(obj: Mapping[str, Any], ctx: Context) -> Health:
    """Managed resources, composites and claims (and the fallback for Crossplane groups)."""
    kind = text(obj.get("kind"))
    if kind in STATIC_KINDS:
        return Health(HealthStatus.HEALTHY, f"exists (a {kind} has no health of its own)")
    if annotation(obj, "crossplane.io/paused").lower() == "true":
        return Health(HealthStatus.SUSPENDED, "reconciliation paused (annotation crossplane.io/paused)")
    conds = conditions(obj)
    for type_ in ("Synced", "LastAsyncOperation"):
        cond = find(conds, type_)
        if cond is not None and cond.false:
            return Health(HealthStatus.DEGRADED, state(cond))
    ready = find(conds, "Ready")
    if ready is not None and ready.true:
        return Health(HealthStatus.HEALTHY, good(ready))
    if ready is not None:
        return deadline(Health(HealthStatus.PROGRESSING, state(ready)), obj, ctx, ready)
    synced = find(conds, "Synced")
    what = (
        "synced; waiting for Ready"
        if synced is not None and synced.true
        else "waiting for Crossplane to reconcile it"
    )
    return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, synced)


def package(obj: Mapping[str, Any], ctx: Context) -> Health:
    conds = conditions(obj)
    installed, healthy = find(conds, "Installed"), find(conds, "Healthy")
    if installed is not None and installed.false and installed.reason != "UnpackingPackage":
        return Health(HealthStatus.DEGRADED, state(installed))
    if installed is not None and installed.true and healthy is not None and healthy.true:
        return Health(HealthStatus.HEALTHY, good(healthy))
    for cond, type_ in ((installed, "Installed"), (healthy, "Healthy")):
        if cond is None or not cond.true:
            what = state(cond) if cond is not None else f"waiting for {type_}"
            return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, cond)
    return Health(HealthStatus.HEALTHY, "installed and healthy")


def definition(obj: Mapping[str, Any], ctx: Context) -> Health:
    conds = conditions(obj)
    offers_claim = bool(section(section(obj, "spec"), "claimNames"))
    wanted = ("Established", "Offered") if offers_claim else ("Established",)
    for type_ in wanted:
        cond = find(conds, type_)
        if cond is not None and cond.false:
            return Health(HealthStatus.DEGRADED, state(cond))
        if cond is None or not cond.true:
            what = state(cond) if cond is not None else f"waiting for {type_}"
            return deadline(Health(HealthStatus.PROGRESSING, what), obj, ctx, cond)
    return Health(HealthStatus.HEALTHY, "established" + (" and offered" if offers_claim else ""))


RULES: Rules = {
    **{("pkg.crossplane.io", kind): package for kind in PACKAGE_KINDS},
    ("pkg.crossplane.io", "DeploymentRuntimeConfig"): resource,
    ("pkg.crossplane.io", "ControllerConfig"): resource,
    ("pkg.crossplane.io", "ImageConfig"): resource,
    ("apiextensions.crossplane.io", "CompositeResourceDefinition"): definition,
    ("apiextensions.crossplane.io", "Composition"): resource,
    ("apiextensions.crossplane.io", "CompositionRevision"): resource,
    ("apiextensions.crossplane.io", "EnvironmentConfig"): resource,
    ("apiextensions.crossplane.io", "Usage"): resource,
}
