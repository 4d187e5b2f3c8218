"""The GitOps API with a fake bus (issue 18): Git credentials that git could not carry, webhook
secrets too short to authenticate anything, replayed webhook deliveries, and webhook answers that
must not tell which repositories are connected."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from moorage.server.app import create_app
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import GitRepository, WebhookDelivery
from moorage.server.gitops import store, webhooks
from moorage.server.settings import ServerSettings
from tests.unit.server.conftest import ADMIN_TOKEN, Clock, FakeBus

URL = "https://github.com/acme/platform.git"
SHA = "a" * 40
OTHER_SHA = "b" * 40


def connected(client: TestClient, name: str = "c1", **body: Any) -> dict[str, Any]:
    assert client.post("/api/v1/clusters", json={"name": name}).status_code == 201
    r = client.put(f"/api/v1/clusters/{name}/gitops", json={"url": URL, **body})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def push_body(repository: str = "acme/platform", after: str = SHA) -> bytes:
    return json.dumps(
        {"ref": "refs/heads/main", "after": after, "repository": {"full_name": repository}}
    ).encode()


def deliver(
    anon: TestClient,
    body: bytes,
    secret: str | None,
    delivery: str | None = "delivery-1",
    provider: str = "github",
) -> Any:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    if secret is not None:
        headers |= webhooks.sign("github", body, secret.encode())
    return anon.post(f"/api/v1/webhooks/{provider}", content=body, headers=headers)


def requested(factory: SessionFactory) -> bool:
    with transaction(factory) as s:
        repo = s.scalar(select(GitRepository))
        assert repo is not None
        return repo.requested_at is not None


def clear_request(factory: SessionFactory) -> None:
    """As if the requested sync had started."""
    with transaction(factory) as s:
        for repo in s.scalars(select(GitRepository)):
            repo.requested_at = None
            repo.pending_commit_sha = None


# --------------------------------------------------------------------------- credentials (item 4)


@pytest.mark.parametrize(
    ("kind", "secret"),
    [
        ("token", "ghp_abc\x00def"),
        ("token", "ghp_abc\x1bdef"),
        ("token", "ghp_abc\x7fdef"),
        ("ssh_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\x00bnNz\n-----END OPENSSH PRIVATE KEY-----\n"),
    ],
)
def test_a_credential_secret_git_cannot_carry_is_refused_at_creation_and_rotation(
    client: TestClient, kind: str, secret: str
) -> None:
    r = client.post(
        "/api/v1/credentials", json={"name": "bad", "hosts": ["github.com"], "kind": kind, "secret": secret}
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "control character" in detail
    assert secret not in detail  # the position, never the secret
    assert "def" not in detail
    assert client.get("/api/v1/credentials").json() == []

    good = "ghp_0123456789abcdef" if kind == "token" else secret.replace("\x00", "")
    r = client.post(
        "/api/v1/credentials", json={"name": "ok", "hosts": ["github.com"], "kind": kind, "secret": good}
    )
    assert r.status_code == 201, r.text
    r = client.put("/api/v1/credentials/ok", json={"secret": secret})
    assert r.status_code == 422, r.text
    assert "control character" in r.json()["detail"]


def test_a_private_key_keeps_its_line_breaks(client: TestClient) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\r\nb3Bl\tbnNz\r\n-----END OPENSSH PRIVATE KEY-----\n"
    r = client.post(
        "/api/v1/credentials", json={"name": "k", "hosts": ["github.com"], "kind": "ssh_key", "secret": key}
    )
    assert r.status_code == 201, r.text


# ------------------------------------------------------------------ credentials bound to hosts (item 1)


def test_a_stored_credential_is_not_sent_to_another_host(client: TestClient) -> None:
    """Probe finding 1: with write scope, connect a cluster to http://any-host/x.git with an existing
    credential and the server would send it there. Refused now, before anything is stored."""
    token = "ghp_0123456789abcdef"
    body = {"name": "bot", "kind": "token", "secret": token, "hosts": ["github.com"]}
    assert client.post("/api/v1/credentials", json=body).status_code == 201
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    for url in ("http://evil.example/x.git", "https://evil.example/x.git"):
        r = client.put("/api/v1/clusters/c1/gitops", json={"url": url, "credential_name": "bot"})
        assert r.status_code == 422, r.text
        assert "credential 'bot'" in r.json()["detail"]
        assert token not in r.text
    assert client.get("/api/v1/clusters/c1/gitops/status").json()["sync_status"] == "not_configured"
    r = client.put("/api/v1/clusters/c1/gitops", json={"url": URL, "credential_name": "bot"})
    assert r.status_code == 200, r.text


def test_a_credential_over_plain_http_is_refused_and_hosts_are_returned_not_secrets(
    client: TestClient,
) -> None:
    body = {"name": "bot", "kind": "token", "secret": "ghp_0123456789abcdef", "hosts": ["git.example"]}
    created = client.post("/api/v1/credentials", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["hosts"] == ["git.example"]
    assert "ghp_" not in created.text
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    r = client.put(
        "/api/v1/clusters/c1/gitops", json={"url": "http://git.example/a.git", "credential_name": "bot"}
    )
    assert r.status_code == 422, r.text
    assert "plain HTTP" in r.json()["detail"]


def test_binding_a_credential_to_a_new_host_takes_an_admin(client: TestClient) -> None:
    body = {"name": "bot", "kind": "token", "secret": "ghp_0123456789abcdef", "hosts": ["github.com"]}
    assert client.post("/api/v1/credentials", json=body).status_code == 201
    writer = client.post("/api/v1/tokens", json={"name": "w", "scopes": ["write"]}).json()["token"]
    r = client.post(
        "/api/v1/credentials/bot/hosts",
        json={"hosts": ["evil.example"]},
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert r.status_code == 403, r.text
    r = client.post("/api/v1/credentials/bot/hosts", json={"hosts": ["git.example"]})
    assert r.status_code == 200, r.text
    assert r.json()["hosts"] == ["github.com", "git.example"]


def test_a_credential_needs_the_hosts_it_is_for(client: TestClient) -> None:
    r = client.post("/api/v1/credentials", json={"name": "bot", "kind": "token", "secret": "ghp_0123456789"})
    assert r.status_code == 422
    assert "hosts" in r.json()["detail"]


# --------------------------------------------------------------------------- webhook secrets (item 5)


@pytest.mark.parametrize("secret", ["", "x", "fifteen-chars!!"])
def test_a_short_webhook_secret_is_refused(client: TestClient, secret: str) -> None:
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    r = client.put("/api/v1/clusters/c1/gitops", json={"url": URL, "webhook_secret": secret})
    assert r.status_code == 422, r.text
    assert "at least 16 characters" in r.json()["detail"]
    assert client.get("/api/v1/clusters/c1/gitops/status").json()["sync_status"] == "not_configured"


@pytest.mark.parametrize("secret", [" sixteen-or-more-chars", "sixteen-or-more\x00chars"])
def test_a_webhook_secret_with_control_characters_or_spaces_around_is_refused(
    client: TestClient, secret: str
) -> None:
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    r = client.put("/api/v1/clusters/c1/gitops", json={"url": URL, "webhook_secret": secret})
    assert r.status_code == 422, r.text
    assert "control characters or surrounding whitespace" in r.json()["detail"]


def test_a_webhook_secret_is_generated_by_default_and_a_long_one_is_taken(client: TestClient) -> None:
    generated = connected(client)["webhook_secret"]
    assert len(generated) >= 32
    r = client.put("/api/v1/clusters/c1/gitops", json={"url": URL, "webhook_secret": "s" * 16})
    assert r.status_code == 200, r.text
    assert r.json()["webhook_secret"] is None  # chosen, so not shown


# --------------------------------------------------------------------------- replays (item 6)


def test_a_replayed_signed_delivery_is_enqueued_once(
    client: TestClient, anon: TestClient, factory: SessionFactory
) -> None:
    secret = connected(client)["webhook_secret"]
    clear_request(factory)
    first = deliver(anon, push_body(), secret, "72d3162e-cc78-11e3")
    assert first.status_code == 202, first.text
    assert first.json()["enqueued"] == ["c1"]
    assert requested(factory)

    clear_request(factory)  # the sync ran
    replay = deliver(anon, push_body(), secret, "72d3162e-cc78-11e3")
    assert replay.status_code == 202, replay.text
    assert replay.json()["enqueued"] == []
    assert "received before" in replay.json()["ignored"][0]
    assert not requested(factory)

    other = deliver(anon, push_body(after=OTHER_SHA), secret, "72d3162e-cc78-11e4")
    assert other.json()["enqueued"] == ["c1"]


def test_bitbucket_deliveries_are_remembered_by_their_request_uuid(
    client: TestClient, anon: TestClient, factory: SessionFactory
) -> None:
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    r = client.put(
        "/api/v1/clusters/c1/gitops",
        json={"url": "https://bitbucket.org/ws/slug.git", "provider": "bitbucket_cloud"},
    )
    secret = r.json()["webhook_secret"]
    body = json.dumps(
        {
            "repository": {"full_name": "ws/slug"},
            "push": {"changes": [{"new": {"type": "branch", "name": "main", "target": {"hash": SHA}}}]},
        }
    ).encode()

    def send(request_uuid: str) -> Any:
        headers = {
            "Content-Type": "application/json",
            "X-Event-Key": "repo:push",
            # the same for every delivery of one webhook: not a delivery id
            "X-Hook-UUID": "{5e1f1b3c-hook}",
            "X-Request-UUID": request_uuid,
            **webhooks.sign("bitbucket_cloud", body, secret.encode()),
        }
        return anon.post("/api/v1/webhooks/bitbucket-cloud", content=body, headers=headers)

    clear_request(factory)
    assert send("{0a8e-1}").json()["enqueued"] == ["c1"]
    clear_request(factory)
    assert send("{0a8e-1}").json()["enqueued"] == []
    assert send("{0a8e-2}").json()["enqueued"] == ["c1"]


def test_an_unsigned_delivery_cannot_take_a_delivery_id(
    client: TestClient, anon: TestClient, factory: SessionFactory
) -> None:
    secret = connected(client)["webhook_secret"]
    clear_request(factory)
    assert deliver(anon, push_body(), None, "d-1").status_code == 401
    assert deliver(anon, push_body(), "not-the-secret-at-all", "d-1").status_code == 401
    assert deliver(anon, push_body(), secret, "d-1").json()["enqueued"] == ["c1"]


def test_deliveries_are_remembered_across_a_restart(
    client: TestClient, anon: TestClient, factory: SessionFactory, tmp_path: Path, db_url: str, clock: Clock
) -> None:
    secret = connected(client)["webhook_secret"]
    assert deliver(anon, push_body(), secret, "d-1").json()["enqueued"] == ["c1"]
    clear_request(factory)
    settings = ServerSettings(data_dir=tmp_path, database_url=db_url, bootstrap_token=ADMIN_TOKEN)
    again = TestClient(create_app(settings, factory, FakeBus(), clock=clock, expire_jobs=False))
    assert deliver(again, push_body(), secret, "d-1").json()["enqueued"] == []


def test_a_delivery_without_an_id_is_not_deduplicated(
    client: TestClient, anon: TestClient, factory: SessionFactory
) -> None:
    secret = connected(client)["webhook_secret"]
    for _ in range(2):
        clear_request(factory)
        assert deliver(anon, push_body(), secret, None).json()["enqueued"] == ["c1"]


def test_remembered_deliveries_are_bounded_by_age_and_count(
    factory: SessionFactory, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "MAX_DELIVERIES_PER_PROVIDER", 3)
    with transaction(factory) as s:
        for i in range(5):
            assert store.remember_delivery(s, "github", f"d-{i}", clock() + timedelta(seconds=i))
        assert store.remember_delivery(s, "bitbucket_cloud", "d-0", clock())  # another provider
        ids = set(s.scalars(select(WebhookDelivery.delivery_id).where(WebhookDelivery.provider == "github")))
        assert ids == {"d-2", "d-3", "d-4"}
        assert not store.remember_delivery(s, "github", "d-4", clock() + timedelta(seconds=10))
        later = clock() + store.DELIVERY_MEMORY + timedelta(seconds=60)
        assert store.remember_delivery(s, "github", "d-9", later)
        left = s.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.provider == "github")
        )
        assert left == 1  # the old ones were forgotten
        assert store.remember_delivery(s, "github", "d-2", later)  # and may come again


# --------------------------------------------------------------------------- no oracle (item 7)


def test_unsigned_and_badly_signed_deliveries_answer_the_same_for_connected_and_unknown_repositories(
    client: TestClient, anon: TestClient
) -> None:
    secret = connected(client)["webhook_secret"]
    answers = {
        (repository, signer): deliver(anon, push_body(repository), signer, f"d-{repository}-{signer}")
        for repository in ("acme/platform", "acme/elsewhere", "nobody/nothing")
        for signer in (None, "a-wrong-secret-of-some-length", secret)
        if not (repository == "acme/platform" and signer == secret)
    }
    statuses = {key: r.status_code for key, r in answers.items()}
    bodies = {r.text for r in answers.values()}
    assert set(statuses.values()) == {401}, statuses
    assert len(bodies) == 1, bodies
    assert "acme" not in bodies.pop()


def test_a_correctly_signed_delivery_is_still_accepted(client: TestClient, anon: TestClient) -> None:
    secret = connected(client)["webhook_secret"]
    r = deliver(anon, push_body(), secret)
    assert r.status_code == 202
    assert r.json()["enqueued"] == ["c1"]


# --------------------------------------------------------------------------- webhook URL (item 12)


def test_the_webhook_url_never_comes_from_the_host_header(client: TestClient) -> None:
    connected(client)
    evil = {"Host": "evil.example"}
    answers = [
        client.get("/api/v1/clusters/c1/gitops/status", headers=evil),
        client.put("/api/v1/clusters/c1/gitops", json={"url": URL}, headers=evil),
        client.post("/api/v1/clusters/c1/gitops/webhook-secret/rotate", headers=evil),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.json()["git_repo"]["webhook_url"] == "http://127.0.0.1:8000/api/v1/webhooks/github"


@pytest.mark.parametrize(
    ("fields", "base"),
    [
        ({"public_url": "https://moorage.example.com/"}, "https://moorage.example.com"),
        ({"host": "10.0.0.5", "port": 9000}, "http://10.0.0.5:9000"),
        ({"host": "::1", "port": 9000}, "http://[::1]:9000"),
    ],
)
def test_base_url_comes_from_the_settings(tmp_path: Path, fields: dict[str, Any], base: str) -> None:
    assert ServerSettings(data_dir=tmp_path, **fields).base_url() == base


def test_a_wildcard_host_gives_the_machine_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "moorage-1")
    assert ServerSettings(data_dir=tmp_path, host="0.0.0.0").base_url()  # noqa: S104 == "http://moorage-1:8000"


# --------------------------------------------------------------------------- Stack Builder edit mode


def test_a_connection_pushes_stack_edits_until_told_to_open_pull_requests(
    client: TestClient, factory: SessionFactory
) -> None:
    assert connected(client)["git_repo"]["edit_mode"] == "push"
    clear_request(factory)
    r = client.patch("/api/v1/clusters/c1/gitops", json={"edit_mode": "pull_request"})
    assert r.status_code == 200, r.text
    assert r.json()["git_repo"]["edit_mode"] == "pull_request"
    assert not requested(factory)  # a setting, not a repoint: nothing is synced for it
    assert client.get("/api/v1/clusters/c1/gitops/status").json()["git_repo"]["edit_mode"] == "pull_request"
    # connecting again without saying keeps the mode; saying changes it
    again = client.put("/api/v1/clusters/c1/gitops", json={"url": URL})
    assert again.json()["git_repo"]["edit_mode"] == "pull_request"
    back = client.put("/api/v1/clusters/c1/gitops", json={"url": URL, "edit_mode": "push"})
    assert back.json()["git_repo"]["edit_mode"] == "push"


def test_an_unknown_edit_mode_or_an_unconnected_cluster_is_refused(client: TestClient) -> None:
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    r = client.patch("/api/v1/clusters/c1/gitops", json={"edit_mode": "pull_request"})
    assert r.status_code == 404
    assert "not connected to a Git repository" in r.json()["detail"]
    assert (
        client.put("/api/v1/clusters/c1/gitops", json={"url": URL, "edit_mode": "merge"}).status_code == 422
    )
    connected_ = client.put("/api/v1/clusters/c1/gitops", json={"url": URL, "edit_mode": "pull_request"})
    assert connected_.json()["git_repo"]["edit_mode"] == "pull_request"
    assert client.patch("/api/v1/clusters/c1/gitops", json={"edit_mode": "force"}).status_code == 422
    assert client.patch("/api/v1/clusters/c1/gitops", json={}).status_code == 422
