"""Live add-on state numbers (issue 10), with real processes: `moorage server` (SQLite, embedded
NATS) fed by a stand-in agent that does what `moorage agent` does on the wire (registers with its
agent token, connects to the server's NATS as its agent user, publishes `StateReport`s made by
`moorage.agent.state.StateTracker` with JetStream, a heartbeat every 15 s), and for `scale` a real
`moorage agent` on a devcluster.

list     GET /api/v1/clusters/{c}/addons of one cluster of --addons (1,000) add-ons (10 % drifted):
         p50 / p99 over --requests requests, default page (page_size 100) and page_size=1000;
         --runs rounds, each round's numbers and their medians.
memory   RSS of the server and of its embedded nats-server: --clusters (50) clusters idle (their
         agents connected, no add-on state), then with --per-cluster (100) add-ons of state each,
         then after one list of each cluster; median of 5 samples 1 s apart, --settle s after each
         change; --runs fresh servers. Then one more cluster is registered with the 50 agents
         connected: how long that registration and its agent's NATS connect take.
latency  one add-on of the --addons cluster changes state (Synced <-> Degraded): the time from just
         before the report is published to the change visible in GET …/addons/{a} (polled every
         5 ms), and, separately, on GET /api/v1/events?cluster=c (SSE): median / p99 of --changes;
         the same on a cluster of --small-addons (10) add-ons, for contrast.
sweep    a no-change sweep of 100 add-ons sends no state message: StateTracker fed the same 100
         observations twice (then once with one add-on changed); message counts (deterministic).
scale    `kubectl scale` of an add-on's Deployment (self-heal off) to OutOfSync in GET …/addons/{a}
         (polled every 50 ms), with the agent's default sweep interval (60 s, --default-runs) and
         with --sweep-interval 5 (--short-runs); the agent with MOORAGE_AGENT_WATCH=0 (sweeps only:
         each run first waits a random part of the interval, so the scale lands at a random point
         of the sweep cycle) and as shipped (its watch of Helm-managed objects wakes the sweep on
         an edit), --watch both|off|default. Between runs the Deployment is scaled back and a
         manual sync of the add-on reports it Synced again.

    .venv/bin/python bench/addon_state.py [--only list,memory,latency,sweep,scale] [--runs 3]
        [--addons 1000] [--requests 200] [--clusters 50] [--per-cluster 100] [--settle 5]
        [--changes 50] [--small-addons 10] [--default-runs 3] [--short-runs 5] [--short-interval 5]
        [--skip-default-interval] [--watch both]

All parts take ~9 min on 2 cores (scale ~5 min, memory ~2.5 min); --only runs some of them.
Prints one JSON object (progress goes to stderr), with the load average before and after each part,
and which moorage it measured: to measure a commit while others edit the checkout, export it
(`git archive HEAD src | tar -x -C /tmp/snap`) and run with PYTHONPATH=/tmp/snap/src."""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import nats
from nats.aio.client import Client

