"""GitOps: Git credentials, each cluster's repository with its sync state, and the sync history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "git_credentials",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        _str("kind", 16, nullable=False),
        _str("username", 200),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_table(
        "git_repositories",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "cluster_id",
            sa.String(32),
            sa.ForeignKey("clusters.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        _str("provider", 32, nullable=False),
        _str("url", 2048, nullable=False),
        _str("branch", 255, nullable=False),
        _str("path", 512, nullable=False),
        sa.Column(
            "credential_id",
            sa.String(32),
            sa.ForeignKey("git_credentials.id", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column("webhook_secret_sealed", sa.Text(), nullable=False),
        _str("owner", 255, nullable=False),
        _str("repo_name", 255, nullable=False),
        _str("workspace", 255),
        _str("repo_slug", 255),
        _str("project_key", 255),
        _str("instance_url", 2048),
        sa.Column("poll_interval_seconds", sa.Integer(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _str("sync_status", 16, nullable=False),
        _str("sync_phase", 16),
        sa.Column("sync_progress_message", sa.Text(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("applied_with_failed_members", sa.Boolean(), nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        _ts("next_retry_at"),
        _ts("last_synced_at"),
        _str("last_synced_from", 16),
        _str("last_commit_sha", 64),
        _ts("last_commit_timestamp"),
        _str("pending_commit_sha", 64),
        sa.Column("observed_source", sa.JSON(), nullable=True),
        sa.Column("applied_digests", sa.JSON(), nullable=False),
        _str("last_seen_head", 64),
        _ts("next_poll_at"),
        _ts("requested_at"),
        _str("requested_source", 16),
        _str("requested_by", 200),
        _str("requested_revision", 64),
        sa.Column("requested_retry", sa.Integer(), nullable=False),
    )
    op.create_index("ix_git_repositories_identity", "git_repositories", ["owner", "repo_name"])
    op.create_table(
        "git_syncs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "cluster_id", sa.String(32), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
        ),
        _str("status", 16, nullable=False),
        _str("source", 16, nullable=False),
        _str("triggered_by", 200, nullable=False),
        _str("phase", 16, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _str("url", 2048, nullable=False),
        _str("branch", 255, nullable=False),
        _str("path", 512, nullable=False),
        _str("revision", 64),
        _str("commit_sha", 64),
        _ts("commit_timestamp"),
        _ts("requested_at"),
        _ts("started_at", nullable=False),
        _ts("finished_at"),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=True),
        _str("operation_id", 32),
    )
    op.create_index("ix_git_syncs_cluster_started", "git_syncs", ["cluster_id", "started_at"])


def downgrade() -> None:
    op.drop_table("git_syncs")
    op.drop_table("git_repositories")
    op.drop_table("git_credentials")
