"""Upgrade Agent end to end (issue 12): the agent chart at version A and B in the test OCI registry,
installed at A with the command `moorage cluster register` prints, the agent run as the chart's pod
would run it (test_agent_chart's harness: the Deployment's environment, a TokenRequest token of the
chart's ServiceAccount, no kubeconfig). `moorage cluster upgrade-agent NAME --version B` makes the
agent run `helm upgrade --reuse-values` of its own release; the agent started from the new
Deployment (as Kubernetes replaces the pod) reports B; an upgrade to a version that does not exist
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


def upgrade_agent(server: Server, name: str, version: str, chart: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "moorage.cli.main", "cluster", "upgrade-agent", name]
    return subprocess.run(
        [*argv, "--version", version, "--chart", chart, "--server", server.url, "--output", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "MOORAGE_TOKEN": ADMIN},
        timeout=400,
        check=False,
    )


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

        done = upgrade_agent(server, name, B, chart)
        log = (tmp_path / "agent-a" / "agent.log").read_text()[-3000:]
        assert done.returncode == 0, done.stdout + done.stderr + log
        answer = json.loads(done.stdout)
        assert answer["operation_state"] == "success", answer
        assert answer["result"] == {
            "release": RELEASE,
            "namespace": NAMESPACE,
            "from_version": A,
            "version": B,
            "revision": 2,
        }
        assert deployed(helm) == (f"moorage-agent-{B}", 2)
        # --reuse-values: the token, the server URL and every setting as installed
        assert (
            json.loads(helm.run("get", "values", RELEASE, "-n", NAMESPACE, "-o", "json").stdout) == settings
        )
        assert token not in json.dumps(answer)
    finally:
        stop(agent)  # Kubernetes replaces the pod with the new version's

    agent = start_agent(kubectl, cluster, tmp_path / "agent-b")
    try:
        reported_chart(server, name, B, timeout=90)
        wait_state(server, name, "online", timeout=30)

        failed = upgrade_agent(server, name, "9.9.9", chart)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        answer = json.loads(failed.stdout)
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
