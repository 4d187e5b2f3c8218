"""Recent webhook delivery ids, so that a replayed signed delivery is enqueued once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("delivery_id", sa.String(200), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_webhook_deliveries_provider_received", "webhook_deliveries", ["provider", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_provider_received", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
