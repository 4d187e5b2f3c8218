"""Upgrade Agent end to end (issue 12): the agent chart at version A and B in the test OCI registry,
installed at A with the command `moorage cluster register` prints, the agent run as the chart's pod
would run it (test_agent_chart's harness: the Deployment's environment, a TokenRequest token of the
chart's ServiceAccount, no kubeconfig). `moorage cluster upgrade-agent NAME --version B` makes the
agent run `helm upgrade --reuse-values` of its own release, then waits until the agent started from
the new Deployment (as Kubernetes replaces the pod) reports B (without that report it fails, as the
first version of this test showed); an upgrade to a version that does not exist
fails saying why, and leaves B deployed and the agent online."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from moorage.devcluster import DevCluster, chartsources
from moorage.devcluster.chartsources import Registry
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import ADMIN, Server, wait_state
from tests.integration.test_agent_chart import (  # the chart-as-a-pod harness, and its fixtures
    CHART,
    NAMESPACE,
    RELEASE,
    cleanup,
    register,
    server,
    start_agent,
    stop,
)

__all__ = ["cleanup", "server"]  # fixtures used by this module's test

A, B = "0.1.0", "0.2.0"


def publish_two_versions(registry: Registry, helm_home: Path, tmp_path: Path) -> str:
    """The checkout's chart as A and a copy of it as B, pushed; the oci:// reference of the chart."""
    copy = tmp_path / "chart-b" / "moorage-agent"
    shutil.copytree(CHART, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    assert meta["version"] == A
    (copy / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": B}))
    archives = chartsources.package_charts([CHART], tmp_path / "a", helm_home)
    archives += chartsources.package_charts([copy], tmp_path / "b", helm_home)
    chartsources.push_charts(archives, registry, helm_home)
    return f"{registry.url}/moorage-agent"


def upgrade_agent(server: Server, name: str, version: str, chart: str) -> subprocess.Popen[str]:
    """`moorage cluster upgrade-agent`, started: it waits for the job, then for the new agent's report."""
    argv = [sys.executable, "-m", "moorage.cli.main", "cluster", "upgrade-agent", name]
    return subprocess.Popen(
        [*argv, "--version", version, "--chart", chart, "--server", server.url, "--output", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MOORAGE_TOKEN": ADMIN},
    )


def finished(cli: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = cli.communicate(timeout=400)
    return cli.returncode, out, err


def reported_chart(server: Server, name: str, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = server.api("GET", f"/clusters/{name}").json().get("chart_version")
        if got == version:
            return
        time.sleep(0.5)
    raise AssertionError(f"the cluster reports chart {got!r}, not {version!r}, after {timeout:.0f}s")


def deployed(helm: Helm) -> tuple[str, int]:
    release = helm.releases(NAMESPACE)[RELEASE]
    return release["chart"], int(release["revision"])


def test_upgrade_agent_from_a_to_b_and_a_failed_upgrade_keeps_b(
    server: Server,
    cluster: DevCluster,
    kubectl: Kubectl,
    helm: Helm,
    oci_registry: Registry,
    helm_home: Path,
    cleanup: list[str],
    tmp_path: Path,
) -> None:
    # test_agent_chart deletes the same namespace without waiting: installing into it while it
    # terminates would fail
    deadline = time.monotonic() + 120
    phase = ["get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "jsonpath={.status.phase}"]
    while kubectl.run(*phase).stdout.strip() == "Terminating":
        assert time.monotonic() < deadline, f"namespace {NAMESPACE} still terminating"
        time.sleep(0.5)
    chart = publish_two_versions(oci_registry, helm_home, tmp_path)
    name = f"upg-{uuid.uuid4().hex[:6]}"
    token, install = register(server, name, chart)
    helm.run(*install[1:], "--version", A)
    assert deployed(helm) == (f"moorage-agent-{A}", 1)
    settings = json.loads(helm.run("get", "values", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)

    (tmp_path / "agent-a").mkdir()
    (tmp_path / "agent-b").mkdir()
    agent = start_agent(kubectl, cluster, tmp_path / "agent-a")
    try:
        wait_state(server, name, "online", timeout=90)
        reported_chart(server, name, A)

        cli = upgrade_agent(server, name, B, chart)
        deadline = time.monotonic() + 300
        while deployed(helm) != (f"moorage-agent-{B}", 2):
            log = (tmp_path / "agent-a" / "agent.log").read_text()[-3000:]
            if cli.poll() is not None or time.monotonic() > deadline:
                cli.kill()
                raise AssertionError([*finished(cli), log])
            time.sleep(0.5)
        # --reuse-values: the token, the server URL and every setting as installed
        values = json.loads(helm.run("get", "values", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
        assert values == settings
    finally:
        stop(agent)  # Kubernetes replaces the pod with the new version's

    agent = start_agent(kubectl, cluster, tmp_path / "agent-b")
    try:
        code, out, err = finished(cli)  # it waited for the new agent's report
        assert code == 0, out + err
        answer = json.loads(out)
        assert answer["operation_state"] == "success", answer
        assert answer["result"] == {
            "release": RELEASE,
            "namespace": NAMESPACE,
            "from_version": A,
            "version": B,
            "revision": 2,
        }
        assert answer["reported_chart_version"] == B
        assert token not in out + err
        reported_chart(server, name, B, timeout=10)
        wait_state(server, name, "online", timeout=30)

        code, out, err = finished(upgrade_agent(server, name, "9.9.9", chart))
        assert code == 1, out + err
        answer = json.loads(out)
        assert answer["operation_state"] == "failed", answer
        (message,) = [m for m in answer["messages"] if "9.9.9" in m]
        assert f"upgrading {NAMESPACE}/{RELEASE} from chart {B} to 9.9.9 failed" in message
        assert f"the agent keeps running {B}" in message
        assert "not found" in message.lower(), message  # helm's own reason
        assert deployed(helm) == (f"moorage-agent-{B}", 2)  # nothing changed
        assert agent.poll() is None
        wait_state(server, name, "online", timeout=30)
        assert server.api("GET", f"/clusters/{name}").json()["chart_version"] == B
    finally:
        stop(agent)
