"""The devcluster behaves like a real cluster for the workloads Moorage deploys."""

import json
import time
from collections.abc import Callable
from typing import Any

from tests.integration.conftest import Kubectl


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.example/nginx:1.27}]
"""


def test_server_side_applied_deployment_becomes_available(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run(
        "apply", "--server-side", "--field-manager=moorage-test", "-n", namespace, "-f", "-", input=DEPLOYMENT
    )
    kubectl.run("wait", "-n", namespace, "deploy/web", "--for=condition=Available", "--timeout=60s")
    deployment = kubectl.get("-n", namespace, "deploy/web", "--show-managed-fields")
    assert deployment["status"]["availableReplicas"] == 2
    managers = {m["manager"] for m in deployment["metadata"]["managedFields"]}
    assert "moorage-test" in managers
    pods = kubectl.get("-n", namespace, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)


def test_job_completes(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run(
        "create", "job", "once", "-n", namespace, "--image=registry.example/busybox:1.36", "--", "true"
    )
    kubectl.run("wait", "-n", namespace, "job/once", "--for=condition=Complete", "--timeout=60s")
    assert kubectl.get("-n", namespace, "job/once")["status"]["succeeded"] == 1


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: registry.example/postgres:17}]
"""


def test_statefulset_becomes_ready(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "--server-side", "-n", namespace, "-f", "-", input=STATEFULSET)
    wait_for(
        lambda: kubectl.get("-n", namespace, "statefulset/db").get("status", {}).get("readyReplicas") == 2,
        what="statefulset db to have 2 ready replicas",
    )


def test_namespace_deletion_finishes(kubectl: Kubectl) -> None:
    kubectl.run("create", "namespace", "to-delete")
    kubectl.run("create", "configmap", "c", "-n", "to-delete", "--from-literal=a=b")
    kubectl.run("apply", "--server-side", "-n", "to-delete", "-f", "-", input=DEPLOYMENT)
    kubectl.run("wait", "-n", "to-delete", "deploy/web", "--for=condition=Available", "--timeout=60s")
    kubectl.run("delete", "namespace", "to-delete", "--timeout=90s")
    result = kubectl.run("get", "namespace", "to-delete", check=False)
    assert result.returncode != 0
    assert "NotFound" in result.stderr


def test_version_reports_the_built_release(kubectl: Kubectl) -> None:
    version = json.loads(kubectl.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["serverVersion"]["gitVersion"] == version["clientVersion"]["gitVersion"]
    assert not version["serverVersion"]["gitVersion"].startswith("v0.0.0")
