"""The agent message each add-on's row was last written from (session, seq), so a state report that
arrives late (redelivered after a failed write, or through another replica's consumer) still updates
the add-ons no newer report has written, instead of being dropped whole.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("addon_states") as batch:
        batch.add_column(sa.Column("report_session", sa.String(64), nullable=True))
        batch.add_column(sa.Column("report_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("addon_states") as batch:
        batch.drop_column("report_seq")
        batch.drop_column("report_session")
