"""The high-availability control plane on loopback (issue 19): a PostgreSQL, nats-server nodes
clustered with JetStream, and N `moorage server` replicas sharing both, all as child processes.

One module for the integration tests (`tests/integration/test_replicas*.py`), the load generator
(`bench/load.py`) and `make demo-ha` (`scripts/demo.py --ha`):

    with running_ha(base, replicas=2, nats_nodes=3) as ha:
        ha.servers[0].url, ha.nats.url, ha.database_url

The PostgreSQL is `tests/postgres.py`'s, the NATS nodes are `tests/nats_support.py`'s (no
authentication: the platform team's own NATS, as `--nats-url`), the replicas are
`tests/integration/control_plane_support.Server` processes."""

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519
from sqlalchemy import create_engine, text

from tests import postgres
from tests.integration.control_plane_support import Server, free_port
from tests.nats_support import Nats, running_nats

NAMES = "abcdefgh"


class Replicas:
    """`count` servers named a, b, c… on one database and one NATS (comma-separated URLs), each with
    its own port and data directory under `base`, all with the same server key."""

    def __init__(
        self,
        base: Path,
        database_url: str,
        nats_url: str,
        *,
        count: int = 2,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        if not 1 <= count <= len(NAMES):
            raise ValueError(f"between 1 and {len(NAMES)} replicas, not {count}")
        # every replica needs the same server key (sealed credentials, token hashes)
        shared = {
            "MOORAGE_SECRET_KEY": str(x25519.Identity.generate()),
            "MOORAGE_GIT_RETRY_BASE_SECONDS": "0.5",
            "MOORAGE_GIT_RETRY_MAX_SECONDS": "2",
            **(env or {}),
        }
        self.database_url = database_url
        self.servers: list[Server] = []
        for name in NAMES[:count]:
            port = free_port()
            (base / name).mkdir(parents=True, exist_ok=True)
            self.servers.append(
                Server(
                    f"http://127.0.0.1:{port}",
                    base / name,
                    port,
                    database_url=database_url,
                    env=dict(shared),
                    args=["--nats-url", nats_url, *args],
                )
            )

    def start_together(self) -> None:
        """All at the same moment (all migrate the empty database: one does, the others wait)."""
        errors: list[BaseException] = []

        def one(server: Server) -> None:
            try:
                server.start()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=one, args=(s,)) for s in self.servers]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join(120)
        except BaseException:  # Ctrl-C of the demo: let the starts end, so stop() finds every process
            for t in threads:
                t.join(120)
            raise
        assert not errors, errors

    def lease_holder(self, timeout: float = 60) -> Server:
        """The replica whose PostgreSQL connection holds a GitOps lease (its application_name)."""
        engine = create_engine(self.database_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                with engine.connect() as c:
                    names = c.scalars(
                        text(
                            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                            "AND a.application_name LIKE 'moorage-leases/%'"
                        )
                    ).all()
                pids = {int(n.rsplit("/", 1)[1]) for n in names}
                for server in self.servers:
                    if server.proc is not None and server.proc.pid in pids:
                        return server
                time.sleep(0.1)
        finally:
            engine.dispose()
        raise AssertionError("no replica holds a GitOps lease")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@dataclass
class HaControlPlane:
    database_url: str
    nats: Nats
    replicas: Replicas

    @property
    def servers(self) -> list[Server]:
        return self.replicas.servers


@contextmanager
def running_ha(
    base: Path,
    *,
    replicas: int = 2,
    nats_nodes: int = 3,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[HaControlPlane]:
    """A fresh PostgreSQL, `nats_nodes` nats-servers (a JetStream cluster from 3) and `replicas`
    servers started together; everything stopped (and PostgreSQL's files removed) on the way out."""
    with postgres.running_postgres() as url, running_nats(base / "nats", nodes=nats_nodes) as nats:
        started = Replicas(base / "replicas", url, nats.url, count=replicas, env=env, args=args)
        try:
            started.start_together()
            yield HaControlPlane(url, nats, started)
        finally:
            started.stop()
