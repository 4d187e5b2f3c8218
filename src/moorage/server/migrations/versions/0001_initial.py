"""Initial schema: API tokens, clusters, operations, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("revoked_at"),
        _ts("last_used_at"),
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("agent_token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("agent_password_bcrypt", sa.String(100), nullable=False),
        _ts("created_at", nullable=False),
        _ts("revoked_at"),
        _ts("last_heartbeat_at"),
        sa.Column("heartbeat", sa.JSON(), nullable=True),
        sa.Column("agent_version", sa.String(64), nullable=True),
    )
    op.create_table(
        "operations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "cluster_id", sa.String(32), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("finished_at"),
        sa.Column("created_by", sa.String(200), nullable=True),
    )
    op.create_index("ix_operations_cluster_state", "operations", ["cluster_id", "state"])
    op.create_index("ix_operations_cluster_created", "operations", ["cluster_id", "created_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "operation_id",
            sa.String(32),
            sa.ForeignKey("operations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("dispatched_at"),
        sa.Column("state_source", sa.String(8), nullable=False),
        _ts("state_at"),
    )
    op.create_index("ix_jobs_cluster_state", "jobs", ["cluster_id", "state"])
    op.create_index("ix_jobs_operation", "jobs", ["operation_id"])
    op.create_index("ix_jobs_state", "jobs", ["state"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("operations")
    op.drop_table("clusters")
    op.drop_table("api_tokens")
