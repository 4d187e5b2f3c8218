"""Where the Stack Builder's saves go, per Git connection: `push` (to the tracked branch, as before)
or `pull_request` (to a new branch, with a pull request opened through the provider's API). Existing
connections keep pushing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("git_repositories") as batch:
        batch.add_column(sa.Column("edit_mode", sa.String(16), nullable=False, server_default="push"))


def downgrade() -> None:
    with op.batch_alter_table("git_repositories") as batch:
        batch.drop_column("edit_mode")