from moorage.agent.state import StateTracker
from moorage.agent.transport import client_context
from moorage.spec import protocol
from moorage.spec.protocol import AddonObservation, HeartbeatMessage, StateReport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `bench` importable
from bench.control_plane import children, free_port, rss_mib, wait_ok

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "tests" / "charts" / "webapp"
MOORAGE = [sys.executable, "-m", "moorage.cli.main"]
PARTS = ("list", "memory", "latency", "sweep", "scale")
T = TypeVar("T")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
    """The 1, 5 and 15 min load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    """The q-quantile by rank (p99 of 200 samples is the 198th smallest; of 50, the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(values_ms: list[float]) -> dict[str, Any]:
    return {
        "n": len(values_ms),
        "p50_ms": round(statistics.median(values_ms), 1),
        "p99_ms": round(pct(values_ms, 0.99), 1),
        "min_ms": round(min(values_ms), 1),
        "max_ms": round(max(values_ms), 1),
    }


# --------------------------------------------------------------------------- processes


class Server:
    """`moorage server` with SQLite and its embedded NATS in a data dir of its own."""

    def __init__(self, work: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.data = work / name
        self.data.mkdir(parents=True)
        self.token = "mrg_" + secrets.token_urlsafe(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.nats_pids: list[int] = []
        self.api = httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {self.token}"}, timeout=120
        )

    def __enter__(self) -> "Server":
        log = (self.data / "server.log").open("ab")
        argv = [*MOORAGE, "server", "--port", str(self.port), "--data-dir", str(self.data / "server")]
        env = {**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": self.token, **self.env}
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        try:
            wait_ok(f"{self.url}/healthz")
            self.nats_pids = self.nats()
        except SystemExit:
            self.stop()
            tail = (self.data / "server.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"moorage server did not come up; the end of its log:\n{tail}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def nats(self) -> list[int]:
        assert self.proc is not None
        found = []
        for pid in children(self.proc.pid):
            with contextlib.suppress(OSError):
                if "nats-server" in Path(f"/proc/{pid}/cmdline").read_text():
                    found.append(pid)
        return found

    def stop(self) -> None:
        self.api.close()
        if self.proc is not None and self.proc.poll() is None:
            self.nats_pids = self.nats() or self.nats_pids
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in self.nats_pids:  # the server stops its nats-server; make sure of it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def register(self, name: str) -> str:
        token: str = self.api.post("/clusters", json={"name": name}).raise_for_status().json()["agent_token"]
        return token

    def rss(self) -> dict[str, float | None]:
        assert self.proc is not None
        nats_pids = self.nats()
        return {"server": rss_mib(self.proc.pid), "nats_server": rss_mib(nats_pids[0]) if nats_pids else None}

    def db_mib(self) -> float:
        files = (self.data / "server").glob("moorage.db*")
        return round(sum(f.stat().st_size for f in files) / 2**20, 1)

    def total(self, cluster: str) -> int:
        body = self.api.get(f"/clusters/{cluster}/addons", params={"page_size": 1}).raise_for_status().json()
        total: int = body["total"]
        return total

    def wait_total(self, cluster: str, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.total(cluster) != count:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"cluster {cluster} never showed {count} add-ons (has {self.total(cluster)})"
                )
            time.sleep(0.1)


class Loop:
    """An asyncio loop in a thread, for the NATS client, so the rest (httpx, Playwright) stays sync."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-loop", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> "Future[T]":
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class AgentFeed:
    """What `moorage agent` sends, without a cluster: POST /api/v1/agent/register with the agent
    token, NATS as the agent's user (its token the password, its own inbox prefix), StateReports from
    a StateTracker published with JetStream on state_subject, and a heartbeat every 15 s."""

    def __init__(self, loop: Loop, server_url: str, agent_token: str) -> None:
        reg = (
            httpx.post(
                f"{server_url}/api/v1/agent/register",
                headers={"Authorization": f"Bearer {agent_token}"},
                timeout=30,
            )
            .raise_for_status()
            .json()
        )
        self.loop = loop
        self.cluster_id: str = reg["cluster_id"]
        self.subject = protocol.state_subject(self.cluster_id)
        self.tracker = StateTracker(self.cluster_id)
        self.nc: Client = loop.run(
            nats.connect(
                reg["nats_url"],
                user=reg["nats_user"],
                password=agent_token,
                inbox_prefix=reg["inbox_prefix"].encode(),
                name=f"bench-agent-{reg['cluster_name']}",
                error_cb=self._error,
                # as the agent connects: TLS first, trusting only the CA the server handed out
                tls=client_context(ca_pem=reg["nats_ca"]) if reg["nats_url"].startswith("tls://") else None,
                tls_handshake_first=reg["nats_url"].startswith("tls://"),
            )
        )
        self._beats = loop.submit(self._heartbeats())

    errors: ClassVar[dict[str, int]] = {}  # NATS client errors of every feed, by type (not printed)

    @classmethod
    async def _error(cls, e: Exception) -> None:
        cls.errors[type(e).__name__] = cls.errors.get(type(e).__name__, 0) + 1

    async def _heartbeats(self) -> None:
        while True:
            beat = HeartbeatMessage(cluster_id=self.cluster_id, agent_version="bench")
            with contextlib.suppress(Exception):
                await self.nc.publish(protocol.heartbeat_subject(self.cluster_id), protocol.encode(beat))
            await asyncio.sleep(15)

    async def _publish(self, reports: list[StateReport]) -> None:
        js = self.nc.jetstream()
        for report in reports:
            await js.publish(self.subject, protocol.encode(report))
        self.tracker.sent(reports)

    def reports(self, observations: list[AddonObservation]) -> list[StateReport]:
        """The messages a sweep with these observations sends (nothing is published yet)."""
        return self.tracker.reports(observations, complete=True)

    def send(self, reports: list[StateReport]) -> "Future[None]":
        """Publish (in the NATS thread); the future ends when JetStream acked every message and the
        tracker knows they were sent (wait for it before the next `reports`)."""
        return self.loop.submit(self._publish(reports))

    def sweep(self, observations: list[AddonObservation]) -> int:
        """Report these observations as a sweep does; the number of messages published."""
        reports = self.reports(observations)
        self.send(reports).result(60)
        return len(reports)

    def close(self) -> None:
        self._beats.cancel()
        with contextlib.suppress(Exception):
            self.loop.run(self.nc.drain(), timeout=10)


def observation(i: int, health: str = "Healthy") -> AddonObservation:
    """Add-on number i, deployed; every tenth has a small drift (two fields, self-heal off)."""
    name = f"addon-{i:04}"
    drift: list[dict[str, Any]] = []
    if i % 10 == 0:
        drift = [
            {
                "kind": "Deployment",
                "name": name,
                "drift_type": "modified",
                "changes": [
                    {"path": "spec.replicas", "want": 2, "live": 3},
                    {
                        "path": "spec.template.spec.containers[0].image",
                        "want": "nginx:1.27",
                        "live": "nginx:1.28",
                    },
                ],
            }
        ]
    return AddonObservation(
        name=name,
        namespace=f"apps-{i // 100:02}",
        chart="webapp",
        version="1.0.0",
        registry_url="http://charts.example/",
        installed=True,
        release_chart="webapp",
        release_version="1.0.0",
        revision=1,
        helm_status="deployed",
        health=health,
        health_reason="" if health == "Healthy" else "Deployment addon: 0 of 2 replicas available",
        drift=drift,
        self_heal=not drift,
        defined_at=f"clusters/bench/import-cluster.yaml:{10 + i * 7}",
    )


def fleet(count: int) -> list[AddonObservation]:
    return [observation(i) for i in range(count)]


@contextlib.contextmanager
def fed_cluster(server: Server, loop: Loop, name: str, count: int) -> Iterator[AgentFeed]:
    """A registered cluster whose stand-in agent reported `count` add-ons (a full snapshot)."""
    feed = AgentFeed(loop, server.url, server.register(name))
    try:
        messages = feed.sweep(fleet(count))
        server.wait_total(name, count)
        say(f"cluster {name}: {count} add-ons in {messages} snapshot part(s)")
        yield feed
    finally:
        feed.close()


# --------------------------------------------------------------------------- parts


def part_list(server: Server, cluster: str, requests: int, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, params in (("default_page_100", {}), ("page_size_1000", {"page_size": 1000})):
        rounds = []
        size = 0
        for _ in range(runs):
            for _ in range(5):  # warm-up
                server.api.get(f"/clusters/{cluster}/addons", params=params).raise_for_status()
            took = []
            for _ in range(requests):
                started = time.perf_counter()
                r = server.api.get(f"/clusters/{cluster}/addons", params=params).raise_for_status()
                took.append((time.perf_counter() - started) * 1000)
                size = len(r.content)
            rounds.append(summary(took))
        out[label] = {
            "rows": len(server.api.get(f"/clusters/{cluster}/addons", params=params).json()["result"]),
            "response_bytes": size,
            "rounds": rounds,
            "p50_ms_median": round(statistics.median(r["p50_ms"] for r in rounds), 1),
            "p99_ms_median": round(statistics.median(r["p99_ms"] for r in rounds), 1),
        }
        say(f"list {label}: {out[label]['p50_ms_median']} / {out[label]['p99_ms_median']} ms")
    return out


def sample_rss(server: Server, samples: int = 5) -> dict[str, float | None]:
    taken = []
    for _ in range(samples):
        taken.append(server.rss())
        time.sleep(1)
    nats_values = [t["nats_server"] for t in taken if t["nats_server"] is not None]
    return {
        "server": statistics.median(t["server"] or 0.0 for t in taken),
        "nats_server": statistics.median(nats_values) if nats_values else None,
    }


def part_memory(work: Path, clusters: int, per_cluster: int, runs: int, settle: float) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    for run in range(runs):
        loop = Loop()
        feeds: list[AgentFeed] = []
        try:
            with Server(work, f"memory-{run}") as server:
                names = [f"c{i:03}" for i in range(clusters)]
                tokens = [server.register(name) for name in names]
                connect_s = []
                for token in tokens:
                    started = time.perf_counter()
                    feeds.append(AgentFeed(loop, server.url, token))
                    connect_s.append(time.perf_counter() - started)
                time.sleep(settle)
                idle = sample_rss(server)
                for feed in feeds:
                    feed.sweep(fleet(per_cluster))
                for name in names:
                    server.wait_total(name, per_cluster)
                time.sleep(settle)
                with_state = sample_rss(server)
                for name in names:
                    server.api.get(f"/clusters/{name}/addons").raise_for_status()
                after_reads = sample_rss(server)
                # one more cluster while the others' agents are connected: registering rewrites the
                # NATS users and reloads nats-server (which checks every connected client again)
                AgentFeed.errors.clear()
                started = time.perf_counter()
                token = server.register("one-more")
                registered = time.perf_counter()
                feeds.append(AgentFeed(loop, server.url, token))
                connected = time.perf_counter()
                rounds.append(
                    {
                        "idle_rss_mib": idle,
                        "with_state_rss_mib": with_state,
                        "after_one_list_per_cluster_rss_mib": after_reads,
                        "db_mib": server.db_mib(),
                        "agent_connect_s_median": round(statistics.median(connect_s), 2),
                        f"with_{clusters}_agents_connected": {
                            "register_s": round(registered - started, 2),
                            "agent_connect_s": round(connected - registered, 2),
                            "nats_client_errors_while_connecting": dict(AgentFeed.errors),
                        },
                    }
                )
                say(f"memory run {run}: {rounds[-1]}")
        finally:
            for feed in feeds:
                feed.close()
            loop.close()

    def med(key: str, proc: str) -> float:
        return round(statistics.median(r[key][proc] or 0.0 for r in rounds), 1)

    medians = {
        k: {p: med(k, p) for p in ("server", "nats_server")} for k in rounds[0] if k.endswith("_rss_mib")
    }
    return {
        "clusters": clusters,
        "addons_per_cluster": per_cluster,
        "runs": rounds,
        "medians": medians,
        "state_cost_mib": {
            p: round(medians["with_state_rss_mib"][p] - medians["idle_rss_mib"][p], 1)
            for p in ("server", "nats_server")
        },
    }


class EventReader:
    """GET /api/v1/events?cluster=c read in a thread; each `addon` event with when its line arrived."""

    def __init__(self, server: Server, cluster: str) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._url = f"{server.url}/api/v1/events"
        self._params = {"cluster": cluster}
        self._headers = {"Authorization": f"Bearer {server.token}"}
        self.thread = threading.Thread(target=self._read, name="sse", daemon=True)
        self.thread.start()
        if not self.connected.wait(30):
            raise SystemExit("the event stream did not connect")

    def _read(self) -> None:
        with (
            contextlib.suppress(httpx.HTTPError),
            self.client.stream("GET", self._url, params=self._params, headers=self._headers) as response,
        ):
            for line in response.iter_lines():
                now = time.perf_counter()
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    with self.cond:
                        self.events.append((now, event))
                        self.cond.notify_all()

    def wait(self, match: Callable[[dict[str, Any]], bool], after: int, timeout: float = 30) -> float:
        """perf_counter of the first matching event at index `after` or later."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, event in self.events[after:]:
                    if match(event):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit("no matching event on the stream")
                self.cond.wait(left)

    def close(self) -> None:
        self.client.close()
        self.thread.join(5)


def part_latency(server: Server, cluster: str, feed: AgentFeed, addons: int, changes: int) -> dict[str, Any]:
    target = addons // 2 + 1  # an add-on without drift: Synced <-> Degraded
    current = fleet(addons)
    name = current[target].name

    def flip(k: int) -> tuple[list[StateReport], str]:
        health = "Degraded" if k % 2 == 0 else "Healthy"
        current[target] = observation(target, health=health)
        reports = feed.reports(current)
        assert len(reports) == 1
        assert [o.name for o in reports[0].addons] == [name]
        return reports, "Degraded" if health == "Degraded" else "Synced"

    polled: list[float] = []
    for k in range(changes):
        reports, want = flip(k)
        started = time.perf_counter()
        sent = feed.send(reports)
        while server.api.get(f"/clusters/{cluster}/addons/{name}").json()["state"] != want:
            if time.perf_counter() - started > 30:
                raise SystemExit(f"{name} never became {want}")
            time.sleep(0.005)
        polled.append((time.perf_counter() - started) * 1000)
        sent.result(30)
        time.sleep(0.05)
    say(f"latency polled: {summary(polled)}")

    reader = EventReader(server, cluster)
    streamed: list[float] = []
    try:
        for k in range(changes, 2 * changes):
            reports, want = flip(k)
            seen = len(reader.events)
            started = time.perf_counter()
            feed.send(reports).result(30)
            at = reader.wait(lambda e, w=want: e.get("addon") == name and e.get("state") == w, seen)  # type: ignore[misc]
            streamed.append((at - started) * 1000)
            time.sleep(0.05)
    finally:
        reader.close()
    say(f"latency sse: {summary(streamed)}")
    return {
        "cluster_addons": addons,
        "addon": name,
        "get_addon_polled_every_5ms": summary(polled),
        "sse_events_stream": summary(streamed),
    }


def part_sweep(count: int = 100) -> dict[str, Any]:
    tracker = StateTracker("bench")
    observations = fleet(count)

    def sweep(obs: list[AddonObservation]) -> list[StateReport]:
        reports = tracker.reports(obs, complete=True)
        tracker.sent(reports)
        return reports

    first = sweep(observations)
    second = sweep(fleet(count))
    observations[7] = observation(7, health="Degraded")
    third = sweep(observations)
    took = []
    for _ in range(20):
        started = time.perf_counter()
        tracker.reports(observations, complete=True)
        took.append((time.perf_counter() - started) * 1000)
    return {
        "addons": count,
        "first_sweep": {
            "messages": len(first),
            "snapshot_parts": first[0].parts if first else 0,
            "addons_sent": sum(len(r.addons) for r in first),
            "bytes": sum(len(protocol.encode(r)) for r in first),
        },
        "same_sweep_again": {"messages": len(second), "addons_sent": sum(len(r.addons) for r in second)},
        "one_addon_changed": {
            "messages": len(third),
            "addons_sent": sum(len(r.addons) for r in third),
            "bytes": sum(len(protocol.encode(r)) for r in third),
        },
        "no_change_sweep_compare_ms_median_of_20": round(statistics.median(took), 2),
    }


SCALE_DEFINITION = """\
apiVersion: v1
kind: ImportCluster
metadata: {{name: scale}}
spec:
  helm_registries:
    - {{name: repo, url: "{repo}"}}
  stacks:
    - name: apps
      addons:
        - name: web
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: repo
          namespace: bench-scale
          configuration: {{values: {{replicaCount: 2}}}}
          settings:
            sync_policy: {{self_heal: false}}
"""


class Agent:
    """A real `moorage agent` process."""

    def __init__(
        self, work: Path, server: Server, token: str, kubeconfig: Path, args: tuple[str, ...], watch: bool
    ) -> None:
        self.health = free_port()
        log = (work / "agent.log").open("ab")
        argv = [*MOORAGE, "agent", "--server", server.url, "--kubeconfig", str(kubeconfig)]
        argv += ["--health-port", str(self.health), *args]
        env = {k: v for k, v in os.environ.items() if k != "MOORAGE_AGENT_WATCH"}
        env["MOORAGE_AGENT_TOKEN"] = token
        if not watch:
            env["MOORAGE_AGENT_WATCH"] = "0"  # sweeps only: no watch wakes the sweep on an edit
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        try:
            wait_ok(f"http://127.0.0.1:{self.health}/readyz")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_addon(
    server: Server, cluster: str, addon: str, state: str, timeout: float = 180, every: float = 0.2
) -> float:
    """Seconds until GET …/addons/{addon} shows `state`."""
    started = time.perf_counter()
    while True:
        r = server.api.get(f"/clusters/{cluster}/addons/{addon}")
        if r.status_code == 200 and r.json()["state"] == state:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"{addon} never became {state}: {r.text[:500]}")
        time.sleep(every)


def scale_runs(
    server: Server, kubectl: list[str], interval: float, runs: int, rng: random.Random | None
) -> dict[str, Any]:
    """With `rng`, each run first waits a random part of the interval (sweeps only: the time to
    the next sweep is then uniform); without, 2 s (the watch wakes the sweep on the edit)."""
    took, waited, kubectl_s = [], [], []
    for _ in range(runs):
        delay = rng.uniform(0, interval) if rng else 2.0
        time.sleep(delay)
        started = time.perf_counter()
        subprocess.run(
            [*kubectl, "scale", "deployment/web", "--replicas", "3"], check=True, capture_output=True
        )
        scaled = time.perf_counter()
        wait_addon(server, "scale", "web", "OutOfSync", timeout=interval * 2 + 60, every=0.05)
        took.append(time.perf_counter() - scaled)
        waited.append(round(delay, 1))
        kubectl_s.append(round(scaled - started, 2))
        say(
            f"sweep interval {interval}, watch {'off' if rng else 'default'}: OutOfSync {took[-1]:.2f} s "
            f"after the scale (waited {delay:.1f} s)"
        )
        subprocess.run(
            [*kubectl, "scale", "deployment/web", "--replicas", "2"], check=True, capture_output=True
        )
        time.sleep(1)  # kwok removes the extra pod
        server.api.post("/clusters/scale/addons/web/sync", params={"wait": 120}).raise_for_status()
        wait_addon(server, "scale", "web", "Synced", timeout=interval + 120)
    return {
        "sweep_interval_s": interval,
        "runs": runs,
        "scale_to_out_of_sync_s": [round(t, 2) for t in took],
        "median_s": round(statistics.median(took), 2),
        "max_s": round(max(took), 2),
        "random_wait_before_scale_s": waited,
        "kubectl_scale_s": kubectl_s,
    }


def part_scale(
    work: Path, default_runs: int, short_runs: int, short_interval: float, skip_default: bool, watch: str
) -> dict[str, Any]:
    from moorage import devcluster
    from moorage.devcluster import chartsources

    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    rng = random.Random(10)  # noqa: S311 (when to scale, not cryptography)
    out: dict[str, Any] = {}
    cluster = devcluster.up("state-bench", nodes=1)
    agent: Agent | None = None
    try:
        chartsources.package_charts([CHART], work / "charts", work / "helm")
        with chartsources.serve_chart_repo(work / "charts") as charts, Server(work, "scale") as server:
            chartsources.index_repo(work / "charts", charts.url, work / "helm")
            token = server.register("scale")
            kubectl = [str(Path(sys.executable).parent / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
            kubectl += ["-n", "bench-scale"]
            plans: list[tuple[bool, float, int, tuple[str, ...]]] = []
            for watching in {"off": [False], "default": [True], "both": [False, True]}[watch]:
                if not skip_default:
                    plans.append((watching, 60.0, default_runs, ()))
                short = ("--sweep-interval", str(short_interval))
                plans.append((watching, short_interval, short_runs, short))
            for watching, interval, runs, flags in plans:
                agent = Agent(work, server, token, cluster.kubeconfig, flags, watching)
                # the first apply installs; after a restart it gives the agent its definition at
                # once (the server's own `define` for a restarted agent comes at most once a minute)
                apply(server, "scale", SCALE_DEFINITION.format(repo=charts.url))
                wait_addon(server, "scale", "web", "Synced")
                key = f"sweep_interval_{interval:g}s_watch_{'default' if watching else 'off'}"
                out[key] = scale_runs(server, kubectl, interval, runs, None if watching else rng)
                agent.stop()
                agent = None
    finally:
        if agent is not None:
            agent.stop()
        devcluster.down(cluster.name)
    return out


def apply(server: Server, cluster: str, definition: str, timeout: float = 240) -> None:
    """POST /clusters/{c}/apply of a one-file definition; returns once its operation succeeded."""
    files = {"import-cluster.yaml": definition}
    op = server.api.post(f"/clusters/{cluster}/apply", json={"files": files}).raise_for_status().json()
    deadline = time.monotonic() + timeout
    while (done := server.api.get(f"/operations/{op['id']}").json())["state"] in ("pending", "running"):
        if time.monotonic() > deadline:
            raise SystemExit("the apply did not finish")
        time.sleep(0.3)
    if done["state"] != "success":
        raise SystemExit(f"the apply ended {done['state']}: {json.dumps(done)[:2000]}")


# --------------------------------------------------------------------------- main


def source() -> dict[str, Any]:
    """Which moorage was measured: the package's directory, and this checkout's commit and whether
    its src/ had uncommitted changes (others may edit it while a benchmark runs)."""
    import moorage

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True).stdout.strip()

    return {
        "package": str(Path(moorage.__file__).parent),
        "checkout_head": git("rev-parse", "--short", "HEAD"),
        "checkout_src_modified": bool(git("status", "--porcelain", "--", "src")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument("--runs", type=int, default=3, help="rounds of `list`, servers of `memory`")
    parser.add_argument("--addons", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--per-cluster", type=int, default=100)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before a memory sample")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument(
        "--small-addons", type=int, default=10, help="latency also on a cluster this small (0: not)"
    )
    parser.add_argument("--default-runs", type=int, default=3)
    parser.add_argument("--short-runs", type=int, default=5)
    parser.add_argument("--short-interval", type=float, default=5.0)
    parser.add_argument("--skip-default-interval", action="store_true")
    parser.add_argument(
        "--watch",
        choices=("both", "off", "default"),
        default="both",
        help="scale: the agent with MOORAGE_AGENT_WATCH=0 (sweeps only), as shipped, or both",
    )
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` stops what it started

    work = Path(tempfile.mkdtemp(prefix="moorage-bench-state-"))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "moorage": source(), "work": str(work)}

    def timed(part: str, run: Callable[[], dict[str, Any]]) -> None:
        before, started = load(), time.monotonic()
        say(f"{part}: load average {before}")
        results[part] = run()
        results[part]["load_average_before_after"] = [before, load()]
        results[part]["seconds"] = round(time.monotonic() - started, 1)

    if "sweep" in parts:
        timed("sweep", part_sweep)
    if "list" in parts or "latency" in parts:
        loop = Loop()
        try:
            with Server(work, "list") as server, fed_cluster(server, loop, "big", args.addons) as feed:
                if "list" in parts:
                    timed("list", lambda: part_list(server, "big", args.requests, args.runs))
                if "latency" in parts:
                    timed("latency", lambda: part_latency(server, "big", feed, args.addons, args.changes))
                if "latency" in parts and args.small_addons:
                    with fed_cluster(server, loop, "small", args.small_addons) as small:
                        timed(
                            "latency_small_cluster",
                            lambda: part_latency(server, "small", small, args.small_addons, args.changes),
                        )
        finally:
            loop.close()
    if "memory" in parts:
        timed("memory", lambda: part_memory(work, args.clusters, args.per_cluster, args.runs, args.settle))
    if "scale" in parts:
        timed(
            "scale",
            lambda: part_scale(
                work,
                args.default_runs,
                args.short_runs,
                args.short_interval,
                args.skip_default_interval,
                args.watch,
            ),
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
