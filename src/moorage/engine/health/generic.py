"""Custom resources (and kinds with nothing to check) by the kstatus conventions.

The reading is :func:`moorage.engine.health.kstatus.evaluate` (sources and the table in
``docs/health.md``):

1. ``spec.suspend: true`` → Suspended (Flux kinds, CronJob, many operators).
2. ``status.observedGeneration`` behind ``metadata.generation`` → Progressing.
3. ``Stalled=True`` → Degraded.
4. Abnormal-true conditions (``NotReady``, ``Degraded``, ``Failed``, ``Error``) ``True`` → Degraded.
5. Readiness conditions ``Ready`` / ``Available`` / ``Healthy``: one written for an older
   generation (its ``observedGeneration``) → Progressing; any ``False`` → Degraded with that
   condition's message, unless ``Reconciling=True`` or ``Progressing=True`` says the controller
   is still working, or its reason says "not yet" (``Progressing``, ``Pending``, ``Creating``, …),
   then Progressing; ``Unknown`` (or no status) → Progressing; all ``True`` → Healthy, unless
   still reconciling.
6. Without readiness conditions: ``Reconciling`` / ``Progressing`` = True → Progressing.
7. Otherwise Healthy: ankra-spec §5.6, unknown kinds count as healthy once they exist —
   and the reason says so, because nothing was actually checked.

Crossplane managed resources, composites and claims have groups no table can list (every
provider and every XRD brings its own); they are recognised here by group suffix or shape and
judged by :mod:`moorage.engine.health.crossplane`.

Every Progressing here turns Degraded after ``progress_deadline``, counted from the newest
condition transition (or managedFields write, or creation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health import crossplane, kstatus
from moorage.engine.health.types import Context, Health, HealthStatus, section, text

#: Built-in kinds whose health is their existence: they have no status to check.
STATIC_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Namespace"),
        ("", "Endpoints"),
        ("", "LimitRange"),
        ("", "ResourceQuota"),
        ("", "PersistentVolume"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("networking.k8s.io", "IngressClass"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("node.k8s.io", "RuntimeClass"),
        ("coordination.k8s.io", "Lease"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    }
)


def _suspended(obj: Mapping[str, Any]) -> Health | None:
    if section(obj, "spec").get("suspend") is True:
        return Health(HealthStatus.SUSPENDED, "suspended (spec.suspend is true)")
    return None


def assess_static(obj: Mapping[str, Any], ctx: Context) -> Health:  # noqa: ARG001 - uniform signature
    suspended = _suspended(obj)
    if suspended is not None:
        return suspended
    kind = text(obj.get("kind")) or "resource"
    return Health(HealthStatus.HEALTHY, f"exists (a {kind} has no status to check)")


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    api_version = text(obj.get("apiVersion"))
    if crossplane.handles_group(api_version.rpartition("/")[0]) or crossplane.looks_like(obj):
        return crossplane.resource(obj, ctx)
    return kstatus.assess(obj, ctx)
