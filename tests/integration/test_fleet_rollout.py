"""Fleet roll-forward end to end (issue 12, item 6), on test_agent_upgrade's harness: the agent chart
published to an OCI registry of this test's own (the session's registry holds test_agent_upgrade's
versions), a server told where it is (MOORAGE_AGENT_CHART, polling every 2 s, batches of one), the
agent installed at 0.1.0 and run as the chart's pod would run it. Publishing 0.2.0 is all it takes:
the server upgrades the agent (helm upgrade of its release), the agent started from the new
Deployment reports 0.2.0, and the roll-out is done. A second, opted-out cluster (an agent process
that reports chart 0.1.0 but has no release: an upgrade job would fail) is left alone. Then a
broken 0.3.0 (its template fails) stops the roll-out, the status and `moorage fleet status` say why,
and 0.2.0 stays deployed."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from moorage.devcluster import DevCluster, chartsources
from moorage.devcluster.chartsources import Registry
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import ADMIN, Agents, Server, free_port, wait_state
from tests.integration.test_agent_chart import CHART, NAMESPACE, RELEASE, cleanup, register, start_agent, stop
from tests.integration.test_agent_upgrade import deployed, reported_chart

__all__ = ["cleanup"]  # the fixture used by this module's test

A, B, BROKEN = "0.1.0", "0.2.0", "0.3.0"


def publish(version: str, registry: Registry, helm_home: Path, tmp_path: Path, broken: bool = False) -> None:
    """The checkout's chart as `version` (with a template that fails when `broken`), pushed."""
    copy = tmp_path / f"chart-{version}" / "moorage-agent"
    shutil.copytree(CHART, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    (copy / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": version}))
    if broken:
        (copy / "templates" / "broken.yaml").write_text(
            '{{ fail "this chart version is broken on purpose" }}\n'
        )
    archives = chartsources.package_charts([copy], tmp_path / f"packaged-{version}", helm_home)
    chartsources.push_charts(archives, registry, helm_home)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with chartsources.run_registry(tmp_path / "registry") as found:
        yield found


@pytest.fixture
def server(registry: Registry, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {
        "MOORAGE_AGENT_CHART": f"{registry.url}/moorage-agent",
        "MOORAGE_ROLL_FORWARD_POLL_SECONDS": "2",
        "MOORAGE_ROLL_FORWARD_BATCH_SIZE": "1",
        "MOORAGE_ROLL_FORWARD_PAUSE_SECONDS": "0",
        "MOORAGE_ROLL_FORWARD_REPORT_SECONDS": "180",
    }
    (tmp_path / "server").mkdir()
    srv = Server(f"http://127.0.0.1:{port}", tmp_path / "server", port, env=env)
    srv.start()
    yield srv
    srv.stop()


def rollout(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = server.api("GET", "/fleet/rollout").json()
    return body


def wait_rollout(server: Server, target: str, state: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body = rollout(server)
    while (body["target"], body["state"]) != (target, state):
        assert time.monotonic() < deadline, f"roll-out not {state} to {target}: {body}"
        time.sleep(1)
        body = rollout(server)
    return body


def fleet_status(server: Server) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moorage.cli.main", "fleet", "status", "--server", server.url],
        capture_output=True,
        text=True,
        env={**os.environ, "MOORAGE_TOKEN": ADMIN, "COLUMNS": "300"},
        timeout=60,
        check=False,
    )


def test_a_published_version_rolls_forward_an_opted_out_cluster_is_left_alone_a_broken_one_stops(
    server: Server,
    registry: Registry,
    cluster: DevCluster,
    kubectl: Kubectl,
    helm: Helm,
    helm_home: Path,
    cleanup: list[str],
    agents: Agents,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deadline = time.monotonic() + 120  # another test's namespace of the same name may still terminate
    phase = ["get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "jsonpath={.status.phase}"]
    while kubectl.run(*phase).stdout.strip() == "Terminating":
        assert time.monotonic() < deadline, f"namespace {NAMESPACE} still terminating"
        time.sleep(0.5)
    publish(A, registry, helm_home, tmp_path)
    chart = f"{registry.url}/moorage-agent"
    name = f"fleet-{uuid.uuid4().hex[:6]}"
    _, install = register(server, name, chart)
    helm.run(*install[1:], "--version", A)

    # the opted-out cluster: an agent that reports chart A, but is no Helm release
    other = f"optout-{uuid.uuid4().hex[:6]}"
    created = server.api("POST", "/clusters", json={"name": other})
    assert created.status_code == 201, created.text
    opt_out = subprocess.run(
        [sys.executable, "-m", "moorage.cli.main", "cluster", "set", other, "--no-roll-forward"],
        capture_output=True,
        text=True,
        env={**os.environ, "MOORAGE_TOKEN": ADMIN, "MOORAGE_SERVER": server.url},
        timeout=60,
        check=False,
    )
    assert opt_out.returncode == 0, opt_out.stderr
    monkeypatch.setenv("MOORAGE_AGENT_CHART_VERSION", A)
    agents.start(server, created.json()["agent_token"], cluster.kubeconfig, "--heartbeat-interval", "2")

    for step in ("agent-a", "agent-b"):
        (tmp_path / step).mkdir()
    agent = start_agent(kubectl, cluster, tmp_path / "agent-a")
    try:
        wait_state(server, name, "online", timeout=90)
        wait_state(server, other, "online", timeout=90)
        reported_chart(server, name, A)
        reported_chart(server, other, A)
        status = wait_rollout(server, A, "up_to_date", timeout=60)
        assert {c["cluster"]: c["status"] for c in status["clusters"]} == {
            name: "current",
            other: "opted_out",
        }

        publish(B, registry, helm_home, tmp_path)
        deadline = time.monotonic() + 300
        while deployed(helm) != (f"moorage-agent-{B}", 2):
            assert time.monotonic() < deadline, (
                rollout(server),
                (tmp_path / "agent-a" / "agent.log").read_text()[-3000:],
            )
            time.sleep(0.5)
        assert rollout(server)["state"] == "rolling"
    finally:
        stop(agent)  # Kubernetes replaces the pod with the new version's

    agent = start_agent(kubectl, cluster, tmp_path / "agent-b")
    try:
        status = wait_rollout(server, B, "done", timeout=180)
        parts = {c["cluster"]: c for c in status["clusters"]}
        assert (parts[name]["status"], parts[name]["chart_version"], parts[name]["batch"]) == (
            "upgraded",
            B,
            1,
        )
        assert parts[other]["status"] == "opted_out"
        assert status["progress"] == {"upgraded": 1, "total": 1}
        shown = fleet_status(server)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert f"target {B}, done" in shown.stdout
        # the opted-out cluster was never asked to upgrade
        ops = server.api("GET", f"/clusters/{other}/operations").json()
        assert [o for o in ops["result"] if o["kind"] == "upgrade_agent"] == []
        assert server.api("GET", f"/clusters/{other}").json()["chart_version"] == A

        publish(BROKEN, registry, helm_home, tmp_path, broken=True)
        status = wait_rollout(server, BROKEN, "failed", timeout=180)
        failure = status["failure"]
        assert failure.startswith(f"cluster {name} (batch 1): upgrading {NAMESPACE}/{RELEASE} from chart {B}")
        assert f"the agent keeps running {B}" in failure
        assert "broken on purpose" in failure  # helm's own reason
        shown = fleet_status(server)
        assert shown.returncode == 1, shown.stdout + shown.stderr
        assert "stopped: cluster " + name in shown.stderr
        assert deployed(helm) == (f"moorage-agent-{B}", 2)  # nothing changed
        assert agent.poll() is None
        wait_state(server, name, "online", timeout=30)
        time.sleep(5)  # rounds go on: a stopped roll-out starts nothing new
        ops = server.api("GET", f"/clusters/{name}/operations").json()["result"]
        upgrades = [o for o in ops if o["kind"] == "upgrade_agent"]
        assert len(upgrades) == 2, json.dumps(upgrades)[:2000]
    finally:
        stop(agent)
