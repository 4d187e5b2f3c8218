"""Several replicas (issue 19): the SQLite single-server lock, PostgreSQL advisory locks (migrations,
rounds, per-cluster leases) and the NATS fan-out of live events and job results between replicas.
PostgreSQL and nats-server are real processes (tests/postgres.py, tests/nats_support.py)."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlalchemy import func, select, text

from moorage.server import leases
from moorage.server.bus import servers_of
from moorage.server.db import make_engine, make_session_factory, migrate, transaction
from moorage.server.events import Broadcaster, JobWaiters
from moorage.server.fanout import MAX_BYTES, Fanout, batches, decode, encode
from tests import postgres
from tests.nats_support import running_nats

needs_postgres = pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))


# --------------------------------------------------------------------------- SQLite: one server


def test_a_second_server_on_one_sqlite_file_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    db = tmp_path / "moorage.db"
    first = leases.SingleServerLock(db)
    first.acquire()
    with pytest.raises(leases.AnotherServer) as refused:
        leases.SingleServerLock(db).acquire()
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message
    assert str(db) in message
    assert "PostgreSQL" in message
    first.release()
    again = leases.SingleServerLock(db)
    again.acquire()  # free once the first let go
    again.release()


def test_the_sqlite_lock_goes_with_a_killed_process(tmp_path: Path) -> None:
    db = tmp_path / "moorage.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from moorage.server.leases import SingleServerLock;"
            f"SingleServerLock(Path({str(db)!r})).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(leases.AnotherServer, match=f"pid {holder.pid}"):
            leases.SingleServerLock(db).acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        lock = leases.SingleServerLock(db)
        lock.acquire()
        lock.release()
    finally:
        holder.kill()
        holder.wait(10)


def test_sqlite_needs_no_advisory_locks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        with transaction(make_session_factory(engine)) as s:
            assert leases.try_round(s, leases.EXPIRY_KEY)
        held = leases.ClusterLeases(engine)
        assert held.try_take("c1")
        assert not held.try_take("c1")  # one sync per cluster in this server too
        held.release("c1")
        assert held.try_take("c1")
    finally:
        engine.dispose()


def test_keys_are_stable_signed_64_bit_and_distinct() -> None:
    assert leases.key("cluster:a") == leases.key("cluster:a")
    keys = {leases.key(f"cluster:{i}") for i in range(10_000)} | {leases.MIGRATION_KEY, leases.EXPIRY_KEY}
    assert len(keys) == 10_002
    assert all(-(2**63) <= k < 2**63 for k in keys)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if reason := postgres.available():
        pytest.skip(reason)
    with postgres.running_postgres() as url:
        yield url


@needs_postgres
def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def one() -> None:
        try:
            start.wait()
            migrate(pg_url)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    engine = make_engine(pg_url)
    try:
        with engine.connect() as c:
            assert c.scalar(select(func.count()).select_from(text("alembic_version"))) == 1
    finally:
        engine.dispose()


@needs_postgres
def test_a_round_is_done_by_one_replica_at_a_time(pg_url: str) -> None:
    a, b = make_engine(pg_url), make_engine(pg_url)
    try:
        fa, fb = make_session_factory(a), make_session_factory(b)
        with transaction(fa) as sa:
            assert leases.try_round(sa, leases.EXPIRY_KEY)
            with transaction(fb) as sb:
                assert not leases.try_round(sb, leases.EXPIRY_KEY)  # A is doing this round
        with transaction(fb) as sb:
            assert leases.try_round(sb, leases.EXPIRY_KEY)  # A's transaction ended: free again
    finally:
        a.dispose()
        b.dispose()


@needs_postgres
def test_a_cluster_lease_is_held_by_one_replica_and_freed_when_its_connection_dies(pg_url: str) -> None:
    a, b = make_engine(pg_url), make_engine(pg_url)
    first, second = leases.ClusterLeases(a), leases.ClusterLeases(b)
    try:
        assert first.try_take("c1")
        assert not second.try_take("c1")
        assert second.try_take("c2")  # other clusters are free
        first.release("c1")
        assert second.try_take("c1")
        second.release("c1")
        assert first.try_take("c1")
        # the replica holding it dies: PostgreSQL ends its session (as when the process is killed)
        with a.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND granted "
                    "AND ((classid::bigint << 32) | objid::bigint) = :k"
                ),
                {"k": leases.key("cluster:c1") & 0xFFFFFFFFFFFFFFFF},
            )
        for _ in range(50):
            if second.try_take("c1"):
                break
            threading.Event().wait(0.1)
        else:
            raise AssertionError("the lease of a dead replica was never freed")
        # the first notices at its next call: its leases are gone, it takes them anew
        assert not first.try_take("c3")
        assert first.lost == 1
        assert first.held == frozenset()
        assert first.try_take("c3")  # a new connection
        assert not first.try_take("c1")  # the second has it now
    finally:
        first.close()
        second.close()
        a.dispose()
        b.dispose()


# --------------------------------------------------------------------------- NATS fan-out


def test_fanout_messages_are_bounded_and_checked() -> None:
    small = [{"type": "addon", "n": i} for i in range(3)]
    assert [decode(m) for m in batches("r1", small)] == [{"origin": "r1", "events": small}]
    big = [{"type": "addon", "blob": "x" * (MAX_BYTES // 3)} for _ in range(4)]
    split = batches("r1", big)
    assert len(split) == 4
    assert all(len(m) <= MAX_BYTES for m in split)
    assert batches("r1", [{"blob": "x" * MAX_BYTES}]) == []  # too big alone: dropped
    assert decode(b"not json") is None
    assert decode(b"[1]") is None
    assert decode(b'{"events": []}') is None  # no origin
    assert decode(b"x" * (2 * MAX_BYTES + 1)) is None
    assert decode(encode("r2", job="j1")) == {"origin": "r2", "job": "j1"}


def test_several_nats_urls() -> None:
    assert servers_of("nats://a:4222, nats://b:4222,,nats://c:4222") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]
    with pytest.raises(ValueError, match="empty"):
        servers_of(" , ")


async def test_events_and_results_reach_the_other_replica_once(tmp_path: Path) -> None:
    with running_nats(tmp_path) as server:
        ncs = [await nats.connect(server.url) for _ in range(2)]
        pairs = [(Broadcaster(), JobWaiters()) for _ in ncs]
        fanouts = [Fanout(events, waiters) for events, waiters in pairs]
        woken: list[int] = []
        fanouts[1].wake = lambda: woken.append(1)
        try:
            for fanout, nc in zip(fanouts, ncs, strict=True):
                await fanout.start(nc)
            (a_events, a_waiters), (b_events, b_waiters) = pairs
            async with a_events.subscribe() as on_a, b_events.subscribe() as on_b:
                with b_waiters.watch("job-1") as answered:
                    a_events.publish([{"type": "gitops", "cluster": "c1"}])
                    a_waiters.done("job-1")  # A recorded the result B's request waits for
                    fanouts[0].woken()
                    try:
                        got_b: dict[str, Any] | None = await asyncio.wait_for(on_b.get(), 20)
                        await asyncio.wait_for(answered.wait(), 20)
                    except TimeoutError:  # say what each side saw (this test was flaky once in a full run)
                        seen = [
                            (f.received, nc.is_connected, nc.stats)
                            for f, nc in zip(fanouts, ncs, strict=True)
                        ]
                        log = (tmp_path / "n0" / "nats.log").read_text()[-1500:]
                        raise AssertionError(
                            f"B never got A's event or result; replicas {seen}; nats: {log}"
                        ) from None
                got_a = await asyncio.wait_for(on_a.get(), 20)
                assert got_a == got_b == {"type": "gitops", "cluster": "c1"}
                await asyncio.sleep(0.3)
                assert on_a.empty()  # A's own event came back from NATS but was not delivered twice
                assert on_b.empty()
            assert woken == [1]
            assert fanouts[0].received == 0
            assert fanouts[1].received == 3
        finally:
            for fanout in fanouts:
                await fanout.close()
            for nc in ncs:
                await nc.close()
