"""Engine and sessions for SQLite (default) or PostgreSQL, and `migrate(url)`: Alembic, configured
in code (no alembic.ini), with the scripts shipped inside the package."""

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from moorage.server.leases import lock_migrations

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

SessionFactory = sessionmaker[Session]

R = TypeVar("R")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # foreign keys are off by default in SQLite; WAL lets the API read while results are written
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # with WAL, NORMAL never corrupts and loses nothing when the process dies (only on power loss)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # each replica's connections are named, so pg_stat_activity shows which one holds what
    return create_engine(url, pool_pre_ping=True, connect_args={"application_name": application_name()})


def application_name(role: str = "moorage-server") -> str:
    """`role/host/pid`: PostgreSQL's application_name of this process's connections."""
    return f"{role}/{socket.gethostname()[:30]}/{os.getpid()}"


def make_session_factory(engine: Engine) -> SessionFactory:
    # expire_on_commit=False: objects stay readable after commit, for building responses
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: SessionFactory) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


async def in_transaction(factory: SessionFactory, work: Callable[[Session], R]) -> R:
    """`work` in one transaction on a worker thread: database drivers block, the event loop must not."""

    def run() -> R:
        with transaction(factory) as session:
            return work(session)

    return await anyio.to_thread.run_sync(run)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser interpolation: escape it (passwords may contain it)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _migrating(url: str) -> Iterator[Config]:
    """An Alembic config bound to one connection in one transaction, the migration lock held.

    On SQLite, foreign keys are off while migrating: a batch migration rebuilds a table (copy, drop,
    rename), and with them on, dropping the old `clusters` would delete every row that references
    it. They are checked before the transaction commits instead."""
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            if sqlite:  # outside a transaction, or SQLite ignores it
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin():
                cfg = alembic_config(url)
                cfg.attributes["connection"] = connection
                lock_migrations(connection)  # PostgreSQL: one replica migrates, the others wait
                yield cfg
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows whose references are gone: {broken[:5]}")
    finally:
        engine.dispose()


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (creates it from nothing on first start)."""
    with _migrating(url) as cfg:
        command.upgrade(cfg, revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` back to `revision` (tests of migrations; operators rolling back)."""
    with _migrating(url) as cfg:
        command.downgrade(cfg, revision)
