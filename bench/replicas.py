"""What running several replicas costs: the coordination primitives of `server/leases.py` on a real
PostgreSQL and the fan-out of `server/fanout.py` through a real nats-server, on loopback.

    .venv/bin/python bench/replicas.py [--runs 2000]

Measures: a cluster lease taken and released (`ClusterLeases.try_take` + `release`, two statements
on the lease connection), a refused take (another replica holds it), an expiry-round try-lock in
its own transaction, and the time from `Broadcaster.publish` on replica A to the event in a
subscriber's queue on replica B (two connections to one nats-server). Prints one JSON object of
medians and 99th percentiles (microseconds)."""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import postgres
from tests.nats_support import running_nats

from moorage.server import leases
from moorage.server.db import make_engine, make_session_factory, migrate, transaction
from moorage.server.events import Broadcaster, JobWaiters
from moorage.server.fanout import Fanout


def _us(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
    }


def _database(url: str, runs: int) -> dict[str, Any]:
    migrate(url)
    a, b = make_engine(url), make_engine(url)
    mine, theirs = leases.ClusterLeases(a), leases.ClusterLeases(b)
    try:
        take = []
        for i in range(runs):
            started = time.perf_counter()
            assert mine.try_take(f"c{i}")
            mine.release(f"c{i}")
            take.append(time.perf_counter() - started)
        assert theirs.try_take("held")
        refused = []
        for _ in range(runs):
            started = time.perf_counter()
            assert not mine.try_take("held")
            refused.append(time.perf_counter() - started)
        factory = make_session_factory(a)
        rounds = []
        for _ in range(runs):
            started = time.perf_counter()
            with transaction(factory) as s:
                leases.try_round(s, leases.EXPIRY_KEY)
            rounds.append(time.perf_counter() - started)
        return {
            "lease_take_and_release": _us(take),
            "lease_refused": _us(refused),
            "expiry_round_transaction": _us(rounds),
        }
    finally:
        mine.close()
        theirs.close()
        a.dispose()
        b.dispose()


async def _fanout(url: str, runs: int) -> dict[str, Any]:
    ncs = [await nats.connect(url) for _ in range(2)]
    pairs = [(Broadcaster(), JobWaiters()) for _ in ncs]
    fanouts = [Fanout(e, w) for e, w in pairs]
    try:
        for fanout, nc in zip(fanouts, ncs, strict=True):
            await fanout.start(nc)
        samples = []
        async with pairs[1][0].subscribe() as queue:
            for i in range(runs):
                started = time.perf_counter()
                pairs[0][0].publish([{"type": "addon", "cluster": "c1", "n": i}])
                await asyncio.wait_for(queue.get(), 5)
                samples.append(time.perf_counter() - started)
        return {"event_a_to_subscriber_on_b": _us(samples)}
    finally:
        for fanout in fanouts:
            await fanout.close()
        for nc in ncs:
            await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    if reason := postgres.available():
        raise SystemExit(reason)
    out: dict[str, Any] = {"runs": args.runs}
    with postgres.running_postgres() as url:
        out.update(_database(url, args.runs))
    with tempfile.TemporaryDirectory() as tmp, running_nats(Path(tmp)) as server:
        out.update(asyncio.run(_fanout(server.url, args.runs)))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
