"""The real helm CLI installs the test charts from the HTTP repository and the OCI registry."""

import urllib.request

import pytest

from moorage.devcluster.chartsources import ChartRepo, Registry
from tests.integration.conftest import Helm, Kubectl


def test_install_from_http_repository(helm: Helm, chart_repo: ChartRepo, namespace: str) -> None:
    helm.run(
        "install",
        "web",
        "webapp",
        "--repo",
        chart_repo.url,
        "--version",
        "1.0.0",
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "90s",
        "--set",
        "replicaCount=1",
    )
    release = helm.releases(namespace)["web"]
    assert release["status"] == "deployed"
    assert release["chart"] == "webapp-1.0.0"


def test_install_from_oci_registry(
    helm: Helm, oci_registry: Registry, kubectl: Kubectl, namespace: str
) -> None:
    helm.run(
        "install",
        "web",
        f"{oci_registry.url}/webapp",
        "--version",
        "1.0.0",
        "--plain-http",
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "90s",
    )
    assert helm.releases(namespace)["web"]["status"] == "deployed"
    deployment = kubectl.get("-n", namespace, "deploy/web")
    assert deployment["status"]["availableReplicas"] == 2


def test_pre_install_hook_job_completes(
    helm: Helm, chart_repo: ChartRepo, kubectl: Kubectl, namespace: str
) -> None:
    helm.run(
        "install", "hk", "hooked", "--repo", chart_repo.url, "-n", namespace, "--wait", "--timeout", "90s"
    )
    assert helm.releases(namespace)["hk"]["status"] == "deployed"
    # the hook ran to completion (then was deleted by its hook-succeeded policy) before the ConfigMap
    assert kubectl.get("-n", namespace, "configmap/hk-state")["data"]["message"] == "prepared"
    assert kubectl.run("get", "-n", namespace, "job/hk-prepare", check=False).returncode != 0


def test_crd_chart_creates_its_custom_resource(
    helm: Helm, oci_registry: Registry, kubectl: Kubectl, namespace: str
) -> None:
    helm.run("install", "w", f"{oci_registry.url}/crd-widget", "--plain-http", "-n", namespace, "--wait")
    assert kubectl.get("-n", namespace, "widget/w")["spec"]["size"] == 3


def test_schema_rejects_bad_values(helm: Helm, chart_repo: ChartRepo, namespace: str) -> None:
    result = helm.run(
        "install",
        "s",
        "strict",
        "--repo",
        chart_repo.url,
        "-n",
        namespace,
        "--set",
        "replicas=0",
        check=False,
    )
    assert result.returncode != 0
    assert "replicas" in result.stderr
    assert "s" not in helm.releases(namespace)


def test_upgrade_to_v2_drops_the_extra_configmap(
    helm: Helm, oci_registry: Registry, kubectl: Kubectl, namespace: str
) -> None:
    chart = f"{oci_registry.url}/prunable"
    helm.run("install", "p", chart, "--version", "1.0.0", "--plain-http", "-n", namespace)
    kubectl.run("get", "-n", namespace, "configmap/p-extra")
    helm.run("upgrade", "p", chart, "--version", "2.0.0", "--plain-http", "-n", namespace)
    assert kubectl.run("get", "-n", namespace, "configmap/p-extra", check=False).returncode != 0
    assert helm.releases(namespace)["p"]["revision"] == "2"


def test_chart_repo_index_honours_etag(chart_repo: ChartRepo) -> None:
    with urllib.request.urlopen(f"{chart_repo.url}/index.yaml") as first:
        etag = first.headers["ETag"]
        assert b"webapp" in first.read()
    request = urllib.request.Request(f"{chart_repo.url}/index.yaml", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request)
    assert not_modified.value.code == 304
