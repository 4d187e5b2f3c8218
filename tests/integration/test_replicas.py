"""Two `moorage server` replicas on one PostgreSQL and one nats-server (external, started here), a
Git server, an agent and the devcluster (issue 19): pushes in a burst sent to both replicas are
synced without overlap and nothing is applied twice; `kill -9` of the replica running a sync and
the other takes it over; an event caused through one replica reaches an SSE subscriber of the
other; a second server on one SQLite file is refused."""

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.devcluster.gitserver import GitServer
from tests import postgres
from tests.ha_support import Replicas
from tests.integration.control_plane_support import ADMIN, Agents, Server, free_port, register, wait_state
from tests.integration.gitops_support import (
    GIT_TOKEN,
    GIT_USER,
    definition_files,
    history,
    push_webhook,
    wait_status,
    wait_synced,
    work_tree,
)
from tests.nats_support import Nats, running_nats

REPO = "org/fleet.git"

pytestmark = pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres.running_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    with running_nats(tmp_path_factory.mktemp("nats")) as started:
        yield started


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    server = GitServer(tmp_path_factory.mktemp("git"), username=GIT_USER, password=GIT_TOKEN)
    server.start()
    server.create_repo(REPO)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, pg_url: str, nats_server: Nats) -> Iterator[Replicas]:
    started = Replicas(tmp_path_factory.mktemp("replicas"), pg_url, nats_server.url)
    try:
        started.start_together()
        a = started.servers[0]
        credential = a.api(
            "POST",
            "/credentials",
            json={
                "name": "git-bot",
                "kind": "token",
                "username": GIT_USER,
                "secret": GIT_TOKEN,
                "hosts": ["127.0.0.1"],
            },
        )
        assert credential.status_code == 201, credential.text
        yield started
    finally:
        started.stop()


def _connect(
    replicas: Replicas,
    agents: Agents,
    cluster: DevCluster,
    git: GitServer,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
    name: str,
) -> tuple[Any, str, str]:
    """The cluster registered through A, its agent through B, connected to Git through B; returns
    the work tree, the webhook secret and the agent's token."""
    a, b = replicas.servers
    token = register(a, name)
    agents.start(b, token, cluster.kubeconfig)  # registers through B; its results go to either
    wait_state(a, name, "online")
    tree = work_tree(git, REPO, tmp_path / "work")
    first = tree.commit_and_push(definition_files(name, namespace, chart_repo.url), f"{name}: first")
    response = b.api(
        "PUT",
        f"/clusters/{name}/gitops",
        json={
            "url": git.repo_url(REPO),
            "branch": "main",
            "credential_name": "git-bot",
            "poll_interval_seconds": 3600,
        },
    )
    assert response.status_code == 200, response.text
    wait_synced(a, name, first)
    return tree, response.json()["webhook_secret"], token


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_two_replicas_start_together_and_migrate_once(replicas: Replicas) -> None:
    engine = create_engine(replicas.database_url)
    try:
        with engine.connect() as c:
            assert c.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        engine.dispose()
    for server in replicas.servers:
        assert server.api("GET", "/clusters").status_code == 200
        log = (server.data_dir / "server.log").read_text()
        assert "Traceback" not in log, log[-3000:]


