"""An agent killed in the middle of a write job: after it restarts, the job is delivered again and
completes; what was already applied is not applied again, and the history is intact."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from tests.integration.conftest import Helm
from tests.integration.control_plane_support import (
    Agents,
    Server,
    chain,
    free_port,
    register,
    wait_operation,
    wait_state,
)


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose agents' jobs come back 3 s after their agent stops acknowledging them."""
    previous = os.environ.get("MOORAGE_AGENT_ACK_WAIT_SECONDS")
    os.environ["MOORAGE_AGENT_ACK_WAIT_SECONDS"] = "3"
    os.environ["MOORAGE_AGENT_IN_PROGRESS_SECONDS"] = "1"
    port = free_port()
    srv = Server(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("quick-server"), port)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        os.environ.pop("MOORAGE_AGENT_IN_PROGRESS_SECONDS", None)
        if previous is None:
            os.environ.pop("MOORAGE_AGENT_ACK_WAIT_SECONDS", None)
        else:
            os.environ["MOORAGE_AGENT_ACK_WAIT_SECONDS"] = previous


def test_agent_killed_mid_job_finishes_it_after_restart(
    quick_server: Server,
    agents: Agents,
    cluster: DevCluster,
    helm: Helm,
    chart_repo: ChartRepo,
    tmp_path: Path,
) -> None:
    token = register(quick_server, "crash")
    first = agents.start(quick_server, token, cluster.kubeconfig)
    wait_state(quick_server, "crash", "online")
    body = {"files": {"import-cluster.yaml": chain(chart_repo.url, 5)}, "root": "import-cluster.yaml"}
    operation = quick_server.api("POST", "/clusters/crash/apply", json=body).json()["id"]

    helm.wait_for_release("crash", "link-1")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    done_before = set(helm.releases("crash"))
    assert len(done_before) < 5, "the job finished before the agent was killed"

    agents.start(quick_server, token, cluster.kubeconfig)
    op = wait_operation(quick_server, operation)
    assert op["state"] == "success", op
    releases = helm.releases("crash")
    assert {f"link-{i}" for i in range(5)} == set(releases)
    assert all(r["status"] == "deployed" for r in releases.values())
    # the releases finished before the crash were not upgraded again on redelivery
    assert all(
        releases[name]["revision"] == "1" for name in done_before if releases[name]["status"] == "deployed"
    )
    (job,) = op["jobs"]
    assert any(": unchanged: " in m for m in job["messages"]), job["messages"]
    history = quick_server.api("GET", "/clusters/crash/operations").json()["result"]
    assert [o["id"] for o in history] == [operation]


def nats_server_of(server: Server) -> int:
    assert server.proc is not None
    out = subprocess.run(
        ["ps", "-o", "pid=,comm=", "--ppid", str(server.proc.pid)], capture_output=True, text=True
    )
    pids = [int(line.split()[0]) for line in out.stdout.splitlines() if "nats-server" in line]
    assert pids, out.stdout
    return pids[0]


def test_nats_killed_during_a_job_loses_nothing(
    quick_server: Server, agents: Agents, cluster: DevCluster, helm: Helm, chart_repo: ChartRepo
) -> None:
    token = register(quick_server, "natskill")
    agents.start(quick_server, token, cluster.kubeconfig)
    wait_state(quick_server, "natskill", "online")
    definition = chain(chart_repo.url, 4).replace("crash", "natskill")
    body = {"files": {"import-cluster.yaml": definition}, "root": "import-cluster.yaml"}
    operation = quick_server.api("POST", "/clusters/natskill/apply", json=body).json()["id"]
    helm.wait_for_release("natskill", "link-0")
    os.kill(nats_server_of(quick_server), signal.SIGKILL)

    op = wait_operation(quick_server, operation)
    assert op["state"] == "success", op
    assert {f"link-{i}" for i in range(4)} == set(helm.releases("natskill"))
    # heartbeats flow again over the restarted NATS
    first = quick_server.api("GET", "/clusters/natskill").json()["last_heartbeat_at"]
    deadline = time.monotonic() + 40  # the agent beats every 15 s
    while time.monotonic() < deadline:
        if quick_server.api("GET", "/clusters/natskill").json()["last_heartbeat_at"] != first:
            break
        time.sleep(1)
    else:
        raise AssertionError("no heartbeat arrived after NATS came back")


def test_cancel_stops_a_running_job(
    quick_server: Server, agents: Agents, cluster: DevCluster, helm: Helm, chart_repo: ChartRepo
) -> None:
    token = register(quick_server, "cancel")
    agents.start(quick_server, token, cluster.kubeconfig)
    wait_state(quick_server, "cancel", "online")
    definition = chain(chart_repo.url, 6).replace("crash", "cancelled")
    body = {"files": {"import-cluster.yaml": definition}, "root": "import-cluster.yaml"}
    operation = quick_server.api("POST", "/clusters/cancel/apply", json=body).json()["id"]
    helm.wait_for_release("cancelled", "link-0")
    cancelling = quick_server.api("POST", f"/operations/{operation}/cancel").json()
    assert cancelling["jobs"][0]["state"] in ("cancelling", "cancelled")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        op = quick_server.api("GET", f"/operations/{operation}").json()
        if op["jobs"][0]["state"] == "cancelled":
            break
        time.sleep(0.3)
    assert op["jobs"][0]["state"] == "cancelled", op
    assert op["state"] == "cancelled"
    installed = len(helm.releases("cancelled"))
    time.sleep(3)
    assert len(helm.releases("cancelled")) == installed < 6  # nothing more happens after the cancel
