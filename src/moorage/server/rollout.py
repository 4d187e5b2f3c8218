"""Fleet roll-forward (issue 12, item 6): the server, told where the moorage-agent chart is published
(MOORAGE_AGENT_CHART), polls it every MOORAGE_ROLL_FORWARD_POLL_SECONDS, and when a newer version
than an online agent reports is there, upgrades the agents in batches with Upgrade Agent jobs (the
same `upgrade_agent` job as `POST /clusters/{name}/agent/upgrade`), stopping at the first failure.

What to do is decided by server/rollout_plan.py from the database alone (the clusters, their
heartbeats, the roll-forward's own operations), so every replica can answer the status and any
replica can carry on after another: each round is taken by one replica (a transaction-level
advisory try-lock, `leases.try_round`, as job expiry does), which creates the batch's operations in
that transaction and hands the jobs to the agents after it commits."""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from moorage.charts.source import ChartSource, ChartSourceError
from moorage.server import leases, service
from moorage.server.db.models import Cluster, Operation
from moorage.server.db.session import SessionFactory, in_transaction
from moorage.server.ports import Bus
from moorage.server.registries import vet_for
from moorage.server.rollout_plan import Attempt, Member, Plan, Policy, decide, newest
from moorage.server.settings import ServerSettings
from moorage.spec.protocol import JobAction, JobMessage

log = logging.getLogger("moorage.server.rollout")

ROLLOUT_KEY = leases.key("fleet-roll-forward")
CREATED_BY = "fleet roll-forward"
OPERATION_KIND = "upgrade_agent"
BATCH_KEY = "roll_forward_batch"  # in the job's payload (the agent reads only chart and version)
CHART_NAME = "moorage-agent"
JOB_TIMEOUT_SECONDS = 600
ROUND_SECONDS = 10.0


def chart_location(reference: str) -> tuple[str, str]:
    """`oci://HOST/PATH/moorage-agent` → (oci://HOST/PATH, moorage-agent); a Helm repository URL →
    (the URL, moorage-agent)."""
    reference = reference.rstrip("/")
    if reference.startswith("oci://"):
        repository, _, name = reference.rpartition("/")
        if not name or repository in ("oci:", "oci:/"):
            raise ValueError(f"agent chart {reference!r}: name the chart, e.g. oci://HOST/PATH/moorage-agent")
        return repository, name
    return reference, CHART_NAME


def policy_of(settings: ServerSettings) -> Policy:
    return Policy(
        batch_size=settings.roll_forward_batch_size,
        pause=timedelta(seconds=settings.roll_forward_pause_seconds),
        report_within=timedelta(seconds=settings.roll_forward_report_seconds),
        prereleases=settings.roll_forward_prereleases,
    )


async def published_versions(settings: ServerSettings) -> list[str]:
    """The agent chart's versions at its source (anonymously, under the server's egress policy)."""
    assert settings.agent_chart is not None
    url, chart = chart_location(settings.agent_chart)
    async with ChartSource(url, vet=vet_for(settings.egress_policy())) as source:
        return [v.version for v in await source.versions(chart)]


