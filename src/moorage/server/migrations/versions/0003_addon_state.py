"""Live add-on state: the latest observation and lifecycle state of every add-on, the transitions
between states, and per cluster the agent's report session.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "addon_states",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "cluster_id", sa.String(32), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("observation", sa.JSON(), nullable=False),
        _ts("state_since", nullable=False),
        _ts("observed_at", nullable=False),
        sa.Column("held_revision", sa.Integer(), nullable=True),
        _ts("held_at"),
        sa.UniqueConstraint("cluster_id", "name", name="uq_addon_states_cluster_name"),
    )
    op.create_index("ix_addon_states_cluster_state", "addon_states", ["cluster_id", "state"])
    op.create_table(
        "addon_transitions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "cluster_id", sa.String(32), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("addon", sa.String(253), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
        _ts("at", nullable=False),
    )
    op.create_index(
        "ix_addon_transitions_cluster_addon_at", "addon_transitions", ["cluster_id", "addon", "at"]
    )
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("state_session", sa.String(64), nullable=True))
        batch.add_column(sa.Column("state_seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("state_snapshot", sa.String(64), nullable=True))
        batch.add_column(_ts("state_full_at"))
        batch.add_column(_ts("define_requested_at"))
        batch.add_column(
            sa.Column("agent_offline_recorded", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        for column in (
            "agent_offline_recorded",
            "define_requested_at",
            "state_full_at",
            "state_snapshot",
            "state_seq",
            "state_session",
        ):
            batch.drop_column(column)
    op.drop_index("ix_addon_transitions_cluster_addon_at", "addon_transitions")
    op.drop_table("addon_transitions")
    op.drop_index("ix_addon_states_cluster_state", "addon_states")
    op.drop_table("addon_states")