def test_a_burst_of_pushes_to_both_replicas_syncs_without_overlap_and_applies_each_commit_once(
    replicas: Replicas,
    agents: Agents,
    cluster: DevCluster,
    git: GitServer,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    a, b = replicas.servers
    tree, secret, _ = _connect(replicas, agents, cluster, git, chart_repo, namespace, tmp_path, "ha-burst")
    shas = []
    started = time.monotonic()
    for n in range(20):
        sha = tree.commit_and_push(
            definition_files("ha-burst", namespace, chart_repo.url, replicas=2 + n % 4), f"burst {n}"
        )
        shas.append(sha)
        accepted = push_webhook((a, b)[n % 2], "org/fleet", sha, secret)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["enqueued"] == ["ha-burst"]
    wait_synced(a, "ha-burst", shas[-1], timeout=300)
    took = time.monotonic() - started
    time.sleep(2)  # a request still queued would start now
    final = wait_synced(b, "ha-burst", shas[-1])
    assert final["sync_status"] == "synced"

    rows = history(a, "ha-burst", page_size=100, sort="started_at", order="asc")["result"]
    assert all(r["status"] == "success" for r in rows), json.dumps(rows, indent=1)[-3000:]
    # never two syncs of the cluster at once, whichever replica ran them
    for before, after in itertools.pairwise(rows):
        assert before["finished_at"] is not None
        assert _when(before["finished_at"]) <= _when(after["started_at"]), (before, after)
    # nothing applied twice: each commit has at most one sync that applied something
    applied = Counter(r["commit_sha"] for r in rows if r["message"].startswith("applied"))
    assert all(count == 1 for count in applied.values()), applied
    assert rows[-1]["commit_sha"] == shas[-1]
    assert set(applied) <= {*shas, rows[0]["commit_sha"]}
    ran_on = [
        s.data_dir.name
        for s in replicas.servers
        if "GitOps sync of ha-burst" in (s.data_dir / "server.log").read_text()
    ]
    print(
        f"20 pushes, webhooks alternating replicas: {len(rows) - 1} syncs, last commit synced {took:.1f} s "
        f"after the first push; syncs ran on replica(s) {ran_on}"
    )


def test_kill_9_of_the_replica_running_a_sync_and_the_other_takes_it_over(
    replicas: Replicas,
    agents: Agents,
    cluster: DevCluster,
    git: GitServer,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    tree, secret, token = _connect(replicas, agents, cluster, git, chart_repo, namespace, tmp_path, "ha-kill")
    a = replicas.servers[0]
    # the agent stops: the next sync waits in Applying for it, holding the cluster's lease
    (agent,) = agents.procs
    agent.terminate()
    agent.wait(40)
    sha = tree.commit_and_push(
        definition_files("ha-kill", namespace, chart_repo.url, replicas=3), "scale to 3"
    )
    assert push_webhook(a, "org/fleet", sha, secret).status_code == 202
    wait_status(a, "ha-kill", lambda s: s["sync_phase"] == "applying", what="applying")
    holder = replicas.lease_holder()
    survivor = next(s for s in replicas.servers if s is not holder)
    assert holder.proc is not None
    os.kill(holder.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    holder.proc.wait(10)
    try:
        # the survivor takes the cluster's lease and resumes the sync: it waits for the job queued
        assert replicas.lease_holder(timeout=60) is survivor
        takeover = time.monotonic() - killed_at
        agents.start(survivor, token, cluster.kubeconfig)
        synced_status = wait_synced(survivor, "ha-kill", sha, timeout=180)
        synced = time.monotonic() - killed_at
        assert synced_status["sync_status"] == "synced"
        rows = history(survivor, "ha-kill", page_size=10)["result"]
        mine = [r for r in rows if r["commit_sha"] == sha]
        assert [r["status"] for r in mine] == ["success"], json.dumps(mine, indent=1)  # one row
        assert "resumed after the server running it stopped" in mine[0]["message"]
        operation = survivor.api("GET", f"/operations/{mine[0]['operation_id']}").json()
        assert operation["state"] == "success", operation
        (job,) = operation["jobs"]
        # one job for the commit: the survivor waited for the one queued, sent nothing again
        sync_ops = survivor.api("GET", "/clusters/ha-kill/operations").json()["result"]
        assert [o["kind"] for o in sync_ops].count("gitops_sync") == 2, (
            sync_ops
        )  # the first commit's, this one
        assert job["state"] == "success"
        print(
            f"kill -9 of the replica running the sync: lease taken over {takeover:.1f} s after the kill, "
            f"synced {synced:.1f} s after it (agent restarted meanwhile)"
        )
    finally:
        holder.start()  # back for the next tests


def test_an_sse_subscriber_of_one_replica_sees_events_caused_through_the_other(
    replicas: Replicas,
    agents: Agents,
    cluster: DevCluster,
    git: GitServer,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    a, b = replicas.servers
    tree, _secret, _ = _connect(replicas, agents, cluster, git, chart_repo, namespace, tmp_path, "ha-sse")
    seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    ready = {name: threading.Event() for name in seen}
    stop = threading.Event()

    def listen(server: Server, name: str) -> None:
        with httpx.stream(
            "GET",
            f"{server.url}/api/v1/events",
            params={"cluster": "ha-sse"},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=httpx.Timeout(5, read=None),
        ) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    ready[name].set()
                if line.startswith("data: "):
                    seen[name].append(json.loads(line.removeprefix("data: ")))
                if stop.is_set():
                    return

    threads = [
        threading.Thread(target=listen, args=(s, n), daemon=True) for s, n in zip((a, b), seen, strict=True)
    ]
    for t in threads:
        t.start()
    assert all(e.wait(10) for e in ready.values())
    sha = tree.commit_and_push(
        definition_files("ha-sse", namespace, chart_repo.url, replicas=2), "scale to 2"
    )
    sync = a.api("POST", "/clusters/ha-sse/gitops/sync", params={"wait": 120})
    assert sync.status_code == 200, sync.text
    assert sync.json()["sync"]["commit_sha"] == sha
    deadline = time.monotonic() + 20

    def done(events: list[dict[str, Any]]) -> bool:
        return any(e.get("type") == "gitops" and e.get("status") == "synced" for e in events)

    while not (done(seen["a"]) and done(seen["b"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    assert done(seen["a"]), seen["a"]
    assert done(seen["b"]), seen["b"]
    # the replica that ran the sync published each event once; the other received them once
    phases = {n: [e.get("phase") for e in events if e.get("type") == "gitops"] for n, events in seen.items()}
    assert phases["a"] == phases["b"], phases


def test_postgresql_restarted_mid_sync_the_replicas_reconnect_and_the_sync_ends(
    replicas: Replicas,
    agents: Agents,
    cluster: DevCluster,
    git: GitServer,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    a, b = replicas.servers
    tree, secret, _ = _connect(replicas, agents, cluster, git, chart_repo, namespace, tmp_path, "ha-pg")
    sha = tree.commit_and_push(definition_files("ha-pg", namespace, chart_repo.url, replicas=4), "scale to 4")
    assert push_webhook(a, "org/fleet", sha, secret).status_code == 202
    wait_status(a, "ha-pg", lambda s: s["sync_status"] == "syncing" or s["last_commit_sha"] == sha)
    restarted = time.monotonic()
    postgres.restart(replicas.database_url, down_seconds=2)
    wait_synced(a, "ha-pg", sha, timeout=180)
    took = time.monotonic() - restarted
    wait_synced(b, "ha-pg", sha)
    rows = history(b, "ha-pg", page_size=20)["result"]
    applied = [r for r in rows if r["commit_sha"] == sha and r["message"].startswith("applied")]
    assert len(applied) == 1, json.dumps(rows, indent=1)[-3000:]
    assert all(s.proc is not None and s.proc.poll() is None for s in replicas.servers)
    # leases are taken anew: the next push syncs as before, through the other replica
    again = tree.commit_and_push(definition_files("ha-pg", namespace, chart_repo.url, replicas=5), "to 5")
    assert push_webhook(b, "org/fleet", again, secret).status_code == 202
    wait_synced(a, "ha-pg", again, timeout=120)
    print(f"PostgreSQL down 2 s mid-sync: synced {took:.1f} s after the restart began")


def test_a_second_server_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    port = free_port()
    first = Server(f"http://127.0.0.1:{port}", tmp_path, port)
    first.start()
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "moorage.cli.main",
                "server",
                "--port",
                str(free_port()),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": ADMIN},
        )
        assert second.returncode == 1, second.stderr[-2000:]
        assert first.proc is not None
        assert f"another moorage server (pid {first.proc.pid}) is using the SQLite database" in second.stderr
        assert "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.api("GET", "/clusters").status_code == 200  # the first one is untouched
    finally:
        first.stop()