def _members(session: Session, now: datetime) -> list[Member]:
    clusters, _ = service.list_clusters(session)
    return [
        Member(
            name=c.name,
            online=service.cluster_state(c, now) == "online",
            chart_version=_text((c.heartbeat or {}).get("chart_version")),
            roll_forward=c.agent_roll_forward,
        )
        for c in clusters
        if c.revoked_at is None
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _attempts(session: Session, target: str) -> dict[str, Attempt]:
    """Each cluster's latest roll-forward operation towards `target`."""
    rows = session.scalars(
        select(Operation)
        .where(Operation.kind == OPERATION_KIND, Operation.created_by == CREATED_BY)
        .options(selectinload(Operation.jobs), selectinload(Operation.cluster))
        .order_by(Operation.created_at)
    ).all()
    out: dict[str, Attempt] = {}
    for op in rows:
        job = op.jobs[0] if op.jobs else None
        payload = job.payload if job is not None else {}
        if str(payload.get("version", "")).removeprefix("v") != target:
            continue
        out[op.cluster.name] = Attempt(
            cluster=op.cluster.name,
            batch=int(payload.get(BATCH_KEY) or 1),
            state=op.state,
            created_at=op.created_at,
            finished_at=op.finished_at,
            operation_id=op.id,
            messages=tuple(str(m) for m in (job.messages or [])) if job is not None else (),
        )
    return out


def plan(session: Session, target: str, policy: Policy, now: datetime) -> Plan:
    return decide(target, _members(session, now), _attempts(session, target), policy, now)


def round_(
    session: Session, settings: ServerSettings, target: str, now: datetime
) -> tuple[Plan, list[JobMessage]] | None:
    """One round on this replica, in one transaction: None when another replica does this round; else
    the plan and the jobs of the batch it started (to be published after the commit)."""
    if not leases.try_round(session, ROLLOUT_KEY):
        return None
    assert settings.agent_chart is not None
    decided = plan(session, target, policy_of(settings), now)
    messages = []
    for name in decided.start:
        cluster = session.scalar(select(Cluster).where(Cluster.name == name))
        if cluster is None:
            continue
        _, message = service.create_operation_with_job(
            session,
            cluster,
            action=JobAction.UPGRADE_AGENT,
            payload={"chart": settings.agent_chart, "version": target, BATCH_KEY: decided.batch},
            timeout_seconds=JOB_TIMEOUT_SECONDS,
            operation_kind=OPERATION_KIND,
            created_by=CREATED_BY,
            now=now,
        )
        messages.append(message)
    return decided, messages


@dataclass
class RollForward:
    """The loop of one server replica, and what it last learnt of the chart source (for the status)."""

    settings: ServerSettings
    session_factory: SessionFactory
    bus: Bus
    clock: Callable[[], datetime]
    target: str | None = None
    checked_at: datetime | None = None
    source_error: str | None = None
    versions: list[str] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.settings.agent_chart is not None

    async def refresh(self) -> str | None:
        """Ask the chart source for its versions; the newest (the target), or None."""
        try:
            self.versions = await published_versions(self.settings)
            self.source_error = None
        except ChartSourceError as e:
            self.source_error = e.message
        except ValueError as e:
            self.source_error = str(e)
        self.checked_at = self.clock()
        if self.source_error is None:
            self.target = newest(self.versions, prereleases=self.settings.roll_forward_prereleases)
        return self.target

    async def step(self, refresh: bool = True) -> Plan | None:
        """Ask the source (when `refresh`), then one round (if no other replica takes it)."""
        target = await self.refresh() if refresh or self.target is None else self.target
        if target is None:
            if self.source_error:
                log.warning("fleet roll-forward: the agent chart's source failed: %s", self.source_error)
            return None
        now = self.clock()
        outcome = await in_transaction(self.session_factory, lambda s: round_(s, self.settings, target, now))
        if outcome is None:
            return None
        decided, messages = outcome
        if messages:
            log.info(
                "fleet roll-forward to chart %s: batch %s, %s",
                target,
                decided.batch,
                ", ".join(decided.start),
            )
        for message in messages:
            await self._publish(message, now)
        return decided

    async def _publish(self, message: JobMessage, now: datetime) -> None:
        try:
            await self.bus.publish_job(message)
        except Exception as e:
            reason = f"could not be queued for the agent: {e}"
            await in_transaction(
                self.session_factory, lambda s: service.fail_job(s, message.job_id, reason, now)
            )
            return
        await in_transaction(self.session_factory, lambda s: service.mark_dispatched(s, message.job_id, now))

    async def run(self) -> None:
        """The source is asked every poll interval; rounds (next batch, reports, failures) run at
        least every ROUND_SECONDS in between."""
        poll = self.settings.roll_forward_poll_seconds
        asked = -poll
        while True:
            refresh = time.monotonic() - asked >= poll
            if refresh:
                asked = time.monotonic()
            try:
                await self.step(refresh)
            except Exception:
                log.exception("fleet roll-forward round failed; will retry")
            await asyncio.sleep(min(poll, ROUND_SECONDS))
