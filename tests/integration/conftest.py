"""Integration fixtures: a real devcluster for the session, a fresh namespace per test, and the test
charts served from a Helm HTTP repository and an OCI registry, all on loopback."""

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moorage import devcluster
from moorage.devcluster import binaries, chartsources
from tests.integration.control_plane_support import Agents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def devcluster_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Clusters started by the tests live under a temporary state root, never the user's own."""
    home = tmp_path_factory.mktemp("devclusters")
    previous = os.environ.get("MOORAGE_DEVCLUSTER_HOME")
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("MOORAGE_DEVCLUSTER_HOME", None)
    else:
        os.environ["MOORAGE_DEVCLUSTER_HOME"] = previous


@pytest.fixture(scope="session")
def cluster(devcluster_home: Path) -> Iterator[devcluster.DevCluster]:
    name = f"pytest-{os.getpid()}"
    started = devcluster.up(name, nodes=3)
    try:
        yield started
    finally:
        devcluster.down(name)


class Kubectl:
    """The real kubectl against one cluster, for arranging and asserting in tests."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.binary = str(binaries.find("kubectl"))

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json").stdout)


@pytest.fixture(scope="session")
def kubectl(cluster: devcluster.DevCluster) -> Kubectl:
    return Kubectl(cluster.kubeconfig)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards without waiting."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


class Helm:
    """The real helm CLI against one cluster, with its own cache and config directories."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = chartsources.helm_env(home)
        self.binary = str(binaries.find("helm"))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def wait_for_release(self, namespace: str, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while name not in self.releases(namespace):
            if time.monotonic() > deadline:
                raise AssertionError(f"release {namespace}/{name} never appeared")
            time.sleep(0.1)

    def releases(self, namespace: str) -> dict[str, dict[str, Any]]:
        listed = json.loads(self.run("list", "-n", namespace, "-o", "json").stdout)
        return {r["name"]: r for r in listed}


@pytest.fixture(scope="session")
def helm(cluster: devcluster.DevCluster, helm_home: Path) -> Helm:
    return Helm(cluster.kubeconfig, helm_home)


@pytest.fixture(scope="session")
def chart_archives(charts_dir: Path, tmp_path_factory: pytest.TempPathFactory, helm_home: Path) -> list[Path]:
    out = tmp_path_factory.mktemp("chart-archives")
    return chartsources.package_charts(sorted(p for p in charts_dir.iterdir() if p.is_dir()), out, helm_home)


@pytest.fixture(scope="session")
def chart_repo(
    chart_archives: list[Path], tmp_path_factory: pytest.TempPathFactory, helm_home: Path
) -> Iterator[chartsources.ChartRepo]:
    """A Helm chart repository over HTTP (index.yaml with ETag) holding every test chart."""
    directory = tmp_path_factory.mktemp("chart-repo")
    for archive in chart_archives:
        (directory / archive.name).write_bytes(archive.read_bytes())
    with chartsources.serve_chart_repo(directory) as repo:
        chartsources.index_repo(directory, repo.url, helm_home)
        yield repo


@pytest.fixture(scope="session")
def oci_registry(
    chart_archives: list[Path], tmp_path_factory: pytest.TempPathFactory, helm_home: Path
) -> Iterator[chartsources.Registry]:
    """An OCI registry on loopback holding every test chart under oci://HOST/charts/NAME."""
    with chartsources.run_registry(tmp_path_factory.mktemp("oci-registry")) as registry:
        chartsources.push_charts(chart_archives, registry, helm_home)
        yield registry


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    """Agents started by a test, stopped after it."""
    started = Agents(tmp_path)
    yield started
    for proc in started.procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("an agent did not stop within 40 s of SIGTERM") from None
