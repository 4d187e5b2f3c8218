"""Server, embedded NATS and agents as real processes against the devcluster."""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from moorage import devcluster
from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.spec import protocol
from tests import postgres
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import (
    ADMIN,
    EXAMPLE,
    Agents,
    Server,
    chain,
    free_port,
    https,
    nats_tls,
    register,
    wait_operation,
    wait_state,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Over HTTPS from a private CA (that agents and the CLI are given), the embedded NATS over TLS:
    what the tests below do, they do through TLS."""
    port = free_port()
    args, ca = https(tmp_path_factory.mktemp("pki"))
    srv = Server(f"https://127.0.0.1:{port}", tmp_path_factory.mktemp("server"), port, args=args, ca=ca)
    srv.start()
    yield srv
    srv.stop()


def bundle(chart_repo: ChartRepo) -> dict[str, Any]:
    files = {
        str(p.relative_to(EXAMPLE)): p.read_text().replace("http://127.0.0.1:8879", chart_repo.url)
        for p in EXAMPLE.rglob("*")
        if p.is_file()
    }
    return {"files": files, "root": "import-cluster.yaml"}


def test_example_applied_through_the_api_is_deployed_by_the_agent(
    server: Server, agents: Agents, cluster: DevCluster, helm: Helm, chart_repo: ChartRepo
) -> None:
    token = register(server, "example")
    # queued while no agent is connected: runs when the agent comes
    queued = server.api("POST", "/clusters/example/apply", json=bundle(chart_repo))
    assert queued.status_code == 202, queued.text
    operation = queued.json()["id"]

    agents.start(server, token, cluster.kubeconfig)
    wait_state(server, "example", "online")
    op = wait_operation(server, operation, timeout=240)
    assert op["state"] == "success", json.dumps(op, indent=2)[-3000:]
    for namespace, name in (
        ("apps", "webapp"),
        ("apps", "stateful"),
        ("widgets", "crd-widget"),
        ("hooks", "hooked"),
    ):
        assert helm.releases(namespace)[name]["status"] == "deployed"
    addons = server.api("GET", "/clusters/example/addons").json()
    assert {a["name"]: a["health"] for a in addons["result"]}["stateful"] == "Healthy"

    # browsing through the agent: the add-on's resource map and an object's events
    tree = server.api("GET", "/clusters/example/addons/webapp/map", params={"namespace": "apps"}).json()
    nodes = {(n["kind"], n["name"]): n for n in tree["resources"]}
    deployment = nodes[("Deployment", "webapp")]
    (replicaset,) = deployment["children"]
    assert replicaset["kind"] == "ReplicaSet"
    assert {c["kind"] for c in replicaset["children"]} == {"Pod"}
    assert len(replicaset["children"]) == 2
    assert deployment["health"] == "Healthy"
    assert {c["kind"] for c in nodes[("Service", "webapp")]["children"]} == {"EndpointSlice"}
    events = server.api(
        "GET", "/clusters/example/resources/Deployment/webapp/events", params={"namespace": "apps"}
    ).json()["events"]
    assert any(e["reason"] == "ScalingReplicaSet" for e in events), events

    # a pod's log, served by kwok, streamed by the agent, as server-sent events
    pod = replicaset["children"][0]["name"]
    argv = [sys.executable, "-m", "moorage.cli.main", "logs", pod, "-n", "apps", "-c", "example"]
    argv += ["--server", server.url, "--tail", "2"]
    env = {**os.environ, "MOORAGE_TOKEN": ADMIN, **server.cli_env}
    logs = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert logs.returncode == 0, logs.stderr
    # the last two lines of what kwok serves (CRI format: time, stream, F, text); other tests append
    served = devcluster.cluster.pod_log(cluster).read_text().splitlines()
    assert logs.stdout.splitlines() == [line.split(" ", 3)[3] for line in served[-2:]]
    assert f"devcluster {cluster.name}: log line" in logs.stdout

    # the same definition again: nothing to do, and it says so
    again = server.api("POST", "/clusters/example/apply", params={"wait": 120}, json=bundle(chart_repo))
    assert again.status_code == 200, again.text
    assert again.json()["state"] == "success"
    (job,) = again.json()["jobs"]
    assert all(": unchanged: " in m for m in job["messages"] if m.startswith(("addon/", "manifest/"))), job[
        "messages"
    ]

    # results and history survive a server restart
    server.stop()
    server.start()
    history = server.api("GET", "/clusters/example/operations").json()["result"]
    assert {o["id"] for o in history} >= {operation, again.json()["id"]}


def test_tokens_are_checked_with_clear_messages(server: Server, tmp_path: Path) -> None:
    assert server.api("GET", "/clusters", token="").json()["detail"] == "missing bearer token"
    assert server.api("GET", "/clusters", token="mrg_wrong").status_code == 401
    token = register(server, "revoked")
    assert server.api("POST", "/agent/register", token=token).status_code == 200
    assert server.api("POST", "/clusters/revoked/agent-token/revoke").status_code in (200, 204)
    refused = server.api("POST", "/agent/register", token=token)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]

    env = {**os.environ, "MOORAGE_AGENT_TOKEN": token, **server.cli_env}
    argv = [
        sys.executable,
        "-m",
        "moorage.cli.main",
        "agent",
        "--server",
        server.url,
        "--health-port",
        str(free_port()),
    ]
    agent = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert agent.returncode == 1
    assert "refused the agent token" in agent.stderr

    oversized = server.api("POST", "/clusters/revoked/apply", content=b"{" + b" " * (3 << 20) + b"}")
    assert oversized.status_code == 413
    assert httpx.get(f"{server.url}/healthz", verify=server.verify).status_code == 200  # still serving


async def test_an_agent_can_use_only_its_own_subjects(server: Server) -> None:
    token_a = register(server, "iso-a")
    register(server, "iso-b")
    reg = server.api("POST", "/agent/register", token=token_a).json()
    other = server.api("GET", "/clusters/iso-b").json()["id"]
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    nc = await nats.connect(
        reg["nats_url"],
        user=reg["nats_user"],
        password=token_a,
        inbox_prefix=reg["inbox_prefix"].encode(),
        error_cb=on_error,
        **nats_tls(reg),
    )
    try:
        # malformed and oversized messages on its own subjects are dropped; the server keeps going
        js = nc.jetstream()
        await js.publish(protocol.results_subject(reg["cluster_id"]), b"not json")
        await js.publish(protocol.results_subject(reg["cluster_id"]), b'{"job_id": "x"}')
        await nc.publish(
            protocol.heartbeat_subject(reg["cluster_id"]), b"x" * (protocol.MAX_MESSAGE_BYTES + 1)
        )
        await nc.subscribe(protocol.jobs_subject(other))
        await nc.publish(protocol.results_subject(other), b"{}")
        await nc.publish(protocol.heartbeat_subject(other), b"{}")
        await nc.flush()
        deadline = time.monotonic() + 5
        while len(errors) < 3 and time.monotonic() < deadline:
            await nc.flush()
            time.sleep(0.1)
    finally:
        await nc.close()
    assert any("subscription" in e and protocol.jobs_subject(other) in e for e in errors), errors
    assert any("publish" in e and protocol.results_subject(other) in e for e in errors), errors
    assert any("publish" in e and protocol.heartbeat_subject(other) in e for e in errors), errors
    assert httpx.get(f"{server.url}/healthz", verify=server.verify).status_code == 200
    assert server.api("GET", "/clusters/iso-a").json()["state"] == "never_connected"  # no bogus heartbeat
    with pytest.raises(nats.errors.Error):
        await nats.connect(
            reg["nats_url"],
            user=reg["nats_user"],
            password="mrga_wrong",
            max_reconnect_attempts=0,
            allow_reconnect=False,
            **nats_tls(reg),
        )


SMALL = """
apiVersion: v1
kind: ImportCluster
metadata: {{name: {name}}}
spec:
  stacks:
    - name: only
      manifests:
        - name: marker
          manifest: |
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: {name}-marker, namespace: default}}
            data: {{cluster: {name}}}
