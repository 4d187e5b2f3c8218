"""Who owns the objects an add-on's chart would create, before Moorage lets helm take them over.

helm refuses to install a chart whose objects already exist without its ownership marks; passing
`--take-ownership` makes it adopt them, whoever they belonged to. The engine asks first: objects no
one owns are adopted (and reported), objects of another Helm release or of a manifest entry are
refused unless the add-on's `settings.take_ownership` allows it (docs/spec.md)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moorage.engine import objects
from moorage.engine.inventory import OWNER_ANNOTATION
from moorage.kube import errors as kube_errors
from moorage.kube.client import KubeClient

RELEASE_NAME = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
HOOK = "helm.sh/hook"
# Argo CD's annotation tracking (its default since v3): "<application>:<group>/<kind>:<namespace>/<name>"
ARGOCD_TRACKING = "argocd.argoproj.io/tracking-id"


class OwnershipConflict(Exception):
    """The chart would take over objects that another release or entry owns (not retried)."""


@dataclass(frozen=True)
class Claim:
    """A live object the chart would create, and who owns it now."""

    key: objects.ObjectKey
    owner: str  # "" when no one does; "Helm release ns/name"; "manifest entry 'name'"
    ours: bool = False  # this add-on's own release (in the namespace it moves from)

    def describe(self) -> str:
        if self.ours:
            return f"{self.key} (from {self.owner})"
        return f"{self.key} (owned by {self.owner})" if self.owner else str(self.key)


def owner_of(
    live: Mapping[str, Any], release: str, namespaces: Sequence[str], migrating_from: str | None = None
) -> tuple[str, bool]:
    """(owner, ours) of a live object for the release `release` that lives or lived in `namespaces`;
    objects of the Argo CD Application `migrating_from` count as ours (a migration takes them)."""
    meta = live.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    tracking = str(annotations.get(ARGOCD_TRACKING) or "")
    if tracking and not annotations.get(RELEASE_NAME):
        application = tracking.split(":", 1)[0]
        return f"Argo CD Application {application}", application == migrating_from
    name = annotations.get(RELEASE_NAME)
    if name:
        namespace = annotations.get(RELEASE_NAMESPACE) or ""
        ours = name == release and namespace in namespaces
        return (
            f"Helm release {namespace}/{name}" if not ours else f"this add-on's release in {namespace}",
            ours,
        )
    entry = annotations.get(OWNER_ANNOTATION)
    if entry:
        return f"manifest entry '{str(entry).rsplit('/', 1)[-1]}'", False
    return "", False


def decide(claims: Sequence[Claim], allowed: bool, addon: str) -> list[Claim]:
    """The claims helm may take (all of them), or OwnershipConflict naming the owners refused."""
    refused = [c for c in claims if c.owner and not c.ours]
    if refused and not allowed:
        shown = "; ".join(c.describe() for c in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise OwnershipConflict(
            f"the chart of add-on {addon} would take over objects that others own: {shown}{more}; "
            "remove them from the other owner, or set settings.take_ownership: true on the add-on"
        )
    return list(claims)


async def claims(
    kube: KubeClient,
    rendered: str,
    namespace: str,
    release: str,
    previous_namespace: str | None,
    migrating_from: str | None = None,
) -> list[Claim]:
    """The existing objects among a chart's rendered manifest (hooks left out), with their owners."""
    desired: list[dict[str, Any]] = []
    for obj in objects.parse_manifest(rendered):
        if HOOK in ((obj.get("metadata") or {}).get("annotations") or {}):
            continue  # helm never checks the ownership of hooks
        try:
            desired.extend(await objects.with_namespaces(kube, [obj], namespace))
        except kube_errors.UnknownKind:
            continue  # its CRD is not installed yet: no such object exists
    live = await objects.fetch_live(kube, desired)
    namespaces = [namespace] + ([previous_namespace] if previous_namespace else [])
    found = []
    for key in sorted(live):
        current = live[key]
        if current is None:
            continue
        owner, ours = owner_of(current, release, namespaces, migrating_from)
        if ours and owner == f"this add-on's release in {namespace}":
            continue  # already the release's own: helm does not ask about it
        found.append(Claim(key, owner, ours))
    return found
