"""The kubectl proxy: kubectl tokens and the audit trail of proxied requests (issue 15).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "kube_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("api_token_id", sa.String(32), nullable=True),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("revoked_at", nullable=True),
        _time("last_used_at", nullable=True),
    )
    op.create_index("ix_kube_tokens_principal", "kube_tokens", ["principal"])
    op.create_table(
        "kube_audit",
        sa.Column("id", sa.String(32), primary_key=True),
        _time("at"),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("kube_user", sa.String(253), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("cluster", sa.String(63), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("verb", sa.String(32), nullable=False),
        sa.Column("api_group", sa.String(253), nullable=False),
        sa.Column("resource", sa.String(253), nullable=False),
        sa.Column("subresource", sa.String(63), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
    )
    op.create_index("ix_kube_audit_at", "kube_audit", ["at"])
    op.create_index("ix_kube_audit_cluster_at", "kube_audit", ["cluster", "at"])


def downgrade() -> None:
    op.drop_index("ix_kube_audit_cluster_at", "kube_audit")
    op.drop_index("ix_kube_audit_at", "kube_audit")
    op.drop_table("kube_audit")
    op.drop_index("ix_kube_tokens_principal", "kube_tokens")
    op.drop_table("kube_tokens")