"""


def test_each_agent_gets_only_its_own_clusters_jobs(
    server: Server, agents: Agents, cluster: DevCluster, devcluster_home: Path
) -> None:
    second = devcluster.up(f"route-{os.getpid()}", nodes=1)
    try:
        clusters = {"route-a": cluster, "route-b": second}
        for name, target in clusters.items():
            agents.start(server, register(server, name), target.kubeconfig)
        for name in clusters:
            wait_state(server, name, "online")
            body = {"files": {"import-cluster.yaml": SMALL.format(name=name)}, "root": "import-cluster.yaml"}
            done = server.api("POST", f"/clusters/{name}/apply", params={"wait": 120}, json=body)
            assert done.json()["state"] == "success", done.text
        for name, target in clusters.items():
            other = "route-b" if name == "route-a" else "route-a"
            listed = server.api(
                "GET", f"/clusters/{name}/resources", params={"kind": "ConfigMap", "namespace": "default"}
            )
            assert listed.status_code == 200, listed.text
            names = {item["metadata"]["name"] for item in listed.json()["items"]}
            assert f"{name}-marker" in names
            assert f"{other}-marker" not in names
            kubectl = Kubectl(target.kubeconfig)
            assert (
                kubectl.run("get", "configmap", f"{other}-marker", "-n", "default", check=False).returncode
                != 0
            )
        # the same through the CLI
        argv = [sys.executable, "-m", "moorage.cli.main", "resources", "get", "ConfigMap", "-n", "default"]
        argv += ["-c", "route-a", "--server", server.url, "-o", "json"]
        env = {**os.environ, "MOORAGE_TOKEN": ADMIN, **server.cli_env}
        cli = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        assert cli.returncode == 0, cli.stderr
        assert "route-a-marker" in {i["metadata"]["name"] for i in json.loads(cli.stdout)["items"]}
    finally:
        devcluster.down(second.name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    if reason := postgres.available():
        pytest.skip(reason)
    with postgres.running_postgres() as url:
        yield url


def test_a_server_restart_during_a_job_loses_nothing(
    tmp_path: Path,
    agents: Agents,
    cluster: DevCluster,
    helm: Helm,
    chart_repo: ChartRepo,
    database_url: str | None,
) -> None:
    port = free_port()
    srv = Server(f"http://127.0.0.1:{port}", tmp_path, port, database_url=database_url)
    srv.start()
    namespace = f"restart-{'pg' if database_url else 'lite'}"
    try:
        agents.start(srv, register(srv, "restart"), cluster.kubeconfig)
        wait_state(srv, "restart", "online")
        body = {"files": {"import-cluster.yaml": chain(chart_repo.url, 4).replace("crash", namespace)}}
        operation = srv.api("POST", "/clusters/restart/apply", json=body).json()["id"]
        helm.wait_for_release(namespace, "link-0")
        srv.stop()  # results the agent publishes meanwhile wait in JetStream
        srv.start()
        op = wait_operation(srv, operation)
        assert op["state"] == "success", op
        (job,) = op["jobs"]
        assert sum(m.startswith("addon/link-") for m in job["messages"]) == 4
        history = srv.api("GET", "/clusters/restart/operations").json()["result"]
        assert [(o["id"], o["state"]) for o in history] == [(operation, "success")]
    finally:
        srv.stop()


async def test_a_revoked_agent_is_disconnected_from_nats(server: Server) -> None:
    token = register(server, "disc")
    reg = server.api("POST", "/agent/register", token=token).json()
    disconnected = asyncio.Event()

    async def on_disconnect() -> None:
        disconnected.set()

    nc = await nats.connect(
        reg["nats_url"],
        user=reg["nats_user"],
        password=token,
        inbox_prefix=reg["inbox_prefix"].encode(),
        disconnected_cb=on_disconnect,
        max_reconnect_attempts=2,
        reconnect_time_wait=0.2,
        **nats_tls(reg),
    )
    try:
        assert nc.is_connected
        assert server.api("POST", "/clusters/disc/agent-token/revoke").status_code in (200, 204)
        await asyncio.wait_for(disconnected.wait(), 10)
    finally:
        await nc.close()
