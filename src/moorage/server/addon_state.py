"""The live state of every add-on, as the agents report it (`protocol.StateReport`), over a Session.

The agent sends what it observed; the server derives the lifecycle state (`spec.lifecycle.decide`)
with what only it knows (agent liveness, a rollback hold) and stores every change of state as a
transition with its cause. Reports are ordered per agent process (session, seq): a duplicate or a
late message from an older process changes nothing, so redelivery never records a transition twice.
A full snapshot's last part names every add-on, and the server forgets the others."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session

from moorage.server.db.models import AddonState, AddonTransition, Cluster, Job, utcnow
from moorage.spec.lifecycle import AddonState as State
from moorage.spec.lifecycle import Cause, Lifecycle, ServerView, decide
from moorage.spec.protocol import AddonObservation, JobAction, JobState, StateReport

DEFINE_RETRY_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Change:
    """A state change, for the live event stream."""

    cluster: str
    addon: str
    state: str
    reason: str
    previous: str | None
    cause: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "addon",
            "cluster": self.cluster,
            "addon": self.addon,
            "state": self.state,
            "reason": self.reason,
            "previous": self.previous,
            "cause": self.cause,
            "at": self.at.isoformat(),
        }


def _view(row: AddonState | None, online: bool = True) -> ServerView:
    return ServerView(agent_online=online, held_revision=row.held_revision if row else None)


def _set(
    session: Session, cluster: Cluster, row: AddonState, life: Lifecycle, cause: str, now: datetime
) -> Change | None:
    """Store the derived state on `row`; a transition and a Change when the state moved."""
    previous = row.state if row.id else None
    row.reason = life.reason
    if previous == life.state.value:
        return None
    row.state = life.state.value
    row.state_since = now
    session.add(
        AddonTransition(
            cluster_id=cluster.id,
            addon=row.name,
            from_state=previous,
            to_state=life.state.value,
            reason=life.reason,
            cause=cause,
            at=now,
        )
    )
    return Change(cluster.name, row.name, life.state.value, life.reason, previous, cause, now)


def after(session_seq: tuple[str | None, int | None], report: StateReport) -> bool:
    """Whether the report comes after the message `session_seq` (None: none yet): a later agent
    process, or a later message of the same one. Sessions start with the process's start time, so
    they sort by age."""
    last_session, last_seq = session_seq
    if last_session is None or report.session > last_session:
        return True
    return report.session == last_session and report.seq > (last_seq if last_seq is not None else -1)


def record_state(session: Session, report: StateReport, now: datetime | None = None) -> list[Change]:
    """Apply one state report of an agent; the state changes it caused. A report older than one
    already applied (redelivered after a failed write, or handled by another replica first) still
    writes the add-ons no newer report has written; what only the newest may do (forgetting add-ons
    the agent no longer has) it skips."""
    now = now or utcnow()
    cluster = session.get(Cluster, report.cluster_id)
    if cluster is None or cluster.revoked_at is not None:
        return []
    latest = after((cluster.state_session, cluster.state_seq), report)
    if latest:
        cluster.state_session, cluster.state_seq = report.session, report.seq
    # only the rows this report is about: a one-add-on delta must not read the whole cluster
    names = [obs.name for obs in report.addons]
    rows = (
        {
            r.name: r
            for r in session.scalars(
                select(AddonState).where(AddonState.cluster_id == cluster.id, AddonState.name.in_(names))
            )
        }
        if names
        else {}
    )
    changes: list[Change] = []
    for obs in report.addons:
        row = rows.get(obs.name)
        if row is None:
            if not latest:  # a newer report may have removed it: never brought back by an older one
                continue
            row = AddonState(
                cluster_id=cluster.id, name=obs.name, namespace=obs.namespace, state="", reason=""
            )
            rows[obs.name] = row
        elif not after((row.report_session, row.report_seq), report):
            continue  # a newer report wrote this add-on already
        row.report_session, row.report_seq = report.session, report.seq
        row.namespace = obs.namespace
        row.observation = obs.model_dump(mode="json")
        row.observed_at = now
        change = _set(session, cluster, row, decide(obs, _view(row)), obs.cause, now)
        session.add(row)
        if change:
            changes.append(change)
    if not latest:
        session.flush()
        return changes
    if report.removed:
        session.execute(
            delete(AddonState).where(
                AddonState.cluster_id == cluster.id, AddonState.name.in_(sorted(report.removed))
            )
        )
    if report.snapshot is not None:
        cluster.state_snapshot = report.snapshot
        if report.all_names is not None:  # the last part: forget what the agent no longer has
            session.execute(
                delete(AddonState).where(
                    AddonState.cluster_id == cluster.id, AddonState.name.not_in(report.all_names)
                )
            )
            cluster.state_full_at = now
            cluster.state_snapshot = None
    session.flush()
    return changes


def _recompute(
    session: Session,
    cluster: Cluster,
    *,
    online: bool,
    cause: Cause,
    now: datetime,
    names: Sequence[str] | None = None,
) -> list[Change]:
    where = [AddonState.cluster_id == cluster.id]
    if names is not None:
        where.append(AddonState.name.in_(list(names)))
    changes = []
    for row in session.scalars(select(AddonState).where(*where)):
        obs = AddonObservation.model_validate(row.observation)
        change = _set(session, cluster, row, decide(obs, _view(row, online)), cause.value, now)
        if change:
            changes.append(change)
    session.flush()
    return changes


def mark_offline(session: Session, offline_after: timedelta, now: datetime | None = None) -> list[Change]:
    """Add-ons of clusters whose agent stopped sending heartbeats become Unknown (once per outage)."""
    now = now or utcnow()
    changes: list[Change] = []
    stale = session.scalars(
        select(Cluster).where(
            Cluster.agent_offline_recorded.is_(False),
            Cluster.last_heartbeat_at.is_not(None),
            Cluster.last_heartbeat_at < now - offline_after,
        )
    )
    for cluster in stale:
        cluster.agent_offline_recorded = True
        changes += _recompute(session, cluster, online=False, cause=Cause.AGENT_OFFLINE, now=now)
    return changes


def agent_back(session: Session, cluster: Cluster, now: datetime | None = None) -> list[Change]:
    """A heartbeat after an outage: the stored observations count again until the next report."""
    if not cluster.agent_offline_recorded:
        return []
    cluster.agent_offline_recorded = False
    return _recompute(session, cluster, online=True, cause=Cause.CONNECT, now=now or utcnow())


def last_definition(session: Session, cluster: Cluster) -> dict[str, Any] | None:
    """The definition the cluster's agent was last given by a sync that ran (files, root, commit)."""
    last = session.scalar(
        select(Job)
        .where(
            Job.cluster_id == cluster.id,
            Job.action == JobAction.SYNC.value,
            Job.state.in_([JobState.SUCCESS.value, JobState.FAILED.value]),
            Job.result.is_not(None),
        )
        .order_by(Job.finished_at.desc())
        .limit(1)
    )
    if last is None or not (last.result or {}).get("outcomes"):
        return None
    # the sealed registry credentials too, so a re-run or a restarted agent can fetch private charts
    kept = ("files", "root", "commit", "registry_credentials")
    return {k: v for k, v in last.payload.items() if k in kept}


