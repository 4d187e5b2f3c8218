"""The control plane's domain operations over a database Session: tokens, clusters, operations and
jobs, results and heartbeats. No FastAPI here; callers own the transaction (see db.transaction).

Job state is a join of reports: each report (agent result, or a server decision such as a timeout
or a cancel) has a key (progress rank, source, time, state) and the job keeps the report with the
greatest key. A maximum does not depend on arrival order, so duplicated, late or reordered results
all end in the same state, and a final state never goes back to a running one."""

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from moorage.server import safetext, tokens
from moorage.server.db.models import ApiToken, Cluster, Job, Operation, aware, utcnow
from moorage.spec.protocol import (
    FINAL_JOB_STATES,
    WRITE_ACTIONS,
    AgentStatus,
    HeartbeatMessage,
    JobAction,
    JobKind,
    JobMessage,
    JobState,
    ResultMessage,
)

HEARTBEAT_INTERVAL_SECONDS = 60
# an agent silent this long is offline, and its add-ons Unknown (tests shorten it)
OFFLINE_AFTER = timedelta(
    seconds=float(os.environ.get("MOORAGE_AGENT_OFFLINE_SECONDS", str(3 * HEARTBEAT_INTERVAL_SECONDS)))
)
# a running job gets this long beyond its timeout for its result to travel back before it expires
PENDING_MAX_AGE = timedelta(days=1)
EXPIRY_GRACE = timedelta(seconds=30)
# last_used_at is written at most this often per token (not on every request)
LAST_USED_RESOLUTION = timedelta(seconds=60)

CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class OperationState(StrEnum):
    """ankra-spec §7.2 OperationStatus: an operation's state, derived from its jobs' states."""

    RUNNING = "running"
    STOPPING = "stopping"  # a cancel reached a running job; the agent has not confirmed yet
    SUCCESS = "success"
    CLEANUP = "cleanup"
    FAILED = "failed"
    CRITICAL = "critical"
    CANCELLED = "cancelled"


OPERATION_STATES = tuple(s.value for s in OperationState)
FINAL_OPERATION_STATES = frozenset(
    {OperationState.SUCCESS, OperationState.FAILED, OperationState.CRITICAL, OperationState.CANCELLED}
)


class Source(StrEnum):
    """Who stated a job's state: the server's own decision (timeout, cancel) or the agent's result."""

    SERVER = "server"
    AGENT = "agent"


