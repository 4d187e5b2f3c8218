"""kubectl tokens (issue 15): made by a user or an API token for one cluster, resolved again at every
use (role, revocation, expiry, disabled users), and the kubectl proxy's answers without an agent."""

import pytest
from fastapi.testclient import TestClient

from tests.unit.server.conftest import Clock

PASSWORD = "a long enough password 1234"


@pytest.fixture(autouse=True)
def no_identity_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request resolves its token again (the frozen test clock would outlive the cache)."""
    monkeypatch.setenv("MOORAGE_KUBE_PROXY_AUTH_CACHE_MS", "0")


def _kube(client: TestClient, token: str, path: str = "/api/v1/clusters/prod/kube/version") -> int:
    return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code


def _make(client: TestClient, cluster: str = "prod", **extra: object) -> dict[str, object]:
    r = client.post("/api/v1/kube-tokens", json={"cluster": cluster, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def test_a_kubectl_token_acts_as_the_api_token_that_made_it(client: TestClient, anon: TestClient) -> None:
    assert client.post("/api/v1/clusters", json={"name": "prod"}).status_code == 201
    made = _make(client)
    assert made["kube_user"] == "moorage:token:bootstrap"
    assert made["kube_groups"] == ["moorage:admin"]
    token = str(made["token"])
    assert token.startswith("mrgk_")
    # authenticated: the agent is not connected, so 503 (a Kubernetes Status), not 401
    r = anon.get("/api/v1/clusters/prod/kube/version", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503, r.text
    assert r.json()["kind"] == "Status"
    assert "not connected" in r.json()["message"]
    # never accepted as an API token, and no API token is accepted by the proxy
    assert anon.get("/api/v1/clusters", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _kube(anon, "test-bootstrap-admin-token-0123456789") == 401


def test_bound_to_its_cluster_revocable_and_expiring(
    client: TestClient, anon: TestClient, clock: Clock
) -> None:
    for name in ("prod", "dev"):
        assert client.post("/api/v1/clusters", json={"name": name}).status_code == 201
    made = _make(client, ttl_seconds=3600)
    token = str(made["token"])
    assert _kube(anon, token) == 503
    assert _kube(anon, token, "/api/v1/clusters/dev/kube/version") == 401
    clock.advance(3601)
    assert _kube(anon, token) == 401
    again = _make(client)
    assert _kube(anon, str(again["token"])) == 503
    assert client.delete(f"/api/v1/kube-tokens/{again['id']}").status_code == 200
    r = anon.get("/api/v1/clusters/prod/kube/version", headers={"Authorization": f"Bearer {again['token']}"})
    assert r.status_code == 401
    assert r.json()["kind"] == "Status"
    assert "revoked" in r.json()["message"]
    assert (
        client.post("/api/v1/kube-tokens", json={"cluster": "prod", "ttl_seconds": 10**9}).status_code == 422
    )
    assert client.post("/api/v1/kube-tokens", json={"cluster": "nope"}).status_code == 404


def test_a_users_token_follows_the_users_role_and_ends_when_disabled(
    client: TestClient, anon: TestClient, app: object
) -> None:
    assert client.post("/api/v1/clusters", json={"name": "prod"}).status_code == 201
    body = {"username": "alice", "role": "read", "password": PASSWORD}
    assert client.post("/api/v1/users", json=body).status_code == 201
    browser = TestClient(app)  # type: ignore[arg-type]
    signed = browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    csrf = {"X-CSRF-Token": signed.json()["csrf_token"]}
    r = browser.post("/api/v1/kube-tokens", json={"cluster": "prod"}, headers=csrf)
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["kube_user"], made["kube_groups"]) == ("moorage:user:alice", ["moorage:view"])
    assert [t["id"] for t in browser.get("/api/v1/kube-tokens").json()] == [made["id"]]
    assert _kube(anon, made["token"]) == 503
    assert client.patch("/api/v1/users/alice", json={"disabled": True}).status_code == 200
    assert _kube(anon, made["token"]) == 401


def test_a_revoked_api_tokens_kubectl_tokens_stop(client: TestClient, anon: TestClient) -> None:
    assert client.post("/api/v1/clusters", json={"name": "prod"}).status_code == 201
    api = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["write"]}).json()
    r = anon.post(
        "/api/v1/kube-tokens", json={"cluster": "prod"}, headers={"Authorization": f"Bearer {api['token']}"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["kube_groups"] == ["moorage:edit"]
    kube = r.json()["token"]
    assert _kube(anon, kube) == 503
    # the admin sees it; another token of the same name neither sees nor revokes it
    assert r.json()["id"] in [t["id"] for t in client.get("/api/v1/kube-tokens").json()]
    twin = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["write"]}).json()
    as_twin = {"Authorization": f"Bearer {twin['token']}"}
    assert anon.get("/api/v1/kube-tokens", headers=as_twin).json() == []
    assert anon.delete(f"/api/v1/kube-tokens/{r.json()['id']}", headers=as_twin).status_code == 404
    assert _kube(anon, kube) == 503
    assert client.delete(f"/api/v1/tokens/{api['id']}").status_code == 200
    assert _kube(anon, kube) == 401


def test_with_the_identity_cache_a_revocation_is_still_refused_at_once(
    client: TestClient, anon: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOORAGE_KUBE_PROXY_AUTH_CACHE_MS", "60000")
    assert client.post("/api/v1/clusters", json={"name": "prod"}).status_code == 201
    api = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}).json()
    made = anon.post(
        "/api/v1/kube-tokens", json={"cluster": "prod"}, headers={"Authorization": f"Bearer {api['token']}"}
    ).json()
    assert _kube(anon, made["token"]) == 503
    # revoking the API token elsewhere is seen when the cached identity expires (here: not yet)
    assert client.delete(f"/api/v1/tokens/{api['id']}").status_code == 200
    assert _kube(anon, made["token"]) == 503
    assert _kube(anon, made["token"], "/api/v1/clusters/other/kube/version") == 401  # bound to prod
    # revoking the kubectl token itself clears the cache: refused at once
    assert client.delete(f"/api/v1/kube-tokens/{made['id']}").status_code == 200
    assert _kube(anon, made["token"]) == 401
