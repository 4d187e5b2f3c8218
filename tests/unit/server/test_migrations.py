from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from moorage.server import service
from moorage.server.db import Base, make_engine, make_session_factory, migrate, transaction
from tests import postgres

TABLES = {
    "alembic_version",
    "api_tokens",
    "clusters",
    "operations",
    "jobs",
    "git_credentials",
    "git_repositories",
    "git_syncs",
}


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
            cluster, _ = service.register_cluster(s, "prod-1")
            cluster.last_heartbeat_at = when
        with transaction(factory) as s:
            again = service.get_cluster(s, "prod-1")
            # timezone-aware on both databases
            assert again.last_heartbeat_at == when
            assert again.last_heartbeat_at is not None
            assert again.last_heartbeat_at.tzinfo is not None
    finally:
        engine.dispose()


def test_sqlite_fresh_file(tmp_path: Path) -> None:
    _check_schema_and_roundtrip(f"sqlite:///{tmp_path / 'sub' / 'moorage.db'}")


@pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))
def test_postgresql() -> None:
    with postgres.running_postgres() as url:
        _check_schema_and_roundtrip(url)
