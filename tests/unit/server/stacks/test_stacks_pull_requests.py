"""The connection's edit mode against the real Git server of the Stack Builder API tests: in
pull_request mode every save is a commit on a new branch of its own (the tracked branch and the sync
untouched), `branch` still names it when given, and the pull request is opened through the provider's
API with the connection's token. The provider is `prcontract`, a loopback server speaking GitHub
Enterprise's documented contract (a contract test, not GitHub: no provider is reachable from here)."""

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from moorage.devcluster.gitserver import WorkTree
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import GitRepository
from tests.unit.server.stacks.prcontract import Contract, serve
from tests.unit.server.stacks.test_stacks_api import add_strict, chart_url, client, git_server, origin, tip

__all__ = ["chart_url", "client", "git_server", "origin"]  # fixtures

TOKEN = "ghp-Needle-Token-9c1f44e2"
EDITS = "/api/v1/clusters/c1/stacks/edits"


def requested(factory: SessionFactory) -> list[str]:
    with transaction(factory) as s:
        return sorted(r.cluster.name for r in s.scalars(select(GitRepository)) if r.requested_at is not None)


def remote_branch(origin: WorkTree, branch: str) -> str | None:
    found = origin.git("ls-remote", "origin", f"refs/heads/{branch}").split()
    return found[0] if found else None


# provider → (the contract server's prefix, the instance URL's path under it, the API path)
FLAVOURS = {
    "github": ("/ghe/api/v3", "/ghe", "/ghe/api/v3/repos/org/defs/pulls"),
    "bitbucket_data_center": ("/bb", "/bb", "/bb/rest/api/1.0/projects/org/repos/defs/pull-requests"),
}


@pytest.fixture(params=["github"])
def provider(request: pytest.FixtureRequest) -> Iterator[Contract]:
    with serve(Contract(request.param, TOKEN, "org", "defs", prefix=FLAVOURS[request.param][0])) as contract:
        yield contract


def use_provider(client: TestClient, origin: WorkTree, contract: Contract, secret: str = TOKEN) -> None:
    """c1 opens pull requests, with a token credential bound to the Git host and the provider's API
    (GitHub Enterprise's under /api/v3 of the instance, Data Center's under /rest/api/1.0)."""
    git_host = urlsplit(origin.remote_url).netloc
    api_host = urlsplit(contract.url).netloc
    made = client.post(
        "/api/v1/credentials",
        json={"name": "bot", "kind": "token", "secret": secret, "hosts": [git_host, api_host]},
    )
    assert made.status_code == 201, made.text
    body = {
        "provider": contract.flavour,
        "url": origin.remote_url,
        "credential_name": "bot",
        "instance_url": contract.url + FLAVOURS[contract.flavour][1],
        "edit_mode": "pull_request",
    }
    r = client.put("/api/v1/clusters/c1/gitops", json=body)
    assert r.status_code == 200, r.text


def test_in_pull_request_mode_every_save_goes_to_a_new_branch_and_nothing_syncs(
    client: TestClient, origin: WorkTree, factory: SessionFactory
) -> None:
    before = tip(origin)
    r = client.patch("/api/v1/clusters/c1/gitops", json={"edit_mode": "pull_request"})
    assert r.status_code == 200, r.text
    saved = client.post(EDITS, json=add_strict({"replicas": 2, "logLevel": "info"}))
    assert saved.status_code == 201, saved.text
    out = saved.json()
    assert out["branch"].startswith("moorage/bootstrap/c1-add-add-on-strict-to-stack-base-")
    assert out["tracked_branch"] == "main"
    assert tip(origin) == before  # the tracked branch is untouched
    assert remote_branch(origin, out["branch"]) == out["commit"]
    assert requested(factory) == []  # nothing syncs until it is merged
    # no credential: the commit is there all the same, with the provider's form and the reason
    assert out["pull_request_opened"] is False
    assert "the connection has no credential" in out["pull_request_reason"]
    assert out["pull_request_url"].endswith(f"/org/defs/compare/main...{out['branch']}?expand=1")

    change = {"op": "change_manifest", "stack": "base", "name": "ns-strict", "fields": {"namespace": "x"}}
    second = client.post(EDITS, json={"edits": [change]}).json()
    assert second["branch"] != out["branch"]
    assert second["parent"] == before  # each branch starts from the tracked branch's tip
    assert remote_branch(origin, second["branch"]) == second["commit"]

    named = client.post(EDITS, json={"edits": [change], "branch": "team/rename-ns"}).json()
    assert named["branch"] == "team/rename-ns"  # the per-edit branch still names it
    assert remote_branch(origin, "team/rename-ns") == named["commit"]
    assert tip(origin) == before
    assert requested(factory) == []


