"""Which Argo CD Applications can move to the native engine, and why not (pure: the server's
migration preview and the engine's migration use the same rules).

An Application is migratable when Moorage made it (its add-on is in the definition), it has one
Helm-chart source, and no Argo CD operation is running on it. Applications Moorage did not make are
listed too, so a person sees them, but are never touched.

The preview also flags the kinds an Application tracks that no dedicated health rule or user check
judges (`covered` is the engine's answer, given by the agent): after migration such objects are
judged only by the generic `status.conditions` rule (healthy once they exist, when they have no
conditions), which may be less than Argo CD's own Lua checks said. A flag does not block the
migration; a `spec.health_checks` entry for the kind removes it."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moorage.spec.content import ResolvedCluster

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ADDON_LABEL = "moorage.dev/addon"


@dataclass(frozen=True)
class Eligibility:
    application: str
    addon: str | None  # the Moorage add-on it belongs to; None: not Moorage's
    eligible: bool
    reasons: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # the kinds of the objects it tracks
    sync: str = ""
    health: str = ""
    no_health_rule: list[str] = field(default_factory=list)  # "group/Kind" only the generic rule judges

    def to_dict(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "addon": self.addon,
            "eligible": self.eligible,
            "reasons": self.reasons,
            "kinds": self.kinds,
            "sync": self.sync,
            "health": self.health,
            "no_health_rule": self.no_health_rule,
        }


def source_problem(app: Mapping[str, Any]) -> str | None:
    """Why the Application's source cannot become a Helm release, or None."""
    spec = app.get("spec") or {}
    if spec.get("sources"):
        return "it has several sources (a multi-source Application); migrate it by hand"
    if not (spec.get("source") or {}).get("chart"):
        return "its source is not a Helm chart"
    return None


def eligibility(app: Mapping[str, Any], covered: Callable[[str, str], bool] | None = None) -> Eligibility:
    """`covered(group, kind)`: whether Moorage's health rules (or the user's checks) judge that kind;
    None: not asked (no flags)."""
    meta = app.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = app.get("status") or {}
    name = str(meta.get("name") or "")
    ours = labels.get(MANAGED_BY_LABEL) == "moorage" and bool(labels.get(ADDON_LABEL))
    reasons = []
    if not ours:
        reasons.append("not made by Moorage: left alone (Moorage migrates only its own add-ons)")
    if problem := source_problem(app):
        reasons.append(problem)
    if (status.get("operationState") or {}).get("phase") == "Running":
        reasons.append("an Argo CD sync is in flight: it migrates once the sync settles")
    tracked = [r for r in status.get("resources") or [] if isinstance(r, Mapping) and r.get("kind")]
    kinds = sorted({str(r["kind"]) for r in tracked})
    group_kinds = {(str(r.get("group") or ""), str(r["kind"])) for r in tracked}
    flagged = [] if covered is None else [gk for gk in sorted(group_kinds) if not covered(*gk)]
    return Eligibility(
        application=name,
        addon=str(labels.get(ADDON_LABEL)) if ours else None,
        eligible=not reasons,
        reasons=reasons,
        kinds=kinds,
        sync=str((status.get("sync") or {}).get("status") or ""),
        health=str((status.get("health") or {}).get("status") or ""),
        no_health_rule=[f"{group}/{kind}" if group else kind for group, kind in flagged],
    )


def on_argocd(cluster: ResolvedCluster) -> list[str]:
    """The add-ons of a definition that would run on the ArgoCD engine."""
    return sorted(
        name
        for name, addon in cluster.addons.items()
        if (addon.settings.engine or cluster.default_engine or "ankra_native") == "argo_cd"
    )


def decommissioned_refusal(cluster: ResolvedCluster, decommissioned_at: str) -> str | None:
    """The validation error for a definition that uses argo_cd on a cluster whose Argo CD was
    decommissioned (a one-way step), or None."""
    names = on_argocd(cluster)
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"Argo CD was decommissioned on this cluster ({decommissioned_at}), so engine argo_cd is refused "
        f"(add-ons {shown}); set deployment_engine / settings.engine to ankra_native"
    )


def decommissioned_issue(cluster: ResolvedCluster, decommissioned_at: str) -> dict[str, Any] | None:
    """`decommissioned_refusal` as a validation error item (the shape of Issue.to_dict)."""
    message = decommissioned_refusal(cluster, decommissioned_at)
    if message is None:
        return None
    return {"severity": "error", "code": "argocd-decommissioned", "message": message, "file": None,
            "line": None, "column": None, "path": "spec.deployment_engine", "hint": ""}  # fmt: skip
