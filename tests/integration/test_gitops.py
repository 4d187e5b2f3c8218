"""GitOps end to end: a Git server over HTTP (git http-backend, basic auth), `moorage server` with its
embedded NATS, an agent and the devcluster. Commits are pushed; webhooks, polling and Sync Now make
the cluster follow them."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.devcluster.gitserver import GitServer, WorkTree
from tests.integration.conftest import Kubectl
from tests.integration.control_plane_support import (
    ADMIN,
    Agents,
    Server,
    free_port,
    register,
    wait_state,
)
from tests.integration.gitops_support import (
    GIT_TOKEN,
    GIT_USER,
    definition_files,
    history,
    push_webhook,
    status,
    wait_status,
    wait_synced,
    work_tree,
)

REPO = "org/platform.git"


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    server = GitServer(tmp_path_factory.mktemp("git"), username=GIT_USER, password=GIT_TOKEN)
    server.start()
    server.create_repo(REPO)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    env = {"MOORAGE_GIT_RETRY_BASE_SECONDS": "0.5", "MOORAGE_GIT_RETRY_MAX_SECONDS": "2"}
    srv = Server(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("server"), port, env=env)
    srv.start()
    credential = srv.api(
        "POST",
        "/credentials",
        json={
            "name": "git-bot",
            "kind": "token",
            "username": GIT_USER,
            "secret": GIT_TOKEN,
            "hosts": ["127.0.0.1"],
        },
    )
    assert credential.status_code == 201, credential.text
    yield srv
    srv.stop()


@dataclass
class Connected:
    name: str
    namespace: str
    tree: WorkTree
    webhook_secret: str
    first_sha: str

    def commit(self, repo_url: str, message: str, **kwargs: object) -> str:
        files = definition_files(self.name, self.namespace, repo_url, **kwargs)  # type: ignore[arg-type]
        return self.tree.commit_and_push(files, message)


@dataclass
class Scene:
    """Everything a GitOps test touches; one fixture instead of eight parameters per test."""

    server: Server
    agents: Agents
    cluster: DevCluster
    git: GitServer
    chart_repo: ChartRepo
    namespace: str
    kubectl: Kubectl
    tmp_path: Path


@pytest.fixture
def scene(
    server: Server,
    agents: Agents,
    cluster: DevCluster,
    git: GitServer,
    chart_repo: ChartRepo,
    namespace: str,
    kubectl: Kubectl,
    tmp_path: Path,
) -> Scene:
    return Scene(server, agents, cluster, git, chart_repo, namespace, kubectl, tmp_path)


def connect(scene: Scene, name: str, *, poll_interval: int = 3600) -> Connected:
    """Register a cluster, run its agent, push a first commit and connect the cluster to it."""
    server, git = scene.server, scene.git
    token = register(server, name)
    scene.agents.start(server, token, scene.cluster.kubeconfig)
    wait_state(server, name, "online")
    tree = work_tree(git, REPO, scene.tmp_path / "work")
    files = definition_files(name, scene.namespace, scene.chart_repo.url, replicas=1)
    first = tree.commit_and_push(files, f"{name}: first definition")
    response = server.api(
        "PUT",
        f"/clusters/{name}/gitops",
        json={
            "url": git.repo_url(REPO),
            "branch": "main",
            "credential_name": "git-bot",
            "poll_interval_seconds": poll_interval,
        },
    )
    assert response.status_code == 200, response.text
    secret = response.json()["webhook_secret"]
    assert secret
    wait_synced(server, name, first)
    return Connected(name, scene.namespace, tree, secret, first)


def replicas(kubectl: Kubectl, namespace: str) -> int:
    return int(kubectl.get("deployment", "web", "-n", namespace)["spec"]["replicas"])


def test_a_push_webhook_syncs_the_cluster_and_history_shows_the_commit(scene: Scene) -> None:
    server, chart_repo, namespace, kubectl = scene.server, scene.chart_repo, scene.namespace, scene.kubectl
    c = connect(scene, "gitops-hook")
    assert replicas(kubectl, namespace) == 1
    assert kubectl.get("configmap", "settings", "-n", namespace)["data"]["colour"] == "blue"

    sha = c.commit(chart_repo.url, "scale web to 2", replicas=2, colour="green")
    started = time.monotonic()
    response = push_webhook(server, "org/platform", sha, c.webhook_secret)
    assert response.status_code == 202, response.text
    assert response.json()["enqueued"] == ["gitops-hook"]
    synced = wait_synced(server, "gitops-hook", sha)
    took = time.monotonic() - started
    replayed = push_webhook(server, "org/platform", sha, c.webhook_secret)  # the same delivery id
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["enqueued"] == []
    assert replicas(kubectl, namespace) == 2
    assert kubectl.get("configmap", "settings", "-n", namespace)["data"]["colour"] == "green"
    assert synced["last_synced_from"] == "webhook"
    assert synced["last_commit_url"].endswith(f"/org/platform/commit/{sha}")
    print(f"commit → webhook → applied: {took:.2f} s")

    rows = history(server, "gitops-hook")
    newest = rows["result"][0]
    assert (newest["status"], newest["source"], newest["commit_sha"]) == ("success", "webhook", sha)
    assert (newest["retry_count"], newest["duration_ms"] >= 0) == (0, True)
    assert newest["changes"] == {"added": [], "changed": ["addon/web", "manifest/settings"], "removed": []}
    assert newest["commit_url"].endswith(sha)
    assert rows["pagination"]["total_count"] == 2
    by_source = history(server, "gitops-hook", sort="source", order="asc")["result"]
    assert [r["source"] for r in by_source] == ["manual", "webhook"]
    second_page = history(server, "gitops-hook", page=2, page_size=1)
    assert second_page["result"][0]["commit_sha"] == c.first_sha

    # the manifest removed from Git is pruned from the cluster
    gone = c.commit(chart_repo.url, "drop the settings manifest", replicas=2, colour=None)
    assert push_webhook(server, "org/platform", gone, c.webhook_secret).status_code == 202
    wait_synced(server, "gitops-hook", gone)
    assert kubectl.run("get", "configmap", "settings", "-n", namespace, check=False).returncode != 0
    assert history(server, "gitops-hook")["result"][0]["changes"]["removed"] == ["manifest/settings"]

    # the CLI shows the same history
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "moorage.cli.main",
            "cluster",
            "history",
            "gitops-hook",
            "--server",
            server.url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MOORAGE_TOKEN": ADMIN, "COLUMNS": "200"},
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert gone[:12] in cli.stdout, cli.stdout
    assert sha[:12] in cli.stdout, cli.stdout


def test_polling_alone_syncs_a_new_commit(scene: Scene) -> None:
    server, chart_repo, namespace, kubectl = scene.server, scene.chart_repo, scene.namespace, scene.kubectl
    c = connect(scene, "gitops-poll", poll_interval=5)
    sha = c.commit(chart_repo.url, "scale web to 3", replicas=3)
    synced = wait_synced(server, "gitops-poll", sha, timeout=60)
    assert synced["last_synced_from"] == "poll"
    assert replicas(kubectl, namespace) == 3
    assert history(server, "gitops-poll")["result"][0]["source"] == "poll"


BAD_COMMITS = {
    "typo": ("chart_version:", "chart_verison:", "did you mean 'chart_version'"),
    "missing parent": (
        "          namespace: {ns}\n          configuration:",
        "          namespace: {ns}\n          parents:\n            - addon: nowhere\n"
        "          configuration:",
        "nowhere",
    ),
    "broken yaml": ("  stacks:\n", "  stacks: [\n", "yaml"),
}


def test_a_bad_commit_ends_in_error_with_field_level_messages_and_the_cluster_is_untouched(
    scene: Scene,
) -> None:
    server, chart_repo, namespace, kubectl = scene.server, scene.chart_repo, scene.namespace, scene.kubectl
    c = connect(scene, "gitops-bad")
    root = "clusters/gitops-bad/import-cluster.yaml"
    for what, (old, new, expected) in BAD_COMMITS.items():
        files = definition_files(c.name, namespace, chart_repo.url, replicas=4)
        text = str(files[root])
        assert old.format(ns=namespace) in text, what
        bad = c.tree.commit_and_push(
            {root: text.replace(old.format(ns=namespace), new.format(ns=namespace))}, what
        )
        response = server.api("POST", "/clusters/gitops-bad/gitops/sync", params={"wait": 60})
        assert response.status_code == 200, response.text
        row = response.json()["sync"]
        assert row is not None, what
        assert row["status"] == "failed", (what, row)
        assert row["commit_sha"] == bad
        error = row["error"]
        assert error["error_type"] == "multiple_validation_errors", (what, error)
        text_of_errors = " ".join(f"{e['message']} {e.get('hint') or ''}" for e in error["errors"]).lower()
        assert expected.lower() in text_of_errors, (what, error["errors"])
        assert all(e["file"] == root and e["line"] > 0 for e in error["errors"]), error["errors"]
        state = status(server, "gitops-bad")
        assert (state["sync_status"], state["last_commit_sha"]) == ("error", c.first_sha)
        assert replicas(kubectl, namespace) == 1  # untouched
        assert state["retry_count"] == 0  # a bad commit waits for the next one

    good = c.commit(chart_repo.url, "fixed", replicas=2)
    assert server.api("POST", "/clusters/gitops-bad/gitops/sync").status_code == 202
    wait_synced(server, "gitops-bad", good)
    assert replicas(kubectl, namespace) == 2


def test_forged_oversized_and_unknown_webhooks_are_refused_and_nothing_is_enqueued(scene: Scene) -> None:
    server, chart_repo = scene.server, scene.chart_repo
    c = connect(scene, "gitops-forged")
    sha = c.commit(chart_repo.url, "not announced", replicas=2)
    before = history(server, "gitops-forged")["pagination"]["total_count"]

    forged = push_webhook(server, "org/platform", sha, "not-the-secret")
    assert forged.status_code == 401, forged.text
    unknown = push_webhook(server, "org/elsewhere", sha, c.webhook_secret)
    # the same answer as for a connected repository: no telling which ones are connected
    assert (unknown.status_code, unknown.text) == (forged.status_code, forged.text)
    oversized = httpx.post(
        f"{server.url}/api/v1/webhooks/github",
        content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers={"X-GitHub-Event": "push", "Content-Type": "application/json"},
        timeout=30,
    )
    assert oversized.status_code == 413, oversized.text
    truncated = httpx.post(
        f"{server.url}/api/v1/webhooks/github",
        content=b'{"ref": "refs/heads/main", "after": ',
        headers={"X-GitHub-Event": "push"},
        timeout=30,
    )
    assert truncated.status_code == 400, truncated.text

    time.sleep(2)
    assert history(server, "gitops-forged")["pagination"]["total_count"] == before
    state = status(server, "gitops-forged")
    assert (state["last_commit_sha"], state["pending_commit_sha"]) == (c.first_sha, None)
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200  # still serving


def test_git_unreachable_or_credentials_revoked_errors_retries_and_recovers(scene: Scene) -> None:
    server, git, chart_repo, namespace, kubectl = (
        scene.server,
        scene.git,
        scene.chart_repo,
        scene.namespace,
        scene.kubectl,
    )
    c = connect(scene, "gitops-flaky")

    # the Git server goes away
    sha = c.commit(chart_repo.url, "while git is down", replicas=2)
    port = git.port
    git.stop()
    try:
        assert server.api("POST", "/clusters/gitops-flaky/gitops/sync").status_code == 202
        failing = wait_status(
            server,
            "gitops-flaky",
            lambda s: s["sync_status"] == "error" and s["retry_count"] >= 2,
            30,
            "retrying",
        )
        assert "unreachable" in failing["error"]["message"], failing["error"]
        assert failing["next_retry_at"] is not None
    finally:
        git.start(port)
    wait_synced(server, "gitops-flaky", sha, timeout=30)
    retried = history(server, "gitops-flaky")["result"]
    assert retried[0]["status"] == "success"
    assert retried[0]["retry_count"] >= 2
    assert retried[1]["status"] == "failed"
    assert "unreachable" in retried[1]["error"]["message"]

    # the token is revoked at the Git server
    sha = c.commit(chart_repo.url, "while the token is revoked", replicas=3)
    git.set_credentials(GIT_USER, "a-new-token-the-server-wants")
    try:
        assert server.api("POST", "/clusters/gitops-flaky/gitops/sync").status_code == 202
        refused = wait_status(
            server,
            "gitops-flaky",
            lambda s: s["sync_status"] == "error" and s["retry_count"] >= 1,
            30,
            "refused",
        )
        message = refused["error"]["message"]
        assert "refused access with credential 'git-bot'" in message, message
        assert GIT_TOKEN not in str(refused)
        assert "a-new-token" not in str(refused)
    finally:
        git.set_credentials(GIT_USER, GIT_TOKEN)
    wait_synced(server, "gitops-flaky", sha, timeout=30)
    assert replicas(kubectl, namespace) == 3
    log = (server.data_dir / "server.log").read_text()
    assert GIT_TOKEN not in log


def test_a_revert_commit_syncs_back_and_a_revision_can_be_synced(scene: Scene) -> None:
    server, chart_repo, namespace, kubectl = scene.server, scene.chart_repo, scene.namespace, scene.kubectl
    c = connect(scene, "gitops-revert")
    bump = c.commit(chart_repo.url, "scale to 3", replicas=3)
    assert server.api("POST", "/clusters/gitops-revert/gitops/sync").status_code == 202
    wait_synced(server, "gitops-revert", bump)
    assert replicas(kubectl, namespace) == 3

    revert = c.tree.revert(bump)
    c.tree.push()
    assert push_webhook(server, "org/platform", revert, c.webhook_secret).status_code == 202
    wait_synced(server, "gitops-revert", revert)
    assert replicas(kubectl, namespace) == 1

    argv = [
        "cluster",
        "sync",
        "gitops-revert",
        "--revision",
        bump[:12],
        "--wait",
        "120",
        "--server",
        server.url,
    ]
    cli = subprocess.run(
        [sys.executable, "-m", "moorage.cli.main", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "MOORAGE_TOKEN": ADMIN, "COLUMNS": "200"},
        check=False,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    state = wait_synced(server, "gitops-revert", bump)
    assert state["pending_commit_sha"] in (None, revert)
    assert replicas(kubectl, namespace) == 3
    row = history(server, "gitops-revert")["result"][0]
    assert (row["revision"], row["commit_sha"], row["source"]) == (bump[:12], bump, "manual")

    # a commit that is not on the branch is refused by the sync, with a reason
    c.tree.git("checkout", "--quiet", "-b", "side")
    side = c.commit(chart_repo.url, "side branch", replicas=5)
    c.tree.git("push", "--quiet", "origin", "side")
    c.tree.git("checkout", "--quiet", "main")
    response = server.api(
        "POST", "/clusters/gitops-revert/gitops/sync", params={"wait": 60}, json={"revision": side}
    )
    assert response.json()["sync"]["status"] == "failed"
    assert "of branch 'main'" in response.json()["sync"]["error"]["message"]
    assert replicas(kubectl, namespace) == 3


def test_repointing_needs_explicit_flags(scene: Scene) -> None:
    server, git, chart_repo, namespace, kubectl = (
        scene.server,
        scene.git,
        scene.chart_repo,
        scene.namespace,
        scene.kubectl,
    )
    c = connect(scene, "gitops-repoint")
    c.tree.git("checkout", "--quiet", "-b", "staging")
    staging = c.commit(chart_repo.url, "staging", replicas=2)
    c.tree.git("push", "--quiet", "origin", "staging")
    body = {"url": git.repo_url(REPO), "branch": "staging", "credential_name": "git-bot"}

    refused = server.api("PUT", "/clusters/gitops-repoint/gitops", json=body)
    assert refused.status_code == 409, refused.text
    assert "allow_repoint" in refused.json()["detail"]

    kubectl.run(
        "apply",
        "-f",
        "-",
        input=(
            "apiVersion: v1\nkind: PersistentVolumeClaim\n"
            f"metadata: {{name: data, namespace: {namespace}}}\n"
            "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"
        ),
    )
    with_pvcs = server.api("PUT", "/clusters/gitops-repoint/gitops", json={**body, "allow_repoint": True})
    assert with_pvcs.status_code == 409, with_pvcs.text
    assert "PersistentVolumeClaim" in with_pvcs.json()["detail"]
    assert status(server, "gitops-repoint")["git_repo"]["branch"] == "main"

    allowed = server.api(
        "PUT",
        "/clusters/gitops-repoint/gitops",
        json={**body, "allow_repoint": True, "allow_repoint_destroying_data": True},
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["webhook_secret"] is None  # the secret stays; it was shown once
    wait_synced(server, "gitops-repoint", staging)
    assert replicas(kubectl, namespace) == 2

    # disconnecting does not reset the guard: the history remembers where the cluster came from
    assert server.api("DELETE", "/clusters/gitops-repoint/gitops").status_code == 200
    assert status(server, "gitops-repoint")["sync_status"] == "not_configured"
    again = server.api("PUT", "/clusters/gitops-repoint/gitops", json={**body, "branch": "main"})
    assert again.status_code == 409, again.text


def test_a_burst_of_pushes_coalesces_into_a_sync_of_the_newest_commit(scene: Scene) -> None:
    server, chart_repo, namespace, kubectl = scene.server, scene.chart_repo, scene.namespace, scene.kubectl
    c = connect(scene, "gitops-burst")
    before = history(server, "gitops-burst")["pagination"]["total_count"]
    shas = [c.commit(chart_repo.url, f"burst {n}", replicas=n) for n in (2, 3, 4, 5, 2)]
    for sha in shas:
        assert push_webhook(server, "org/platform", sha, c.webhook_secret).status_code == 202
    wait_synced(server, "gitops-burst", shas[-1])
    assert replicas(kubectl, namespace) == 2
    time.sleep(1.5)
    rows = history(server, "gitops-burst")
    assert rows["pagination"]["total_count"] - before <= 2, rows
    assert rows["result"][0]["commit_sha"] == shas[-1]