def test_a_preview_in_pull_request_mode_commits_nothing(client: TestClient, origin: WorkTree) -> None:
    client.patch("/api/v1/clusters/c1/gitops", json={"edit_mode": "pull_request"})
    r = client.post(EDITS, json=add_strict({"replicas": 2, "logLevel": "info"}, preview=True))
    assert r.status_code == 200, r.text
    assert r.json()["commit"] is None
    assert r.json()["branch"].startswith("moorage/bootstrap/")
    assert remote_branch(origin, r.json()["branch"]) is None


@pytest.mark.parametrize("provider", list(FLAVOURS), indirect=True)
def test_the_pull_request_is_opened_through_the_providers_api_with_the_connections_token(
    client: TestClient,
    origin: WorkTree,
    factory: SessionFactory,
    provider: Contract,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    use_provider(client, origin, provider)
    with transaction(factory) as s:  # the reconnect asked for a sync: as if it had run
        for repo in s.scalars(select(GitRepository)):
            repo.requested_at = None
    before = tip(origin)
    saved = client.post(EDITS, json=add_strict({"replicas": 2, "logLevel": "info"}))
    assert saved.status_code == 201, saved.text
    out = saved.json()
    assert out["pull_request_opened"] is True
    assert out["pull_request_reason"] is None
    assert out["pull_request_url"] == f"{provider.url}/org/defs/pull/1"
    assert remote_branch(origin, out["branch"]) == out["commit"]
    assert tip(origin) == before
    assert requested(factory) == []

    (sent,) = provider.received
    assert sent["path"] == FLAVOURS[provider.flavour][2]
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body: dict[str, Any] = sent["body"]
    assert provider.fields(body) == (out["branch"], "main", "c1: add add-on strict to stack base")
    text = body.get("body") or body["description"]
    assert text.startswith("bootstrap changed the definition of cluster `c1`")
    assert "`clusters/c1/import-cluster.yaml`" in text
    assert TOKEN not in saved.text
    assert TOKEN not in caplog.text


def test_a_refused_pull_request_leaves_the_commit_on_its_branch_and_says_why(
    client: TestClient, origin: WorkTree, provider: Contract, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider.token = "the-token-the-provider-wants"
    use_provider(client, origin, provider)
    saved = client.post(EDITS, json=add_strict({"replicas": 2, "logLevel": "info"}))
    assert saved.status_code == 201, saved.text
    out = saved.json()
    assert remote_branch(origin, out["branch"]) == out["commit"]
    assert out["pull_request_opened"] is False
    assert "the provider refused to open the pull request (HTTP 401)" in out["pull_request_reason"]
    assert out["pull_request_url"].endswith(f"/compare/main...{out['branch']}?expand=1")
    assert TOKEN not in saved.text
    assert TOKEN not in caplog.text


def test_a_token_not_bound_to_the_api_host_is_not_sent_there(
    client: TestClient, origin: WorkTree, provider: Contract
) -> None:
    git_host = urlsplit(origin.remote_url).netloc
    made = client.post(
        "/api/v1/credentials", json={"name": "bot", "kind": "token", "secret": TOKEN, "hosts": [git_host]}
    )
    assert made.status_code == 201, made.text
    body = {
        "url": origin.remote_url,
        "credential_name": "bot",
        "instance_url": f"{provider.url}/ghe",
        "edit_mode": "pull_request",
    }
    assert client.put("/api/v1/clusters/c1/gitops", json=body).status_code == 200
    out = client.post(EDITS, json=add_strict({"replicas": 2, "logLevel": "info"})).json()
    assert remote_branch(origin, out["branch"]) == out["commit"]
    assert out["pull_request_opened"] is False
    assert f"not to {urlsplit(provider.url).hostname}" in out["pull_request_reason"]
    assert "moorage credentials allow-host bot" in out["pull_request_reason"]
    assert provider.received == []
