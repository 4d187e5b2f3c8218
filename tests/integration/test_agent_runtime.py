"""The agent's runtime on the devcluster, with a real server, NATS and kube-apiserver:
- write_worker_count: writes of two add-ons overlap in time, two writes of one add-on do not;
- leader election through a Lease: two agents of one cluster, one leads (sweeps, writes, heartbeats),
  both serve reads; kill -9 of the leader, the other takes over and the jobs queued meanwhile run;
  no write ran on the one that was not leading;
- public IP reporting: off makes no request at all; on, the cluster shows the address (a local
  HTTP server plays the lookup service)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import (
    ADMIN,
    Agents,
    Server,
    free_port,
    register,
    wait_operation,
    wait_state,
)

NODE_LABEL = "moorage.dev/runtime-writes"
LEASE_SECONDS = 6.0  # renewed every 0.8 s, given up after 4 s without a renewal

DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata: {{name: {name}}}
spec:
  helm_registries:
    - {{name: repo, url: "{url}"}}
  stacks:
    - name: apps
      addons:
{addons}
"""


def addon(name: str, namespace: str, *, slow: bool, greeting: str = "hello") -> str:
    """A webapp add-on; a slow one runs on nodes labelled NODE_LABEL=<namespace> and waits for its pods
    to be ready (for 5 s at most): once the label is gone, each of its writes lasts those 5 s."""
    values: dict[str, Any] = {"replicaCount": 1, "greeting": greeting}
    lines = [
        f"        - name: {name}",
        "          chart_name: webapp",
        '          chart_version: "1.0.0"',
        "          registry_name: repo",
        f"          namespace: {namespace}",
    ]
    if slow:
        values["nodeSelector"] = {NODE_LABEL: namespace}
        lines += [
            "          settings: {strict_health_check: true, retry_policy: {limit: 0}}",
            "          job_configuration: {create_job_timeout: 5, update_job_timeout: 5}",
        ]
    lines.append(f"          configuration: {{values: {json.dumps(values)}}}")
    return "\n".join(lines)