def definition_for_agent(
    session: Session, cluster: Cluster, now: datetime | None = None
) -> dict[str, Any] | None:
    """The payload of a DEFINE job for an agent that lost its definition (it restarted), at most
    once a minute; None when there is nothing to give or it was just asked for."""
    now = now or utcnow()
    if cluster.define_requested_at is not None and now - cluster.define_requested_at < DEFINE_RETRY_AFTER:
        return None
    payload = last_definition(session, cluster)
    if payload is not None:
        cluster.define_requested_at = now
    return payload


# --------------------------------------------------------------------------- reads


def _cluster_rows(cluster: Cluster) -> "Select[Any]":
    return select(AddonState).where(AddonState.cluster_id == cluster.id)


def list_addons(
    session: Session,
    cluster: Cluster,
    *,
    state: str | None = None,
    search: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[AddonState], int, dict[str, int]]:
    """A page of the cluster's add-ons (by name), the total that match, and counts per state."""
    where = [AddonState.cluster_id == cluster.id]
    if state:
        where.append(AddonState.state == state)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(
            or_(
                AddonState.name.ilike(f"%{escaped}%", escape="\\"),
                AddonState.namespace.ilike(f"%{escaped}%", escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(AddonState).where(*where)) or 0
    rows = list(
        session.scalars(
            select(AddonState).where(*where).order_by(AddonState.name).offset(offset).limit(limit)
        )
    )
    return rows, total, counts(session, cluster)


def counts(session: Session, cluster: Cluster) -> dict[str, int]:
    found = dict.fromkeys((s.value for s in State), 0)
    rows = session.execute(
        select(AddonState.state, func.count())
        .where(AddonState.cluster_id == cluster.id)
        .group_by(AddonState.state)
    )
    for state, count in rows:
        found[state] = count
    return found


def get_addon(session: Session, cluster: Cluster, name: str) -> AddonState | None:
    row: AddonState | None = session.scalar(_cluster_rows(cluster).where(AddonState.name == name))
    return row


def transitions(
    session: Session, cluster: Cluster, addon: str, *, offset: int = 0, limit: int = 100
) -> tuple[list[AddonTransition], int]:
    where = [AddonTransition.cluster_id == cluster.id, AddonTransition.addon == addon]
    total = session.scalar(select(func.count()).select_from(AddonTransition).where(*where)) or 0
    rows = session.scalars(
        select(AddonTransition)
        .where(*where)
        .order_by(AddonTransition.at.desc(), AddonTransition.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), total


def hold(
    session: Session,
    cluster: Cluster,
    row: AddonState,
    revision: int,
    cause: Cause,
    now: datetime | None = None,
) -> Change | None:
    """A person rolled the add-on back: syncs leave it at `revision` until resumed."""
    now = now or utcnow()
    row.held_revision, row.held_at = revision, now
    obs = AddonObservation.model_validate(row.observation)
    return _set(session, cluster, row, decide(obs, _view(row)), cause.value, now)


def release_hold(
    session: Session, cluster: Cluster, row: AddonState, cause: Cause, now: datetime | None = None
) -> Change | None:
    now = now or utcnow()
    row.held_revision, row.held_at = None, None
    obs = AddonObservation.model_validate(row.observation)
    return _set(session, cluster, row, decide(obs, _view(row)), cause.value, now)


def held_addons(session: Session, cluster: Cluster) -> list[str]:
    return list(
        session.scalars(
            select(AddonState.name).where(
                AddonState.cluster_id == cluster.id, AddonState.held_revision.is_not(None)
            )
        )
    )


def release_holds_changed_by(
    session: Session, cluster: Cluster, changed: Sequence[str], now: datetime | None = None
) -> list[Change]:
    """A commit changed these add-ons: their rollback holds end (Git speaks again)."""
    changes = []
    for row in session.scalars(
        _cluster_rows(cluster).where(
            AddonState.held_revision.is_not(None), AddonState.name.in_(list(changed))
        )
    ):
        change = release_hold(session, cluster, row, Cause.SYNC, now)
        if change:
            changes.append(change)
    return changes
