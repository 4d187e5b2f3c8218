"""How many clusters `moorage server` keeps up with, with one replica and with two (issue 19).

Real `moorage server` processes on a real PostgreSQL and nats-server (`tests/ha_support.running_ha`),
and simulated clusters that speak the agent's protocol over NATS with the agent's own code: each is
registered through the API (`POST /clusters`), asks for its NATS identity with the agent's
`runner.register` (`POST /agent/register`), connects to NATS as `agent-<id>` with its token, its own
inbox prefix, pulls its job consumer (jobs are answered running, then success), publishes heartbeats
(`HeartbeatMessage`) every 15 s and after every sweep, and a sweep every 60 s whose add-on state goes
out through the agent's `StateTracker` (a full snapshot first, then deltas); each sweep changes the
observation of a fraction of its add-ons (drift appears or is healed, built with the engine's
`drift_for_wire`). Each cluster has 50 add-ons.

Time is compressed by --compress (default 20: a heartbeat every 0.75 s, a sweep every 3 s), so a
simulated cluster sends what 20 real ones send; "equivalent clusters" = simulated x compress (the
message rate is the same; the connections and add-on rows are 1/compress as many).

The number of clusters grows in --steps; a step keeps up when, over its measuring window:
  heartbeat lag (recorded by the server minus sent) p95 <= --hb-bound seconds,
  state report lag (its add-on rows written minus sent) p95 <= --report-bound seconds,
  no cluster's newest recorded heartbeat is older than one interval + --hb-bound + 1 s, and
  no report older than --report-bound is still unrecorded at the end, and
  every add-on of every cluster has its row (none lost to reports applied out of order).
The ramp stops at the first step that does not. CPU (% of one core) and RSS per replica, of
PostgreSQL (all its processes) and nats-server, and of this generator are measured over the window;
PostgreSQL rows and bytes per cluster-day of history are extrapolated from the growth during the
window (real time x compress), per equivalent cluster.

    .venv/bin/python bench/load.py [--replicas 1,2] [--steps 5,10,20,40,80] [--compress 20]
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import postgres
from tests.ha_support import HaControlPlane, running_ha
from tests.integration.control_plane_support import ADMIN

from moorage import __version__
from moorage.agent.runner import Registration, register
from moorage.agent.state import StateTracker
from moorage.engine.diffing.model import FieldChange, ResourceDrift
from moorage.engine.observe import drift_for_wire
from moorage.spec import protocol
from moorage.spec.protocol import AddonObservation, HeartbeatMessage, JobMessage, JobState, ResultMessage

HEARTBEAT_SECONDS = 15.0  # the agent's defaults (runner.AgentSettings)
SWEEP_SECONDS = 60.0
TICKS = os.sysconf("SC_CLK_TCK")


def _observation(i: int, drifted: bool) -> AddonObservation:
    drift: list[dict[str, Any]] = []
    if drifted:
        drift, _ = drift_for_wire(
            [
                ResourceDrift(
                    "apps/v1",
                    "Deployment",
                    f"ns-{i % 10}",
                    f"addon-{i:02d}",
                    "modified",
                    (FieldChange("spec.replicas", 2, 3),),
                )
            ]
        )
    return AddonObservation(
        name=f"addon-{i:02d}",
        namespace=f"ns-{i % 10}",
        chart="webapp",
        version="1.0.0",
        registry_url="https://charts.example.com",
        installed=True,
        release_chart="webapp",
        release_version="1.0.0",
        revision=1,
        helm_status="deployed",
        last_deployed=datetime(2026, 1, 1, tzinfo=UTC),
        health="Healthy",
        drift=drift,
        commit="0" * 40,
        defined_at=f"import-cluster.yaml:{10 + 6 * i}",
    )


@dataclass
class SimCluster:
    """One simulated agent: the agent's registration, NATS identity, messages and state tracking."""

    name: str
    token: str
    server: str
    addons: int
    drift: float
    heartbeat_every: float
    sweep_every: float
    rng: random.Random
    reg: Registration | None = None
    nc: Client | None = None
    tracker: StateTracker | None = None
    drifted: set[int] = field(default_factory=set)
    sent: dict[int, float] = field(default_factory=dict)  # report seq -> wall time it was sent
    last_sweep: datetime | None = None
    jobs_answered: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self.reg = await register(self.server, self.token)
        self.tracker = StateTracker(self.reg.cluster_id)
        self.nc = await nats.connect(
            [u.strip() for u in self.reg.nats_url.split(",")],
            user=self.reg.nats_user,
            password=self.token,
            inbox_prefix=self.reg.inbox_prefix.encode(),
            name=f"moorage-agent-{self.name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=2,
        )
        # not in step with each other, as real agents are not
        offset = self.rng.uniform(0, self.heartbeat_every)
        self.tasks = [
            asyncio.create_task(self._heartbeats(offset)),
            asyncio.create_task(self._sweeps(self.rng.uniform(0, self.sweep_every))),
            asyncio.create_task(self._jobs()),
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _heartbeats(self, offset: float) -> None:
        await asyncio.sleep(offset)
        while True:
            await self._beat()
            await asyncio.sleep(self.heartbeat_every)

    async def _beat(self) -> None:
        assert self.nc is not None
        assert self.reg is not None
        beat = HeartbeatMessage(
            cluster_id=self.reg.cluster_id,
            agent_version=__version__,
            last_sweep_at=self.last_sweep,
            sweep_duration_seconds=0.4 if self.last_sweep else None,
            addons_inspected=self.addons if self.last_sweep else 0,
            drifted=len(self.drifted),
            has_definition=True,
            sent_at=datetime.now(UTC),
        )
        with contextlib.suppress(Exception):
            await self.nc.publish(protocol.heartbeat_subject(self.reg.cluster_id), protocol.encode(beat))

    async def _sweeps(self, offset: float) -> None:
        await asyncio.sleep(offset)
        while True:
            await self.sweep()
            await self._beat()  # the agent sends a heartbeat after each sweep
            await asyncio.sleep(self.sweep_every)

    async def sweep(self) -> None:
        assert self.nc is not None
        assert self.reg is not None
        assert self.tracker is not None
        if self.tracker.need_full is False:
            for i in range(self.addons):
                if self.rng.random() < self.drift:
                    self.drifted.symmetric_difference_update({i})
        observations = [_observation(i, i in self.drifted) for i in range(self.addons)]
        self.last_sweep = datetime.now(UTC)
        messages = self.tracker.reports(observations, complete=True)
        js = self.nc.jetstream()
        try:
            for message in messages:
                self.sent[message.seq] = time.time()
                await js.publish(protocol.state_subject(self.reg.cluster_id), protocol.encode(message))
        except Exception:
            self.tracker.reset()
            return
        self.tracker.sent(messages)

    async def _jobs(self) -> None:
        assert self.nc is not None
        assert self.reg is not None
        js = self.nc.jetstream()
        sub = await js.pull_subscribe_bind(
            durable=protocol.agent_consumer(self.reg.cluster_id), stream=protocol.JOBS_STREAM
        )
        while True:
            try:
                batch = await sub.fetch(1, timeout=30)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except Exception:
                await asyncio.sleep(1)
                continue
            for msg in batch:
                job = protocol.decode(msg.data, JobMessage)
                for state in (JobState.RUNNING, JobState.SUCCESS):
                    result = ResultMessage(job_id=job.job_id, cluster_id=self.reg.cluster_id, state=state)
                    await js.publish(protocol.results_subject(self.reg.cluster_id), protocol.encode(result))
                await msg.ack()
                self.jobs_answered += 1


# -------------------------------------------------------------------------------- measuring


def _cpu_seconds(pid: int, *, children: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        used += int(fields[13]) + int(fields[14])  # of children already reaped
    return used / TICKS


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    found.append(int(entry.name))
    return found


@dataclass
class Usage:
    """CPU seconds and RSS of the processes under test, at one moment."""

    replicas: list[float]
    replicas_rss: list[float]
    postgres: float
    postgres_rss: float
    nats: float
    generator: float
    at: float

    @classmethod
    def now(cls, ha: HaControlPlane) -> "Usage":
        pids = [s.proc.pid for s in ha.servers if s.proc is not None]
        master = postgres.server_pid(ha.database_url)
        backends = _children(master)
        pg_cpu = _cpu_seconds(master, children=True)
        pg_rss = _rss_mib(master)
        for pid in backends:
            with contextlib.suppress(OSError):
                pg_cpu += _cpu_seconds(pid)
                pg_rss += _rss_mib(pid)
        nats_cpu = sum(_cpu_seconds(n.proc.pid) for n in ha.nats.nodes if n.proc is not None)
        own = os.times()
        return cls(
            [_cpu_seconds(p) for p in pids],
            [_rss_mib(p) for p in pids],
            pg_cpu,
            pg_rss,
            nats_cpu,
            own.user + own.system,
            time.monotonic(),
        )


def _percent(before: float, after: float, seconds: float) -> float:
    return round(100 * (after - before) / seconds, 1)


@dataclass
class Storage:
    transitions: int
    addon_states: int
    database_bytes: int
    transitions_bytes: int

    @classmethod
    def now(cls, engine: Engine) -> "Storage":
        with engine.connect() as c:
            row = c.execute(
                text(
                    "SELECT (SELECT count(*) FROM addon_transitions), (SELECT count(*) FROM addon_states), "
                    "pg_database_size(current_database()), pg_total_relation_size('addon_transitions')"
                )
            ).one()
        return cls(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


_SAMPLE = text(
    "SELECT c.id, c.last_heartbeat_at, c.heartbeat->>'sent_at', c.state_session, c.state_seq, "
    "(SELECT max(a.observed_at) FROM addon_states a WHERE a.cluster_id = c.id) FROM clusters c"
)


def _utc(value: Any) -> float:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, datetime)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@dataclass
class Lags:
    heartbeat: list[float] = field(default_factory=list)
    report: list[float] = field(default_factory=list)
    stale: int = 0  # (cluster, sample) pairs whose newest recorded heartbeat was too old
    oldest_heartbeat: float = 0.0


class Sampler:
    """Reads what the server recorded, once a second: heartbeat lag (the server's receive time minus
    the agent's sent_at) and state report lag (the time its add-on rows were written minus the time the
    simulated agent sent that report, matched by session and seq)."""

    def __init__(self, engine: Engine, sims: dict[str, SimCluster], stale_after: float) -> None:
        self.engine, self.sims, self.stale_after = engine, sims, stale_after
        self.seen_beats: dict[str, str] = {}
        self.seen_reports: dict[str, tuple[str, int]] = {}
        self.lags = Lags()

    def sample(self, record: bool) -> None:
        with self.engine.connect() as c:
            rows = c.execute(_SAMPLE).all()
        now = time.time()
        for cluster_id, recorded_at, sent, session, seq, observed in rows:
            sim = self.sims.get(cluster_id)
            if sim is None or sent is None or recorded_at is None:
                continue
            age = now - _utc(sent)
            if record:
                self.lags.oldest_heartbeat = max(self.lags.oldest_heartbeat, age)
                self.lags.stale += age > self.stale_after
            if self.seen_beats.get(cluster_id) != sent:
                self.seen_beats[cluster_id] = sent
                if record:
                    self.lags.heartbeat.append(_utc(recorded_at) - _utc(sent))
            tracker = sim.tracker
            if tracker is None or session != tracker.session or seq is None or observed is None:
                continue
            if self.seen_reports.get(cluster_id) != (session, seq):
                self.seen_reports[cluster_id] = (session, seq)
                sent_at = sim.sent.get(int(seq))
                if record and sent_at is not None:
                    self.lags.report.append(_utc(observed) - sent_at)

    def unrecorded(self, older_than: float) -> int:
        """Reports sent more than `older_than` seconds ago whose seq the server has not reached."""
        now, late = time.time(), 0
        for cluster_id, sim in self.sims.items():
            recorded = self.seen_reports.get(cluster_id, ("", 0))[1]
            late += sum(1 for seq, at in sim.sent.items() if seq > recorded and now - at > older_than)
        return late


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _state_backlog(url: str) -> int:
    nc = await nats.connect(url.split(","))
    try:
        info = await nc.jetstream().consumer_info(protocol.RESULTS_STREAM, "server-state")
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    finally:
        await nc.close()


# -------------------------------------------------------------------------------- the ramp


async def _register_clusters(ha: HaControlPlane, names: list[str]) -> list[tuple[str, str, str]]:
    """(name, token, server URL) of each new cluster, registered through the replicas in turn."""
    gate = asyncio.Semaphore(4)

    async def one(client: httpx.AsyncClient, i: int, name: str) -> tuple[str, str, str]:
        server = ha.servers[i % len(ha.servers)]
        async with gate:
            response = await client.post(
                f"{server.url}/api/v1/clusters",
                json={"name": name},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
        response.raise_for_status()
        return name, str(response.json()["agent_token"]), server.url

    async with httpx.AsyncClient(timeout=120) as client:
        return list(await asyncio.gather(*(one(client, i, n) for i, n in enumerate(names))))


async def _ramp(ha: HaControlPlane, options: argparse.Namespace) -> list[dict[str, Any]]:
    compress = options.compress
    heartbeat_every, sweep_every = HEARTBEAT_SECONDS / compress, SWEEP_SECONDS / compress
    rng = random.Random(19)  # noqa: S311 - load, not secrets
    engine = create_engine(ha.database_url)
    sims: dict[str, SimCluster] = {}
    sampler = Sampler(engine, sims, stale_after=heartbeat_every + options.hb_bound + 1.0)
    rows: list[dict[str, Any]] = []
    try:
        for count in options.steps:
            names = [f"sim-{i:04d}" for i in range(len(sims), count)]
            registered = await _register_clusters(ha, names)
            new = [
                SimCluster(
                    name,
                    token,
                    url,
                    options.addons,
                    options.drift,
                    heartbeat_every,
                    sweep_every,
                    random.Random(rng.random()),  # noqa: S311
                )
                for name, token, url in registered
            ]
            await asyncio.gather(*(s.start() for s in new))
            for s in new:
                assert s.reg is not None
                sims[s.reg.cluster_id] = s
            warm_until = time.monotonic() + options.warmup
            while time.monotonic() < warm_until:
                await asyncio.to_thread(sampler.sample, False)
                await asyncio.sleep(1)
            sampler.lags = Lags()
            before, stored_before = Usage.now(ha), await asyncio.to_thread(Storage.now, engine)
            end = time.monotonic() + options.window
            while time.monotonic() < end:
                started = time.monotonic()
                await asyncio.to_thread(sampler.sample, True)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            after, stored_after = Usage.now(ha), await asyncio.to_thread(Storage.now, engine)
            await asyncio.to_thread(sampler.sample, False)
            late = sampler.unrecorded(options.report_bound)
            backlog = await _state_backlog(ha.nats.url)
            seconds = after.at - before.at
            lags = sampler.lags
            hb95, rep95 = _p(lags.heartbeat, 0.95), _p(lags.report, 0.95)
            keeps_up = (
                hb95 <= options.hb_bound
                and (not lags.report or rep95 <= options.report_bound)  # --drift 0: no deltas to time
                and lags.stale == 0
                and late == 0
                and count * options.addons == stored_after.addon_states
            )
            cluster_days = count * compress * seconds / 86400  # equivalent clusters x days
            row = {
                "replicas": len(ha.servers),
                "simulated": count,
                "equivalent": count * compress,
                "heartbeats_per_s": round(count * (1 / heartbeat_every + 1 / sweep_every), 1),
                "reports_per_s": round(count / sweep_every, 1),
                "hb_lag_p50_ms": _ms(statistics.median(lags.heartbeat)) if lags.heartbeat else None,
                "hb_lag_p95_ms": round(hb95 * 1000, 1),
                "report_lag_p50_ms": _ms(statistics.median(lags.report)) if lags.report else None,
                "report_lag_p95_ms": round(rep95 * 1000, 1),
                "oldest_heartbeat_s": round(lags.oldest_heartbeat, 2),
                "stale_samples": lags.stale,
                "late_reports": late,
                "state_backlog": backlog,
                "keeps_up": keeps_up,
                "replica_cpu_pct": [
                    _percent(b, a, seconds) for b, a in zip(before.replicas, after.replicas, strict=True)
                ],
                "replica_rss_mib": [round(r) for r in after.replicas_rss],
                "postgres_cpu_pct": _percent(before.postgres, after.postgres, seconds),
                "postgres_rss_mib": round(after.postgres_rss),
                "nats_cpu_pct": _percent(before.nats, after.nats, seconds),
                "generator_cpu_pct": _percent(before.generator, after.generator, seconds),
                "transitions_per_cluster_day": round(
                    (stored_after.transitions - stored_before.transitions) / cluster_days
                ),
                "history_kib_per_cluster_day": round(
                    (stored_after.transitions_bytes - stored_before.transitions_bytes) / 1024 / cluster_days,
                    1,
                ),
                "db_kib_per_cluster_day": round(
                    (stored_after.database_bytes - stored_before.database_bytes) / 1024 / cluster_days, 1
                ),
                "db_mib": round(stored_after.database_bytes / 2**20, 1),
                "addon_state_rows": stored_after.addon_states,
                # add-ons every simulated agent reported (its first report is a full snapshot) but
                # the database lacks: reports applied out of order or lost
                "missing_addon_rows": count * options.addons - stored_after.addon_states,
                "load_avg_1m": round(os.getloadavg()[0], 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not keeps_up:
                break
    finally:
        await asyncio.gather(*(s.stop() for s in sims.values()))
        engine.dispose()
    return rows


COLUMNS = [
    ("replicas", "repl"),
    ("simulated", "sim"),
    ("equivalent", "equiv"),
    ("heartbeats_per_s", "hb/s"),
    ("reports_per_s", "rep/s"),
    ("hb_lag_p95_ms", "hb p95 ms"),
    ("report_lag_p95_ms", "rep p95 ms"),
    ("oldest_heartbeat_s", "oldest hb s"),
    ("state_backlog", "backlog"),
    ("keeps_up", "keeps up"),
    ("replica_cpu_pct", "replica CPU %"),
    ("replica_rss_mib", "replica RSS MiB"),
    ("postgres_cpu_pct", "PG CPU %"),
    ("nats_cpu_pct", "NATS CPU %"),
    ("generator_cpu_pct", "gen CPU %"),
    ("missing_addon_rows", "missing rows"),
    ("load_avg_1m", "load"),
]


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [[h for _, h in COLUMNS]] + [[str(r[k]) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", default="1,2", help="replica counts to measure, comma-separated")
    parser.add_argument("--steps", default="5,10,20,40,80", help="simulated clusters at each step")
    parser.add_argument("--compress", type=float, default=20.0, help="time compression factor")
    parser.add_argument("--addons", type=int, default=50)
    parser.add_argument("--drift", type=float, default=0.02, help="share of add-ons changed per sweep")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after adding clusters")
    parser.add_argument("--window", type=float, default=30.0, help="measured seconds per step")
    parser.add_argument("--hb-bound", type=float, default=2.0, help="heartbeat lag p95 bound, seconds")
    parser.add_argument("--report-bound", type=float, default=5.0, help="report lag p95 bound, seconds")
    parser.add_argument("--nats-nodes", type=int, default=1, help="nats-server nodes (3: a cluster, R3)")
    options = parser.parse_args()

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too unwinds: every process started is stopped

    signal.signal(signal.SIGTERM, stop)
    options.steps = [int(s) for s in options.steps.split(",")]
    if reason := postgres.available():
        raise SystemExit(f"bench/load.py needs PostgreSQL: {reason}")
    env = {
        # offline after three heartbeat intervals of the compressed clock, as after 180 s in real time
        "MOORAGE_AGENT_OFFLINE_SECONDS": str(180 / options.compress),
    }
    results: list[dict[str, Any]] = []
    for count in (int(r) for r in options.replicas.split(",")):
        with (
            tempfile.TemporaryDirectory(prefix="moorage-load-") as base,
            running_ha(Path(base), replicas=count, nats_nodes=options.nats_nodes, env=env) as ha,
        ):
            results += asyncio.run(_ramp(ha, options))
    print()
    print(
        f"time compressed x{options.compress:g}: a heartbeat every "
        f"{HEARTBEAT_SECONDS / options.compress:g} s "
        f"and after each sweep, a sweep every {SWEEP_SECONDS / options.compress:g} s; {options.addons} "
        f"add-ons per cluster, {options.drift:.0%} of them changed per sweep; {os.cpu_count()} CPUs"
    )
    print(_table(results))
    for count in sorted({r["replicas"] for r in results}):
        ok = [r["equivalent"] for r in results if r["replicas"] == count and r["keeps_up"]]
        print(f"{count} replica(s) kept up with {max(ok) if ok else 0:g} equivalent clusters")
    last = next((r for r in reversed(results) if r["keeps_up"]), None)
    if last is not None:
        print(
            f"history: {last['transitions_per_cluster_day']} add-on transition rows and "
            f"{last['history_kib_per_cluster_day']} KiB per cluster-day; the whole database grew "
            f"{last['db_kib_per_cluster_day']} KiB per cluster-day (dead row versions before vacuum included)"
        )
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