def bundle(name: str, url: str, *addons: str) -> dict[str, Any]:
    text = DEFINITION.format(name=name, url=url, addons="\n".join(addons))
    return {"files": {"import-cluster.yaml": text}, "root": "import-cluster.yaml"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Jobs of an agent that stops acknowledging them come back after 3 s (a killed leader's)."""
    port = free_port()
    srv = Server(
        f"http://127.0.0.1:{port}",
        tmp_path_factory.mktemp("runtime-server"),
        port,
        env={"MOORAGE_AGENT_ACK_WAIT_SECONDS": "3"},
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def quiet_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    """No sweeps between the writes the tests time (the watch would start one after every edit)."""
    monkeypatch.setenv("MOORAGE_AGENT_WATCH", "0")
    monkeypatch.setenv("MOORAGE_AGENT_IN_PROGRESS_SECONDS", "1")


def job_of(server: Server, operation: str) -> dict[str, Any]:
    op = wait_operation(server, operation, timeout=120)
    assert op["state"] not in ("pending", "running"), op
    (job,) = op["jobs"]
    assert job["started_at"], job
    assert job["finished_at"], job
    return dict(job)


def span(job: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["finished_at"])


def addon_sync(server: Server, cluster: str, name: str) -> str:
    response = server.api("POST", f"/clusters/{cluster}/addons/{name}/sync", params={"wait": 0})
    assert response.status_code == 200, response.text
    return str(response.json()["operation_id"])


def wait_known(server: Server, cluster: str, *names: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(server.api("GET", f"/clusters/{cluster}/addons/{n}").status_code == 200 for n in names):
            return
        time.sleep(0.3)
    raise AssertionError(f"add-ons {names} never reported")


def test_writes_of_two_addons_overlap_and_of_one_addon_do_not(
    server: Server,
    agents: Agents,
    quiet_agents: None,
    cluster: DevCluster,
    chart_repo: ChartRepo,
    kubectl: Kubectl,
    helm: Helm,
    namespace: str,
) -> None:
    name = "writes"
    token = register(server, name)
    agents.start(server, token, cluster.kubeconfig, "--write-workers", "2", "--sweep-interval", "3600")
    wait_state(server, name, "online")
    definition = bundle(
        name, chart_repo.url, addon("slow-a", namespace, slow=True), addon("slow-b", namespace, slow=True)
    )
    kubectl.run("label", "nodes", "--all", f"{NODE_LABEL}={namespace}", "--overwrite")
    try:
        applied = server.api("POST", f"/clusters/{name}/apply", params={"wait": 120}, json=definition)
        assert applied.json()["state"] == "success", applied.text
    finally:
        kubectl.run("label", "nodes", "--all", f"{NODE_LABEL}-")
    wait_known(server, name, "slow-a", "slow-b")
    # gone by hand: each add-on sync installs it again, and waits for pods no node takes now
    for release in ("slow-a", "slow-b"):
        helm.run("uninstall", release, "-n", namespace)

    # two add-ons: both run at once
    a, b = addon_sync(server, name, "slow-a"), addon_sync(server, name, "slow-b")
    (a_start, a_end), (b_start, b_end) = span(job_of(server, a)), span(job_of(server, b))
    assert (a_end - a_start).total_seconds() >= 3
    assert (b_end - b_start).total_seconds() >= 3
    overlap = (min(a_end, b_end) - max(a_start, b_start)).total_seconds()
    assert overlap > 2, ((a_start, a_end), (b_start, b_end))

    # one add-on twice: one after the other
    first, second = addon_sync(server, name, "slow-a"), addon_sync(server, name, "slow-a")
    spans = sorted([span(job_of(server, first)), span(job_of(server, second))])
    assert spans[0][1] <= spans[1][0], spans


# --------------------------------------------------------------------------- leader election


def metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def counted(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def holder(kubectl: Kubectl, namespace: str, lease: str) -> str:
    found = kubectl.run("get", "lease", lease, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return ""
    return str(json.loads(found.stdout)["spec"].get("holderIdentity") or "")


def wait_holder(kubectl: Kubectl, namespace: str, lease: str, pid: int, timeout: float) -> float:
    """Seconds until the Lease names the agent process `pid`."""
    mine = re.compile(rf"^{re.escape(socket.gethostname()[:200])}-{pid}-[0-9a-f]+$")
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if mine.match(holder(kubectl, namespace, lease)):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"agent {pid} never held the lease (holder: {holder(kubectl, namespace, lease)!r})")


def test_two_agents_elect_one_leader_and_the_other_takes_over_after_kill_9(
    server: Server,
    agents: Agents,
    quiet_agents: None,
    cluster: DevCluster,
    chart_repo: ChartRepo,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    name = "leader"
    token = register(server, name)
    cluster_id = server.api("GET", f"/clusters/{name}").json()["id"]
    lease = f"moorage-agent-{cluster_id}"
    ports = [free_port(), free_port()]
    args = ["--leader-election", "on", "--lease-namespace", namespace, "--lease-seconds", str(LEASE_SECONDS)]
    args += ["--heartbeat-interval", "1"]
    first = agents.start(server, token, cluster.kubeconfig, *args, "--health-port", str(ports[0]))
    wait_holder(kubectl, namespace, lease, first.pid, timeout=60)
    second = agents.start(server, token, cluster.kubeconfig, *args, "--health-port", str(ports[1]))
    wait_state(server, name, "online")
    deadline = time.monotonic() + 30
    while not _ready(ports[1]):  # the second agent is up and connected
        assert time.monotonic() < deadline, "the second agent never became ready"
        time.sleep(0.3)

    # writes go to the leader, whichever agent fetched them
    for greeting in ("one", "two", "three"):
        definition = bundle(name, chart_repo.url, addon("web", namespace, slow=False, greeting=greeting))
        applied = server.api("POST", f"/clusters/{name}/apply", params={"wait": 120}, json=definition)
        assert applied.json()["state"] == "success", applied.text
    assert holder(kubectl, namespace, lease).startswith(f"{socket.gethostname()[:200]}-{first.pid}-")
    # reads are served by any replica: the follower answers some of them
    for _ in range(40):
        assert server.api("GET", f"/clusters/{name}/kinds").status_code == 200
        if counted(metrics(ports[1]), "moorage_agent_jobs_total", kind="read"):
            break
    follower = metrics(ports[1])
    assert counted(follower, "moorage_agent_leader") == 0
    assert counted(metrics(ports[0]), "moorage_agent_leader") == 1
    assert counted(follower, "moorage_agent_jobs_total", kind="read") > 0
    assert counted(follower, "moorage_agent_jobs_total", kind="write") == 0, follower
    assert counted(metrics(ports[0]), "moorage_agent_jobs_total", kind="write") >= 3

    # kill -9 of the leader; a sync queued right after waits for the new leader, and is not lost
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed = time.monotonic()
    definition = bundle(name, chart_repo.url, addon("web", namespace, slow=False, greeting="four"))
    applied = server.api("POST", f"/clusters/{name}/apply", params={"wait": 0}, json=definition)
    operation = applied.json()["id"]
    wait_holder(kubectl, namespace, lease, second.pid, timeout=60)
    took = time.monotonic() - killed
    # the lease runs out LEASE_SECONDS after the last renewal the follower saw (at most one retry
    # period, 0.8 s, before the kill), plus one retry period until it tries again
    assert took <= LEASE_SECONDS + 2 * 0.8 + 1.0, took
    op = wait_operation(server, operation, timeout=120)
    assert op["state"] == "success", op
    new_leader = metrics(ports[1])
    assert counted(new_leader, "moorage_agent_leader") == 1
    assert counted(new_leader, "moorage_agent_jobs_total", kind="write") >= 1
    # what the old leader's replica did before: only reads, and it handed write jobs back
    assert counted(follower, "moorage_agent_jobs_total", kind="write") == 0
    configmap = kubectl.get("configmap", "-n", namespace, "-l", "app.kubernetes.io/instance=web")
    assert any("four" in json.dumps(item.get("data", {})) for item in configmap["items"]), configmap
    print(f"leader take-over after kill -9: {took:.1f} s (lease {LEASE_SECONDS} s)")

    # SIGTERM: the leader ends its jobs and gives the Lease up, a third agent leads at its next try
    third_port = free_port()
    third = agents.start(server, token, cluster.kubeconfig, *args, "--health-port", str(third_port))
    deadline = time.monotonic() + 30
    while not _ready(third_port):  # connected, its election running
        assert time.monotonic() < deadline, "the third agent never became ready"
        time.sleep(0.3)
    time.sleep(1)
    assert holder(kubectl, namespace, lease).startswith(f"{socket.gethostname()[:200]}-{second.pid}-")
    second.terminate()
    handed = wait_holder(kubectl, namespace, lease, third.pid, timeout=60)
    assert second.wait(40) == 0
    assert handed < LEASE_SECONDS - 2, handed  # far sooner than the lease would run out


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------- public IP


class Lookup(BaseHTTPRequestHandler):
    requests: list[str] = []  # noqa: RUF012 - shared by the test and the server thread

    def do_GET(self) -> None:
        Lookup.requests.append(self.path)
        body = b"203.0.113.9\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lookup_service() -> Iterator[str]:
    Lookup.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Lookup)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ip"
    httpd.shutdown()


def test_public_ip_off_makes_no_request_and_on_shows_the_address(
    server: Server, agents: Agents, cluster: DevCluster, lookup_service: str
) -> None:
    name = "public-ip"
    token = register(server, name)
    kubeconfig = cluster.kubeconfig
    args = ["--public-ip-lookup-url", lookup_service, "--heartbeat-interval", "1"]
    off = agents.start(server, token, kubeconfig, *args)
    wait_state(server, name, "online")
    first = server.api("GET", f"/clusters/{name}").json()["last_heartbeat_at"]
    deadline = time.monotonic() + 30
    while server.api("GET", f"/clusters/{name}").json()["last_heartbeat_at"] == first:
        assert time.monotonic() < deadline, "no second heartbeat"
        time.sleep(0.3)
    assert Lookup.requests == []
    assert server.api("GET", f"/clusters/{name}").json()["public_ip"] is None
    off.terminate()
    off.wait(40)

    agents.start(server, token, kubeconfig, *args, "--public-ip-reporting")
    deadline = time.monotonic() + 60
    while (shown := server.api("GET", f"/clusters/{name}").json()["public_ip"]) is None:
        assert time.monotonic() < deadline, "the public IP never showed"
        time.sleep(0.3)
    assert shown == "203.0.113.9"
    assert Lookup.requests == ["/ip"]
    env = {**os.environ, "MOORAGE_TOKEN": ADMIN, **server.cli_env}
    argv = [sys.executable, "-m", "moorage.cli.main", "cluster", "get", name, "--server", server.url]
    shown_by_cli = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert shown_by_cli.returncode == 0, shown_by_cli.stderr
    assert re.search(r"public IP\W+203\.0\.113\.9", shown_by_cli.stdout), shown_by_cli.stdout
