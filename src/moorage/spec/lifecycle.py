"""The lifecycle state of an add-on, and its one-line reason, from what the agent observed and what
the server knows (agent liveness, queued jobs, a rollback hold). One pure function, `decide`, so
every state can be checked by a table; the server stores each change as a transition.

The order of the checks is the order of what a person must know first: that nothing can be known
(agent offline), that something is changing it now, that it is broken, that it differs from what
was asked, and only then that all is well. Suspended resources (a paused canary, a suspended
CronJob) are not a state of their own: the add-on keeps its state and the reason names them; under
strict health they count as not yet Healthy, as Progressing does."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from moorage.spec.protocol import AddonObservation


class AddonState(StrEnum):
    PENDING = "Pending"  # queued: to be installed, or a sync that will change it is waiting
    DEPLOYING = "Deploying"  # a job is changing it (or its resources are still rolling out)
    SYNCED = "Synced"  # deployed, matches the definition, no drift, healthy
    DEGRADED = "Degraded"  # unhealthy, or its last deploy failed
    OUT_OF_SYNC = "OutOfSync"  # drift, or the definition differs from what is deployed
    UNKNOWN = "Unknown"  # agent offline past the threshold, or it cannot be determined


class Cause(StrEnum):
    """Why a state was (re)computed: stored with every transition."""

    SYNC = "sync"
    SWEEP = "sweep"
    HEAL = "heal"
    ROLLBACK = "rollback"
    RESUME = "resume"
    DEFINE = "define"  # a restarted agent got its definition back
    CONNECT = "connect"  # the agent's full report after it (re)connected
    AGENT_OFFLINE = "agent offline"
    QUEUED = "queued"


@dataclass(frozen=True)
class Lifecycle:
    state: AddonState
    reason: str


@dataclass(frozen=True)
class ServerView:
    """What only the server knows about an add-on."""

    agent_online: bool = True
    agent_seen: str = ""  # "last seen 5 min ago", for the Unknown reason
    queued: bool = False  # a sync job that includes it waits for the agent
    held_revision: int | None = None  # rolled back to this revision; self-heal and syncs hold it


def _field_summary(drift: list[dict[str, Any]], limit: int = 2) -> str:
    parts: list[str] = []
    for resource in drift:
        what = f"{resource.get('kind')} {resource.get('name')}"
        if resource.get("drift_type") == "missing":
            parts.append(f"{what} is missing")
            continue
        for change in resource.get("changes") or []:
            path = change.get("path", "?")
            if "want" in change or "live" in change:
                parts.append(f"{what}: {path}: want {change.get('want')}, live {change.get('live')}")
            else:
                parts.append(f"{what}: {path}")
        if not resource.get("changes"):
            parts.append(f"{what} differs")
    more = len(parts) - limit
    text = "; ".join(parts[:limit])
    return text + (f" (and {more} more)" if more > 0 else "")


def _conflict_note(obs: AddonObservation) -> str:
    if not obs.conflicts:
        return ""
    c = obs.conflicts[0]
    return (
        f"; healing stopped: {c.get('manager', 'another field manager')} keeps changing "
        f"{c.get('path', 'a field')} (add the ignore_differences entry shown in the drift)"
    )


def _suspended_note(obs: AddonObservation) -> str:
    if not obs.suspended:
        return ""
    return "; suspended: " + ", ".join(obs.suspended[:3]) + (" …" if len(obs.suspended) > 3 else "")


def decide(obs: AddonObservation | None, view: ServerView) -> Lifecycle:
    """The add-on's lifecycle state and a reason a person can act on."""
    if not view.agent_online:
        seen = f" ({view.agent_seen})" if view.agent_seen else ""
        return Lifecycle(AddonState.UNKNOWN, f"the cluster's agent is offline{seen}; state cannot be checked")
    if obs is None:
        if view.queued:
            return Lifecycle(AddonState.PENDING, "a sync is queued for the agent")
        return Lifecycle(AddonState.UNKNOWN, "the agent has not reported this add-on yet")
    if obs.deploying:
        return Lifecycle(AddonState.DEPLOYING, f"a job is deploying {obs.chart} {obs.version}")
    if view.queued:
        return Lifecycle(AddonState.PENDING, "a sync that changes it is queued for the agent")
    if not obs.installed:
        if obs.last_error:
            return Lifecycle(AddonState.DEGRADED, f"install failed: {obs.last_error}")
        if not obs.automated:
            return Lifecycle(
                AddonState.OUT_OF_SYNC,
                "not installed: changes waiting for a manual sync (moorage addons sync)",
            )
        return Lifecycle(AddonState.PENDING, "not installed yet")
    status = obs.helm_status or "unknown"
    if status.startswith("pending"):
        return Lifecycle(AddonState.DEPLOYING, f"helm operation in progress (release {status})")
    if status == "failed":
        why = f": {obs.last_error}" if obs.last_error else ""
        return Lifecycle(AddonState.DEGRADED, f"release revision {obs.revision} failed{why}")
    if view.held_revision is not None:
        return Lifecycle(
            AddonState.OUT_OF_SYNC,
            f"rolled back to revision {view.held_revision}, out of sync with Git; self-heal and syncs "
            "are held until the next commit that changes it or `moorage addons resume`",
        )
    health = obs.health or "Unknown"
    if health in ("Degraded", "Missing"):
        return Lifecycle(AddonState.DEGRADED, (obs.health_reason or health) + _suspended_note(obs))
    if not obs.definition_matches:
        what = "; ".join(obs.definition_diff[:3]) or "the definition differs from the release"
        if not obs.automated:
            return Lifecycle(AddonState.OUT_OF_SYNC, f"changes waiting for a manual sync: {what}")
        if obs.last_error:
            return Lifecycle(AddonState.DEGRADED, f"deploy failed: {obs.last_error}")
        return Lifecycle(AddonState.OUT_OF_SYNC, f"definition differs: {what}")
    if obs.drift or obs.drift_omitted:
        summary = _field_summary(obs.drift) or f"{obs.drift_omitted} field(s)"
        heal = "" if (obs.automated and obs.self_heal) else " (self-heal is off)"
        return Lifecycle(AddonState.OUT_OF_SYNC, f"drift: {summary}{heal}{_conflict_note(obs)}")
    if health == "Progressing" or (health == "Suspended" and obs.strict_health):
        why = obs.health_reason or health
        if health == "Suspended":
            why += " (strict health counts Suspended as not yet Healthy)"
        return Lifecycle(AddonState.DEPLOYING, f"rolling out: {why}")
    if health == "Unknown":
        return Lifecycle(
            AddonState.UNKNOWN, f"health cannot be determined: {obs.health_reason or 'no reason'}"
        )
    return Lifecycle(
        AddonState.SYNCED,
        f"revision {obs.revision} of {obs.release_chart} {obs.release_version} is deployed and healthy"
        + _suspended_note(obs),
    )
