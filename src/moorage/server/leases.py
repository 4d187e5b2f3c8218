"""Who does what when several `moorage server` replicas share one database (docs/architecture.md,
"Several replicas"). The database decides, never a replica's memory:

- SQLite is for one server: `SingleServerLock` holds an exclusive lock on a file beside the database
  (released by the kernel when the process dies), and a second server on the same file stops with a
  message saying so.
- On PostgreSQL, the schema is migrated under a transaction-level advisory lock (`MIGRATION_KEY`),
  so two replicas starting together migrate once: the second waits, then finds nothing to do.
- A round of periodic work (job expiry) takes a transaction-level advisory try-lock: one replica does
  it, the others skip that round (`try_round`).
- A GitOps sync of a cluster runs where its `ClusterLeases` lease is: a session-level advisory lock
  per cluster on one connection per replica, held while the sync runs. A replica that dies (even
  `kill -9`) loses its connection and so its leases, and another replica takes the cluster over.

Keys are 64-bit integers derived from a name (`key`), in one namespace shared with nothing else of
the database but Moorage."""

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

log = logging.getLogger("moorage.server.leases")


def _application_name() -> str:
    """The lease connection's name in pg_stat_activity: `moorage-leases/host/pid`."""
    return f"moorage-leases/{socket.gethostname()[:30]}/{os.getpid()}"


def key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name` (stable across processes and versions)."""
    digest = hashlib.blake2b(f"moorage:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATION_KEY = key("schema-migration")
EXPIRY_KEY = key("job-expiry")
STARTUP_KEY = key("start-up")  # the bootstrap token and other once-only writes at start-up


def is_postgresql(bind: Engine | Connection | Session) -> bool:
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    return dialect.name == "postgresql"


# --------------------------------------------------------------------------- SQLite: one server


class AnotherServer(RuntimeError):
    """Another `moorage server` already uses this SQLite database."""


class SingleServerLock:
    """An exclusive `flock` on `<database>.lock`: held while the server runs, gone when it exits or
    dies. The file holds the pid of the holder, for the message a second server prints."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise AnotherServer(
                f"another moorage server{who} is using the SQLite database {self.path.with_suffix('')}: "
                "SQLite is for one server only. Stop that one, give this one another --data-dir, or run "
                "several replicas on PostgreSQL (--database-url postgresql://…)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


# --------------------------------------------------------------------------- PostgreSQL


def lock_migrations(connection: Connection) -> None:
    """Called inside the migration's transaction: on PostgreSQL, waits until no other replica is
    migrating (the lock goes with the transaction). SQLite: nothing (one server, its file lock)."""
    if is_postgresql(connection):
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_KEY})


def one_at_a_time(session: Session, name_key: int) -> None:
    """The rest of the caller's transaction runs on one replica at a time (PostgreSQL: waits for the
    transaction-level lock; SQLite: nothing)."""
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": name_key})


def try_round(session: Session, name_key: int) -> bool:
    """True when this replica does this round of the periodic work `name_key` (a transaction-level
    try-lock: no other replica is doing it at this moment). Always True on SQLite."""
    if not is_postgresql(session):
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": name_key}))


class ClusterLeases:
    """Per-cluster ownership of GitOps syncs across replicas.

    On PostgreSQL, a lease is a session-level advisory lock taken on one connection of this replica's
    own (outside the pool, so the pool's recycling never drops a lease); the connection is used by
    one thread at a time. When it breaks (PostgreSQL restarted), every lease is lost: `lost` counts
    it, the next `try_take` opens a new connection. On SQLite, leases are in memory (one server)."""

    def __init__(self, engine: Engine) -> None:
        self._postgres = is_postgresql(engine)
        # a connection of its own, never pooled: a lease must not outlive it in a pool
        self._engine = (
            create_engine(
                engine.url, poolclass=NullPool, connect_args={"application_name": _application_name()}
            )
            if self._postgres
            else engine
        )
        self._connection: Connection | None = None
        self._held: set[str] = set()
        self._mutex = threading.Lock()
        self.lost = 0  # times the lease connection broke

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    def try_take(self, cluster_id: str) -> bool:
        """Take the cluster's lease if no replica (this one included) holds it."""
        with self._mutex:
            if cluster_id in self._held:
                return False
            if self._postgres and not self._locked("pg_try_advisory_lock(:k)", cluster_id):
                return False
            self._held.add(cluster_id)
            return True

    def release(self, cluster_id: str) -> None:
        with self._mutex:
            if cluster_id not in self._held:
                return
            self._held.discard(cluster_id)
            if self._postgres and self._connection is not None:
                self._locked("pg_advisory_unlock(:k)", cluster_id)

    def close(self) -> None:
        with self._mutex:
            self._held.clear()
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None
            if self._postgres:
                self._engine.dispose()

    def _locked(self, call: str, cluster_id: str) -> bool:
        try:
            if self._connection is None:
                self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return bool(self._connection.scalar(text(f"SELECT {call}"), {"k": key(f"cluster:{cluster_id}")}))
        except Exception as e:
            # the connection broke: PostgreSQL let go of every lock of it
            log.warning("the GitOps lease connection to PostgreSQL broke (%s); leases are taken anew", e)
            self.lost += 1
            if self._held:
                log.warning("leases lost on: %s", ", ".join(sorted(self._held)))
            self._held.clear()
            with contextlib.suppress(Exception):
                if self._connection is not None:
                    self._connection.invalidate()
                    self._connection.close()
            self._connection = None
            return False

    @contextlib.contextmanager
    def holding(self, cluster_id: str) -> Iterator[bool]:
        taken = self.try_take(cluster_id)
        try:
            yield taken
        finally:
            if taken:
                self.release(cluster_id)
