"""The control plane's tables (SQLAlchemy 2 typed ORM). Portable between SQLite and PostgreSQL:
string ids (uuid4 hex), JSON columns, timezone-aware timestamps. The schema itself is created by
the Alembic migrations in `moorage.server.migrations`; keep both in step."""

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import true as sa_true
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """Timestamps from agents without a zone are taken as UTC (comparing naive and aware fails)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class UTCDateTime(TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python. SQLite stores no zone and hands back naive values; this
    makes both databases behave the same, so comparisons with `datetime.now(UTC)` never fail."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    # keyed hash of the token (moorage.server.tokens.TokenHasher; sha256 hex in rows of older servers)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    agent_token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # like ApiToken.token_hash
    # bcrypt of the same token: nats-server checks the agent's password against it
    agent_password_bcrypt: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    agent_version: Mapped[str | None] = mapped_column(String(64), default=None)
    # the agent process whose add-on state reports were applied last, and its last message number
    state_session: Mapped[str | None] = mapped_column(String(64), default=None)
    state_seq: Mapped[int | None] = mapped_column(Integer, default=None)
    state_snapshot: Mapped[str | None] = mapped_column(String(64), default=None)  # one being received
    state_full_at: Mapped[datetime | None] = mapped_column(default=None)  # the last complete snapshot
    define_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    agent_offline_recorded: Mapped[bool] = mapped_column(default=False)
    # `moorage cluster decommission-argocd`: from then on definitions may not use engine argo_cd
    argocd_decommissioned_at: Mapped[datetime | None] = mapped_column(default=None)
    # fleet roll-forward (server/rollout.py): False = this cluster's agent is left on its chart version
    agent_roll_forward: Mapped[bool] = mapped_column(default=True, server_default=sa_true())

    operations: Mapped[list["Operation"]] = relationship(
        back_populates="cluster", cascade="all, delete-orphan", passive_deletes=True
    )


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_cluster_state", "cluster_id", "state"),
        Index("ix_operations_cluster_created", "cluster_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # "apply", …
    state: Mapped[str] = mapped_column(String(16))  # ankra-spec §7.2 OperationStatus
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str | None] = mapped_column(String(200), default=None)

    cluster: Mapped[Cluster] = relationship(back_populates="operations")
    jobs: Mapped[list["Job"]] = relationship(
        back_populates="operation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Job.created_at",
    )


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_cluster_state", "cluster_id", "state"),
        Index("ix_jobs_operation", "operation_id"),
        Index("ix_jobs_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    cluster_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # JobKind
    action: Mapped[str] = mapped_column(String(32))  # JobAction
    state: Mapped[str] = mapped_column(String(16))  # JobState
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    messages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    # Who decided the current state ("agent" or "server") and the report's time: together with the
    # state they order reports, so results applied in any order end in the same state.
    state_source: Mapped[str] = mapped_column(String(8), default="server")
    state_at: Mapped[datetime | None] = mapped_column(default=None)

    operation: Mapped[Operation] = relationship(back_populates="jobs")


class GitCredential(Base):
    """A credential, referenced by name: Git (kind token | ssh_key) or chart registry (kind helm: an
    HTTP(S) Helm repository, oci: an OCI registry). The secret and a client key are sealed (see
    moorage.server.secretbox); `hosts` are the hosts / URL prefixes it may be sent to (credhosts)."""

    __tablename__ = "git_credentials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # token | ssh_key | helm | oci
    username: Mapped[str | None] = mapped_column(String(200), default=None)
    secret_sealed: Mapped[str] = mapped_column(Text)
    hosts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ca_bundle: Mapped[str | None] = mapped_column(Text, default=None)  # PEM, not secret
    client_cert: Mapped[str | None] = mapped_column(Text, default=None)  # PEM, not secret
    client_key_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class GitRepository(Base):
    """The one Git source of a cluster (ankra-spec §6.5), with its sync state and pending request.

    A sync request is a set of `requested_*` fields, not a queue: a burst of pushes overwrites it,
    so it coalesces into one sync that fetches the newest commit."""

    __tablename__ = "git_repositories"
    __table_args__ = (Index("ix_git_repositories_identity", "owner", "repo_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2048))
    branch: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(512))
    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("git_credentials.id", ondelete="RESTRICT"), default=None
    )
    webhook_secret_sealed: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(255), default="")  # webhook matching, lowercased
    repo_name: Mapped[str] = mapped_column(String(255), default="")
    workspace: Mapped[str | None] = mapped_column(String(255), default=None)
    repo_slug: Mapped[str | None] = mapped_column(String(255), default=None)
    project_key: Mapped[str | None] = mapped_column(String(255), default=None)
    instance_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # where a Stack Builder save goes: "push" commits to the tracked branch, "pull_request" to a new
    # branch with a pull request opened through the provider's API (migration 0011)
    edit_mode: Mapped[str] = mapped_column(String(16), default="push", server_default="push")
    poll_interval_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    sync_status: Mapped[str] = mapped_column(String(16), default="syncing")
    sync_phase: Mapped[str | None] = mapped_column(String(16), default=None)
    sync_progress_message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    applied_with_failed_members: Mapped[bool] = mapped_column(default=False)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(default=None)
    last_synced_at: Mapped[datetime | None] = mapped_column(default=None)
    last_synced_from: Mapped[str | None] = mapped_column(String(16), default=None)
    last_commit_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    last_commit_timestamp: Mapped[datetime | None] = mapped_column(default=None)
    pending_commit_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    # what the last successful sync read ({url, branch, path}) and each entry's digest then
    observed_source: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    applied_digests: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the branch tip last seen (poll, webhook or fetch): polling syncs only when it moves
    last_seen_head: Mapped[str | None] = mapped_column(String(64), default=None)
    next_poll_at: Mapped[datetime | None] = mapped_column(default=None)

    requested_at: Mapped[datetime | None] = mapped_column(default=None)
    requested_source: Mapped[str | None] = mapped_column(String(16), default=None)
    requested_by: Mapped[str | None] = mapped_column(String(200), default=None)
    requested_revision: Mapped[str | None] = mapped_column(String(64), default=None)
    requested_retry: Mapped[int] = mapped_column(Integer, default=0)

    cluster: Mapped[Cluster] = relationship()
    credential: Mapped[GitCredential | None] = relationship()


class GitSync(Base):
    """One sync run: a row of the sync history."""

    __tablename__ = "git_syncs"
    __table_args__ = (Index("ix_git_syncs_cluster_started", "cluster_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # running | success | failed
    source: Mapped[str] = mapped_column(String(16))  # webhook | manual | poll
    triggered_by: Mapped[str] = mapped_column(String(200))
    phase: Mapped[str] = mapped_column(String(16))  # fetching | validating | applying | completed
    message: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(2048))
    branch: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(512))
    revision: Mapped[str | None] = mapped_column(String(64), default=None)  # asked for (--revision)
    commit_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    commit_timestamp: Mapped[datetime | None] = mapped_column(default=None)
    # the request this run serves (a later request coalesced into it serves the earlier ones too)
    requested_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    operation_id: Mapped[str | None] = mapped_column(String(32), default=None)


class WebhookDelivery(Base):
    """A signed webhook delivery already acted on, by the sender's delivery id: a replay of it is
    not enqueued again. Bounded per provider by age and count (moorage.server.gitops.store)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_provider_received", "provider", "received_at"),)

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column()


