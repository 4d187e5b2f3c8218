"""Credentials bound to their hosts (issue 18, item 1) and registry credentials (issue 16): the hosts /
URL prefixes a credential may be sent to, a CA bundle, a client certificate and its sealed key.
Existing credentials are bound to the hosts of the repositories that use them, so they keep working.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import json
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCP = re.compile(r"^(?:[^@/:\s]+@)?(\[[^\]]+\]|[^@/:\s\[\]]+):(?!//)")


def _binding(url: str) -> str | None:
    """scheme://host[:port] of a repository URL (a scp-like ssh URL: its host)."""
    scp = _SCP.match(url)
    if scp and "://" not in url:
        return scp.group(1).strip("[]").lower()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or not parts.scheme:
        return None
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}" + (f":{port}" if port else "")


def upgrade() -> None:
    # plain ADD COLUMN (SQLite too): a batch copy of the table would trip the repositories' foreign key
    op.add_column(
        "git_credentials", sa.Column("hosts", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column("git_credentials", sa.Column("ca_bundle", sa.Text(), nullable=True))
    op.add_column("git_credentials", sa.Column("client_cert", sa.Text(), nullable=True))
    op.add_column("git_credentials", sa.Column("client_key_sealed", sa.Text(), nullable=True))
    bind = op.get_bind()
    used: dict[str, list[str]] = {}
    for credential_id, url in bind.execute(
        sa.text("SELECT credential_id, url FROM git_repositories WHERE credential_id IS NOT NULL")
    ):
        binding = _binding(str(url))
        if binding is not None and binding not in used.setdefault(credential_id, []):
            used[credential_id].append(binding)
    for (credential_id,) in bind.execute(sa.text("SELECT id FROM git_credentials")).all():
        bind.execute(
            sa.text("UPDATE git_credentials SET hosts = :hosts WHERE id = :id"),
            {"hosts": json.dumps(sorted(used.get(credential_id, []))), "id": credential_id},
        )


def downgrade() -> None:
    for column in ("client_key_sealed", "client_cert", "ca_bundle", "hosts"):
        op.drop_column("git_credentials", column)  # SQLite 3.35+ drops a column in place
