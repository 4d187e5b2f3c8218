"""The control plane's tables (SQLAlchemy 2 typed ORM). Portable between SQLite and PostgreSQL:
string ids (uuid4 hex), JSON columns, timezone-aware timestamps. The schema itself is created by
the Alembic migrations in `moorage.server.migrations`; keep both in step."""

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
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
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    agent_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # bcrypt of the same token: nats-server checks the agent's password against it
    agent_password_bcrypt: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    agent_version: Mapped[str | None] = mapped_column(String(64), default=None)

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