class ServiceError(Exception):
    """A request that cannot be done; `message` is safe to show (never holds a secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class Invalid(ServiceError):
    pass


# --------------------------------------------------------------------------- API tokens


def create_token(
    session: Session, hasher: tokens.TokenHasher, name: str, scopes: Iterable[str]
) -> tuple[ApiToken, str]:
    """A new API token; the plaintext is returned here and never again."""
    if (why := safetext.problem(name, "the token name")) is not None:
        raise Invalid(why)
    wanted = sorted(set(scopes))
    if tokens.Scope.AGENT.value in wanted:
        raise Invalid(
            "an API token cannot have the scope 'agent': agent tokens are made by registering a "
            "cluster (`moorage cluster register`) and work only for /api/v1/agent; use read, write or admin"
        )
    unknown = [s for s in wanted if s not in {x.value for x in tokens.API_SCOPES}]
    if unknown:
        raise Invalid(f"unknown scope(s) {', '.join(unknown)}; use read, write or admin")
    if not wanted:
        raise Invalid("a token needs at least one scope")
    plaintext = tokens.new_api_token()
    row = ApiToken(name=name, token_hash=hasher.hash(plaintext), scopes=wanted)
    session.add(row)
    session.flush()
    return row, plaintext


def ensure_bootstrap_token(session: Session, hasher: tokens.TokenHasher, plaintext: str) -> bool:
    """First start: make `plaintext` an admin token if no API token exists yet. True if created."""
    if len(plaintext) < 16:
        raise Invalid("the bootstrap token must be at least 16 characters long")
    if session.scalar(select(func.count()).select_from(ApiToken)):
        return False
    session.add(ApiToken(name="bootstrap", token_hash=hasher.hash(plaintext), scopes=["admin"]))
    session.flush()
    return True


def upgrade_token_hashes(session: Session, hasher: tokens.TokenHasher) -> int:
    """Rewrite the unkeyed sha256 hashes of older servers (API and agent tokens) as keyed hashes;
    the number rewritten. The keyed hash is computed over the sha256 hex, so no token is needed."""
    count = 0
    for row in session.scalars(
        select(ApiToken).where(ApiToken.token_hash.not_like(f"{tokens.KEYED_PREFIX}%"))
    ):
        row.token_hash = hasher.upgrade(row.token_hash)
        count += 1
    for cluster in session.scalars(
        select(Cluster).where(Cluster.agent_token_hash.not_like(f"{tokens.KEYED_PREFIX}%"))
    ):
        cluster.agent_token_hash = hasher.upgrade(cluster.agent_token_hash)
        count += 1
    session.flush()
    return count


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at)))


def revoke_token(session: Session, token_id: str, now: datetime | None = None) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
    return row


_Row = TypeVar("_Row", ApiToken, Cluster)


def _lookup(
    session: Session, model: type[_Row], field: str, hasher: tokens.TokenHasher, plaintext: str
) -> tuple[_Row | None, str | None]:
    """The row whose `field` holds the keyed hash of `plaintext`, else one still holding its plain
    sha256 (written by an older server after this one's start-up rewrite) with the keyed hash to
    store instead. The lookup uses the hash as a key; it is compared once more in constant time."""
    column = getattr(model, field)
    keyed = hasher.hash(plaintext)
    row = session.scalar(select(model).where(column == keyed))
    if row is not None:
        return (row, None) if hasher.matches(getattr(row, field), plaintext) else (None, None)
    row = session.scalar(select(model).where(column == tokens.sha256_hex(plaintext)))
    if row is not None and tokens.hashes_match(getattr(row, field), plaintext):
        return row, keyed
    return None, None


def authenticate_token(
    session: Session, hasher: tokens.TokenHasher, plaintext: str, now: datetime | None = None
) -> ApiToken | None:
    """The live API token for `plaintext`, or None (unknown or revoked)."""
    row, rewrite = _lookup(session, ApiToken, "token_hash", hasher, plaintext)
    if row is None or row.revoked_at is not None:
        return None
    if rewrite is not None:
        row.token_hash = rewrite
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row


# --------------------------------------------------------------------------- clusters and agents


def agent_nats_user(cluster_id: str) -> str:
    return f"agent-{cluster_id}"


def register_cluster(
    session: Session, hasher: tokens.TokenHasher, name: str, description: str = ""
) -> tuple[Cluster, str]:
    """A new cluster and its agent token (plaintext returned here only)."""
    if not CLUSTER_NAME.fullmatch(name):
        raise Invalid(
            f"invalid cluster name {name!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    if session.scalar(select(Cluster.id).where(Cluster.name == name)) is not None:
        raise Conflict(f"a cluster named {name!r} already exists")
    if (why := safetext.problem(description, "the description")) is not None:
        raise Invalid(why)
    plaintext = tokens.new_agent_token()
    cluster = Cluster(
        name=name,
        description=description,
        agent_token_hash=hasher.hash(plaintext),
        agent_password_bcrypt=tokens.bcrypt_hash(plaintext),
    )
    session.add(cluster)
    session.flush()
    return cluster, plaintext


def list_clusters(
    session: Session, *, offset: int = 0, limit: int | None = None
) -> tuple[list[Cluster], int]:
    total = session.scalar(select(func.count()).select_from(Cluster)) or 0
    query = select(Cluster).order_by(Cluster.name).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query)), total


def get_cluster(session: Session, name: str) -> Cluster:
    cluster = session.scalar(select(Cluster).where(Cluster.name == name))
    if cluster is None:
        raise NotFound(f"no cluster named {name!r}")
    return cluster


def get_cluster_by_id(session: Session, cluster_id: str) -> Cluster | None:
    return session.get(Cluster, cluster_id)


def delete_cluster(session: Session, name: str) -> Cluster:
    """Removes the cluster with its operations and jobs; its agent loses NATS access."""
    cluster = get_cluster(session, name)
    session.delete(cluster)
    session.flush()
    return cluster


def revoke_agent_token(cluster: Cluster, now: datetime | None = None) -> None:
    if cluster.revoked_at is None:
        cluster.revoked_at = now or utcnow()


def rotate_agent_token(session: Session, hasher: tokens.TokenHasher, cluster: Cluster) -> str:
    """A new agent token replaces the old one (which stops working at once)."""
    plaintext = tokens.new_agent_token()
    cluster.agent_token_hash = hasher.hash(plaintext)
    cluster.agent_password_bcrypt = tokens.bcrypt_hash(plaintext)
    cluster.revoked_at = None
    session.flush()
    return plaintext


def agent_users(session: Session) -> list[tuple[str, str]]:
    """(cluster_id, bcrypt of its agent token) for every cluster whose agent may connect to NATS."""
    rows = session.execute(
        select(Cluster.id, Cluster.agent_password_bcrypt)
        .where(Cluster.revoked_at.is_(None))
        .order_by(Cluster.id)
    )
    return [(cid, pw) for cid, pw in rows]


def agent_cluster_ids(session: Session) -> list[str]:
    return [cid for cid, _ in agent_users(session)]


def authenticate_agent(session: Session, hasher: tokens.TokenHasher, plaintext: str) -> Cluster | None:
    cluster, rewrite = _lookup(session, Cluster, "agent_token_hash", hasher, plaintext)
    if cluster is None or cluster.revoked_at is not None:
        return None
    if rewrite is not None:
        cluster.agent_token_hash = rewrite
    return cluster


def record_heartbeat(session: Session, beat: HeartbeatMessage, now: datetime | None = None) -> bool:
    """Store the latest heartbeat of a cluster; False for an unknown or revoked cluster."""
    cluster = session.get(Cluster, beat.cluster_id)
    if cluster is None or cluster.revoked_at is not None:
        return False
    cluster.last_heartbeat_at = now or utcnow()  # the server's clock decides online/offline
    cluster.heartbeat = beat.model_dump(mode="json")
    cluster.agent_version = beat.agent_version
    return True


def cluster_state(cluster: Cluster, now: datetime | None = None) -> AgentStatus:
    if cluster.last_heartbeat_at is None:
        return "never_connected"
    if (now or utcnow()) - cluster.last_heartbeat_at <= OFFLINE_AFTER:
        return "online"
    return "offline"


# --------------------------------------------------------------------------- operations and jobs


def create_operation_with_job(
    session: Session,
    cluster: Cluster,
    *,
    action: JobAction,
    payload: dict[str, Any],
    timeout_seconds: int,
    operation_kind: str,
    created_by: str | None = None,
    now: datetime | None = None,
) -> tuple[Operation, JobMessage]:
    """An operation with one pending job, and the message that hands the job to the agent."""
    now = now or utcnow()
    kind = JobKind.WRITE if action in WRITE_ACTIONS else JobKind.READ
    operation = Operation(
        cluster_id=cluster.id,
        kind=operation_kind,
        state=OperationState.RUNNING,
        created_at=now,
        updated_at=now,
        created_by=created_by,
    )
    job = Job(
        cluster_id=cluster.id,
        kind=kind.value,
        action=action.value,
        state=JobState.PENDING.value,
        payload=payload,
        messages=[],
        timeout_seconds=timeout_seconds,
        created_at=now,
        state_source=Source.SERVER,
        state_at=now,
    )
    operation.jobs.append(job)
    session.add(operation)
    session.flush()
    message = JobMessage(
        job_id=job.id,
        operation_id=operation.id,
        cluster_id=cluster.id,
        kind=kind,
        action=action,
        payload=payload,
        timeout_seconds=timeout_seconds,
        created_at=now,
    )
    return operation, message


def mark_dispatched(session: Session, job_id: str, now: datetime | None = None) -> None:
    job = session.get(Job, job_id)
    if job is not None and job.dispatched_at is None:
        job.dispatched_at = now or utcnow()


_RANK = {
    JobState.PENDING: 0,
    JobState.BLOCKED: 0,
    JobState.RUNNING: 1,
    JobState.CANCELLING: 2,
    **{s: 3 for s in FINAL_JOB_STATES},
}
_SOURCE_RANK = {Source.SERVER: 0, Source.AGENT: 1}


@dataclass(frozen=True)
class Report:
    """One statement about a job's state: by the agent (a result) or by the server (timeout, cancel)."""

    state: JobState
    source: Source
    at: datetime

    def key(self) -> tuple[int, int, datetime, str]:
        # Progress first (a final state beats any running report, whatever the clocks say); then the
        # agent's word over the server's guess (a late "success" beats the server's "timeout");
        # then time; the state name only breaks exact ties so that the order is total.
        return (_RANK[self.state], _SOURCE_RANK[self.source], self.at, self.state.value)


def supersedes(new: Report, current: Report) -> bool:
    return new.key() > current.key()


def _current_report(job: Job) -> Report:
    return Report(JobState(job.state), Source(job.state_source), job.state_at or job.created_at)


def derive_operation_state(job_states: Sequence[JobState]) -> OperationState:
    if any(s is JobState.CANCELLING for s in job_states):
        return OperationState.STOPPING
    if not job_states or any(s not in FINAL_JOB_STATES for s in job_states):
        return OperationState.RUNNING
    if any(s in (JobState.FAILED, JobState.TIMEOUT) for s in job_states):
        return OperationState.FAILED
    if any(s is JobState.CANCELLED for s in job_states):
        return OperationState.CANCELLED
    return OperationState.SUCCESS


def _refresh_operation(operation: Operation, now: datetime) -> None:
    state = derive_operation_state([JobState(j.state) for j in operation.jobs])
    if state != operation.state:
        operation.state = state
        operation.updated_at = now
    if state not in FINAL_OPERATION_STATES:
        operation.finished_at = None
    elif operation.finished_at is None:
        operation.finished_at = now


def _apply_report(job: Job, report: Report, now: datetime) -> bool:
    if report.state is JobState.RUNNING and (job.started_at is None or report.at < job.started_at):
        job.started_at = report.at  # the earliest start, whatever order the reports came in
    if not supersedes(report, _current_report(job)):
        return False
    job.state = report.state.value
    job.state_source = report.source
    job.state_at = report.at
    job.finished_at = report.at if report.state in FINAL_JOB_STATES else None
    _refresh_operation(job.operation, now)
    return True


def record_result(session: Session, message: ResultMessage, now: datetime | None = None) -> bool:
    """Apply an agent's result. True if it changed the job's state; False if it was stale, a
    duplicate, or not about a job of that cluster (dropped: an agent reports only its own jobs)."""
    job = session.get(Job, message.job_id, options=[selectinload(Job.operation).selectinload(Operation.jobs)])
    if job is None or job.cluster_id != message.cluster_id:
        return False
    changed = _apply_report(job, Report(message.state, Source.AGENT, aware(message.at)), now or utcnow())
    if changed:
        # the agent sends all of a job's messages with each result: the winning report's list is it
        if message.messages:
            job.messages = list(message.messages)
        if message.result or message.state in FINAL_JOB_STATES:
            job.result = dict(message.result)
    return changed


def expire_jobs(session: Session, now: datetime | None = None) -> list[str]:
    """Mark unfinished jobs past their deadline as timeout; returns their ids.

    A started job's deadline is its start plus its timeout and a grace. A job still pending waits in
    the durable queue for its agent (an offline agent runs it when it reconnects), so it expires only
    after PENDING_MAX_AGE."""
    now = now or utcnow()
    open_states = [s.value for s in JobState if s not in FINAL_JOB_STATES]
    expired: list[str] = []
    for job in session.scalars(select(Job).where(Job.state.in_(open_states))):
        if job.started_at is not None:
            deadline = job.started_at + timedelta(seconds=job.timeout_seconds) + EXPIRY_GRACE
        else:
            deadline = job.created_at + PENDING_MAX_AGE
        if now > deadline:
            _apply_report(job, Report(JobState.TIMEOUT, Source.SERVER, now), now)
            waited = "never started" if job.started_at is None else f"timed out after {job.timeout_seconds} s"
            job.messages = [*job.messages, f"{waited} (server)"]
            expired.append(job.id)
    return expired


def fail_job(session: Session, job_id: str, message: str, now: datetime | None = None) -> None:
    """The server gives up on a job (e.g. it could not be queued). An agent's later report wins."""
    now = now or utcnow()
    job = session.get(Job, job_id)
    if job is not None and _apply_report(job, Report(JobState.FAILED, Source.SERVER, now), now):
        job.messages = [*job.messages, message]


def cancel_operation(session: Session, operation_id: str, now: datetime | None = None) -> Operation:
    """Pending jobs are cancelled at once; running ones move to cancelling until the agent reports."""
    now = now or utcnow()
    operation = get_operation(session, operation_id)
    for job in operation.jobs:
        state = JobState(job.state)
        if state in (JobState.PENDING, JobState.BLOCKED):
            _apply_report(job, Report(JobState.CANCELLED, Source.SERVER, now), now)
        elif state is JobState.RUNNING:
            _apply_report(job, Report(JobState.CANCELLING, Source.SERVER, now), now)
    _refresh_operation(operation, now)
    return operation


def get_operation(session: Session, operation_id: str) -> Operation:
    operation = session.get(Operation, operation_id, options=[selectinload(Operation.jobs)])
    if operation is None:
        raise NotFound(f"no operation with id {operation_id}")
    return operation


def list_operations(
    session: Session, cluster: Cluster, *, offset: int = 0, limit: int = 25, state: str | None = None
) -> tuple[list[Operation], int]:
    where = [Operation.cluster_id == cluster.id]
    if state is not None:
        where.append(Operation.state == state)
    total = session.scalar(select(func.count()).select_from(Operation).where(*where)) or 0
    rows = session.scalars(
        select(Operation)
        .where(*where)
        .options(selectinload(Operation.jobs))
        .order_by(Operation.created_at.desc(), Operation.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), total


def last_successful_sync(session: Session, cluster: Cluster) -> Job | None:
    return session.scalar(
        select(Job)
        .where(
            Job.cluster_id == cluster.id,
            Job.action == JobAction.SYNC.value,
            Job.state == JobState.SUCCESS.value,
        )
        .order_by(Job.finished_at.desc())
        .limit(1)
    )


def count_by_state(session: Session, model: type[Job] | type[Operation]) -> dict[str, int]:
    rows = session.execute(select(model.state, func.count()).group_by(model.state))
    return {state: count for state, count in rows}