class AddonState(Base):
    """The latest observation of one add-on, and the lifecycle state derived from it."""

    __tablename__ = "addon_states"
    __table_args__ = (
        UniqueConstraint("cluster_id", "name", name="uq_addon_states_cluster_name"),
        Index("ix_addon_states_cluster_state", "cluster_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(253))
    namespace: Mapped[str] = mapped_column(String(253))
    state: Mapped[str] = mapped_column(String(16))  # moorage.spec.lifecycle.AddonState
    reason: Mapped[str] = mapped_column(Text)
    observation: Mapped[dict[str, Any]] = mapped_column(JSON)  # protocol.AddonObservation
    state_since: Mapped[datetime] = mapped_column(default=utcnow)
    observed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # rolled back by a person: syncs leave it at this revision until resumed or a commit changes it
    held_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    held_at: Mapped[datetime | None] = mapped_column(default=None)
    # the agent message (its session and seq) this row was last written from: a late report writes
    # only the add-ons no newer one has (addon_state.record_state)
    report_session: Mapped[str | None] = mapped_column(String(64), default=None)
    report_seq: Mapped[int | None] = mapped_column(Integer, default=None)


class AddonTransition(Base):
    __tablename__ = "addon_transitions"
    __table_args__ = (Index("ix_addon_transitions_cluster_addon_at", "cluster_id", "addon", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    addon: Mapped[str] = mapped_column(String(253))
    from_state: Mapped[str | None] = mapped_column(String(16), default=None)
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who signs in to the web UI. Only a password hash is stored (see moorage.server.sessions)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # $scrypt$ln=…,r=…,p=…$salt$key
    role: Mapped[str] = mapped_column(String(8))  # read | write | admin, granted like token scopes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class UiSession(Base):
    """A signed-in browser. The cookie holds the secret; the row only its sha256. The CSRF token is
    derived from the secret (an HMAC), so nothing else needs storing."""

    __tablename__ = "ui_sessions"
    __table_args__ = (Index("ix_ui_sessions_user", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the cookie's secret
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()  # the absolute end; idle sessions end sooner
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship()
