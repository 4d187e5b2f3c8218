import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from moorage.server import service
from moorage.server.db import Base, make_engine, make_session_factory, migrate, transaction
from moorage.server.db.session import downgrade
from tests import postgres
from tests.unit.server.conftest import HASHER

TABLES = {
    "alembic_version",
    "api_tokens",
    "clusters",
    "operations",
    "jobs",
    "git_credentials",
    "git_repositories",
    "git_syncs",
    "users",
    "ui_sessions",
}
USER_TABLES = {"users", "ui_sessions"}


def _check_schema_and_roundtrip(url: str) -> None:
    migrate(url)
    migrate(url)  # a second run is a no-op
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= TABLES
        assert {"ix_jobs_cluster_state", "ix_jobs_operation", "ix_jobs_state"} <= {
            i["name"] for i in inspector.get_indexes("jobs")
        }
        with engine.connect() as conn:
            # the ORM models and the migrations describe the same schema
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        factory = make_session_factory(engine)
        when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        with transaction(factory) as s:
            cluster, _ = service.register_cluster(s, HASHER, "prod-1")
            cluster.last_heartbeat_at = when
        with transaction(factory) as s:
            again = service.get_cluster(s, "prod-1")
            # timezone-aware on both databases
            assert again.last_heartbeat_at == when
            assert again.last_heartbeat_at is not None
            assert again.last_heartbeat_at.tzinfo is not None
    finally:
        engine.dispose()


def _downgrade(url: str, revision: str) -> None:
    downgrade(url, revision)


def _check_users_down_and_up(url: str) -> None:
    """0004 (users, ui_sessions) goes down to 0003 and up again, and the schema matches the models."""
    migrate(url)
    _downgrade(url, "0003")
    engine = make_engine(url)
    try:
        assert not USER_TABLES & set(inspect(engine).get_table_names())
        migrate(url)
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= USER_TABLES
        assert "ix_ui_sessions_user" in {i["name"] for i in inspector.get_indexes("ui_sessions")}
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_sqlite_fresh_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'moorage.db'}"
    _check_schema_and_roundtrip(url)
    _check_users_down_and_up(url)


@pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))
def test_postgresql() -> None:
    with postgres.running_postgres() as url:
        _check_schema_and_roundtrip(url)
        _check_users_down_and_up(url)
        _check_credentials_bound_to_their_repositories_hosts(url)


def _check_credentials_bound_to_their_repositories_hosts(url: str) -> None:
    """0006: a credential created before host binding keeps working where it is used: it is bound
    to the scheme and host of each repository that uses it (an unused one to nothing)."""
    migrate(url)
    _downgrade(url, "0005")
    engine = make_engine(url)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO clusters (id, name, description, agent_token_hash, agent_password_bcrypt, "
                    "created_at, agent_offline_recorded) VALUES ('c1', 'c1', '', 'h1', 'b', :t, false), "
                    "('c2', 'c2', '', 'h2', 'b', :t, false)"
                ),
                {"t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO git_credentials (id, name, kind, secret_sealed, created_at, updated_at) "
                    "VALUES ('k1', 'bot', 'token', 'x', :t, :t), ('k2', 'unused', 'token', 'x', :t, :t)"
                ),
                {"t": now},
            )
            for cid, repo_url in (("c1", "https://GitHub.com/a/b.git"), ("c2", "git@git.example:a/b.git")):
                conn.execute(
                    text(
                        "INSERT INTO git_repositories (id, cluster_id, provider, url, branch, path, "
                        "credential_id, webhook_secret_sealed, owner, repo_name, poll_interval_seconds, "
                        "created_at, updated_at, sync_status, sync_progress_message, applied_digests, "
                        "retry_count, requested_retry, applied_with_failed_members) VALUES (:id, :cid, "
                        "'github', :url, 'main', 'p', 'k1', 's', '', '', 60, :t, :t, 'synced', '', '{}', "
                        "0, 0, false)"
                    ),
                    {"id": "r" + cid, "cid": cid, "url": repo_url, "t": now},
                )
        migrate(url)
        with engine.connect() as conn:
            rows: dict[str, Any] = dict(conn.execute(text("SELECT name, hosts FROM git_credentials")).all())
            # no migration on the way (0009 and 0010 rebuild `clusters` on SQLite) loses a row
            repositories = conn.execute(text("SELECT cluster_id FROM git_repositories")).scalars().all()
        hosts = {k: json.loads(v) if isinstance(v, str) else v for k, v in rows.items()}
        assert hosts == {"bot": ["git.example", "https://github.com"], "unused": []}
        assert sorted(repositories) == ["c1", "c2"]
    finally:
        engine.dispose()


def test_sqlite_credential_hosts_migration(tmp_path: Path) -> None:
    _check_credentials_bound_to_their_repositories_hosts(f"sqlite:///{tmp_path / 'moorage.db'}")


def test_sqlite_edit_mode_migration_keeps_connections_pushing(tmp_path: Path) -> None:
    """0011: a connection made before the Stack Builder's edit mode existed keeps pushing to its
    tracked branch (edit_mode 'push'), and the column goes away again on downgrade."""
    url = f"sqlite:///{tmp_path / 'moorage.db'}"
    migrate(url)
    _downgrade(url, "0010")
    engine = make_engine(url)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO clusters (id, name, description, agent_token_hash, agent_password_bcrypt, "
                    "created_at, agent_offline_recorded, agent_roll_forward) "
                    "VALUES ('c1', 'c1', '', 'h1', 'b', :t, false, true)"
                ),
                {"t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO git_repositories (id, cluster_id, provider, url, branch, path, "
                    "webhook_secret_sealed, owner, repo_name, poll_interval_seconds, created_at, updated_at, "
                    "sync_status, sync_progress_message, applied_digests, retry_count, requested_retry, "
                    "applied_with_failed_members) VALUES ('r1', 'c1', 'github', 'https://github.com/a/b', "
                    "'main', 'p', 's', '', '', 60, :t, :t, 'synced', '', '{}', 0, 0, false)"
                ),
                {"t": now},
            )
        migrate(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT edit_mode FROM git_repositories")).scalars().all() == ["push"]
        _downgrade(url, "0010")
        assert "edit_mode" not in {c["name"] for c in inspect(engine).get_columns("git_repositories")}
    finally:
        engine.dispose()
