"""GitOps test scenery: a Git server over HTTP with basic auth, a work tree that pushes to it, and a
small definition (one Helm add-on, one manifest) whose values the tests change commit by commit."""

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from moorage.devcluster.gitserver import GitServer, WorkTree
from moorage.server.gitops import webhooks
from tests.integration.control_plane_support import Server

GIT_USER = "moorage-bot"
GIT_TOKEN = "git-token-for-integration-tests-0001"

DEFINITION = """\
apiVersion: v1
kind: ImportCluster
metadata:
  name: {name}
spec:
  helm_registries:
    - name: repo
      url: "{repo}"
  stacks:
    - name: apps
{manifests}      addons:
        - name: web
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: repo
          namespace: {namespace}
          configuration:
            values:
              replicaCount: {replicas}
"""

MANIFEST = """\
      manifests:
        - name: settings
          namespace: {namespace}
          from_file: settings.yaml
"""

SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {namespace}
data:
  colour: {colour}
"""


def definition_files(
    name: str, namespace: str, repo: str, *, replicas: int = 1, colour: str | None = "blue"
) -> dict[str, str | None]:
    """The files of the cluster's folder (`clusters/<name>/`); colour None drops the manifest."""
    folder = f"clusters/{name}"
    manifests = MANIFEST.format(namespace=namespace) if colour else ""
    text = DEFINITION.format(
        name=name, repo=repo, namespace=namespace, replicas=replicas, manifests=manifests
    )
    return {
        f"{folder}/import-cluster.yaml": text,
        f"{folder}/settings.yaml": SETTINGS.format(namespace=namespace, colour=colour) if colour else None,
    }


def status(server: Server, name: str) -> dict[str, Any]:
    response = server.api("GET", f"/clusters/{name}/gitops/status")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_status(
    server: Server, name: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 120, what: str = ""
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    current = status(server, name)
    while not ok(current):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"gitops status never became {what}: {json.dumps(current, indent=1)[-3000:]}"
            )
        time.sleep(0.2)
        current = status(server, name)
    return current


def wait_synced(server: Server, name: str, sha: str, timeout: float = 120) -> dict[str, Any]:
    return wait_status(
        server,
        name,
        lambda s: s["sync_status"] == "synced" and s["last_commit_sha"] == sha,
        timeout,
        f"synced at {sha[:12]}",
    )


def history(server: Server, name: str, **params: Any) -> dict[str, Any]:
    response = server.api("GET", f"/clusters/{name}/gitops/history", params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def push_webhook(
    server: Server, repo_full_name: str, after: str, secret: str, *, branch: str = "main"
) -> httpx.Response:
    body = json.dumps(
        {"ref": f"refs/heads/{branch}", "after": after, "repository": {"full_name": repo_full_name}}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": f"delivery-{after[:8]}",
        **webhooks.sign("github", body, secret.encode()),
    }
    return httpx.post(f"{server.url}/api/v1/webhooks/github", content=body, headers=headers, timeout=30)


def work_tree(git: GitServer, repo: str, path: Path) -> WorkTree:
    return WorkTree(path, git.repo_url(repo), username=GIT_USER, password=GIT_TOKEN)
