"""Add-ons removed from the definition: which of this definition's releases may be uninstalled. Pure
decisions, so that "never delete on doubt" is testable.

A removed add-on's settings left the definition with it, so its release's PRUNE_LABEL, written when
it was deployed, stands in for them. A release is considered only when it carries
`moorage.dev/cluster: <this definition>` and no add-on of the definition has its name (neither its
current release nor one a namespace move leaves behind: the move owns that). Then:

- pending-install, pending-upgrade, pending-rollback or uninstalling → WAIT: another operation may
  hold it; decided again at the next sync;
- PRUNE_LABEL "true" → UNINSTALL;
- PRUNE_LABEL "false" → KEEP: auto_prune was off;
- PRUNE_LABEL missing (deployed before the label existed) or any other value → DOUBT: kept.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from moorage.engine.context import CLUSTER_LABEL, PRUNE_LABEL
from moorage.helm.storage import PENDING, Release
from moorage.spec.content import ResolvedAddon, ResolvedCluster

# Helm marks a release "uninstalling" while an uninstall runs: someone else is already at it.
BUSY = frozenset({*PENDING, "uninstalling"})


def current_release(
    releases: Mapping[tuple[str, str], Release], addon: ResolvedAddon, cluster: str
) -> Release | None:
    """The add-on's release: in its namespace if there is one, else one this definition deployed
    under the same name in another namespace (a namespace move). Releases Moorage did not deploy
    for this definition are never taken for a move."""
    if (addon.namespace, addon.name) in releases:
        return releases[(addon.namespace, addon.name)]
    elsewhere = [
        r
        for (_, name), r in releases.items()
        if name == addon.name and r.labels.get(CLUSTER_LABEL) == cluster
    ]
    return max(
        elsewhere,
        key=lambda r: (r.last_deployed.timestamp() if r.last_deployed else 0.0, r.revision),
        default=None,
    )


class Action(StrEnum):
    UNINSTALL = "uninstall"
    KEEP = "keep"  # auto_prune was off: kept for good
    DOUBT = "doubt"  # nothing proves that pruning was allowed: kept
    WAIT = "wait"  # another operation holds the release: decided again at the next sync


@dataclass(frozen=True)
class Decision:
    release: Release
    action: Action
    reason: str  # for the outcome's message and `kept`
    code: str  # machine-readable, the outcome's `reason`

    @property
    def uninstall(self) -> bool:
        return self.action is Action.UNINSTALL


def decide(releases: Mapping[tuple[str, str], Release], cluster: ResolvedCluster) -> list[Decision]:
    """A decision for every release of this definition that no add-on of it owns any more, ordered by
    namespace and name. `releases` are the newest revisions (`helm.storage.latest`)."""
    defined = {addon.name for addon in cluster.addons.values()}
    current = {
        (r.namespace, r.name)
        for addon in cluster.addons.values()
        if (r := current_release(releases, addon, cluster.name)) is not None
    }
    decisions = []
    for key in sorted(releases):
        release = releases[key]
        if release.labels.get(CLUSTER_LABEL) != cluster.name:
            continue  # another definition's, or not deployed by Moorage: never ours to remove
        if key in current or release.name in defined:
            continue  # still defined (a name elsewhere is a namespace move's, which moves.py cleans up)
        decisions.append(_decide_one(release))
    return decisions


def _decide_one(release: Release) -> Decision:
    if release.status in BUSY:
        return Decision(
            release,
            Action.WAIT,
            f"kept for now: the release is {release.status} (another operation may hold it); "
            "decided again at the next sync",
            "release_busy",
        )
    label = release.labels.get(PRUNE_LABEL)
    if label == "true":
        return Decision(release, Action.UNINSTALL, "auto_prune was on when it was deployed", "pruned")
    if label == "false":
        return Decision(
            release, Action.KEEP, "kept because auto_prune was off when it was deployed", "auto_prune_off"
        )
    if label is None:
        why = f"it has no {PRUNE_LABEL} label (deployed before Moorage recorded it)"
    else:
        why = f"its {PRUNE_LABEL} label is {label!r}, neither 'true' nor 'false'"
    return Decision(release, Action.DOUBT, f"kept on doubt: {why}", "prune_doubt")
