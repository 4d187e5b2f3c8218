from fastapi.testclient import TestClient

from tests.unit.server.conftest import ADMIN_TOKEN


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_token(anon: TestClient) -> None:
    r = anon.get("/api/v1/clusters")
    assert r.status_code == 401
    assert r.json() == {"detail": "missing bearer token"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_wrong_scheme_is_missing(anon: TestClient) -> None:
    r = anon.get("/api/v1/clusters", headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert r.status_code == 401
    assert r.json()["detail"] == "missing bearer token"


def test_unknown_token(anon: TestClient) -> None:
    r = anon.get("/api/v1/clusters", headers=_bearer("mrg_not-a-real-token"))
    assert r.status_code == 401
    assert r.json() == {"detail": "unknown or revoked token"}
    assert "mrg_not-a-real-token" not in r.text


def test_token_lifecycle_scopes_and_revocation(client: TestClient, anon: TestClient) -> None:
    r = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]})
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    assert token.startswith("mrg_")
    assert len(token) == 4 + 43
    assert created["scopes"] == ["read"]

    # listed without the secret
    listing = client.get("/api/v1/tokens").json()
    assert token not in str(listing)
    assert {t["name"] for t in listing} == {"bootstrap", "ci"}

    assert anon.get("/api/v1/clusters", headers=_bearer(token)).status_code == 200
    r = anon.post("/api/v1/clusters", json={"name": "c1"}, headers=_bearer(token))
    assert r.status_code == 403
    assert r.json() == {"detail": "token lacks scope 'write'"}
    r = anon.get("/api/v1/tokens", headers=_bearer(token))
    assert r.status_code == 403
    assert r.json() == {"detail": "token lacks scope 'admin'"}

    revoked = client.delete(f"/api/v1/tokens/{created['id']}").json()
    assert revoked["revoked"] is True
    r = anon.get("/api/v1/clusters", headers=_bearer(token))
    assert r.status_code == 401
    assert r.json() == {"detail": "unknown or revoked token"}


def test_write_implies_read(client: TestClient, anon: TestClient) -> None:
    token = client.post("/api/v1/tokens", json={"name": "w", "scopes": ["write"]}).json()["token"]
    assert anon.post("/api/v1/clusters", json={"name": "c1"}, headers=_bearer(token)).status_code == 201
    assert anon.get("/api/v1/clusters/c1", headers=_bearer(token)).status_code == 200


def test_unknown_scope_rejected(client: TestClient) -> None:
    r = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["root"]})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("invalid request: body.scopes.0")


def test_agent_token_is_not_an_api_token(client: TestClient, anon: TestClient) -> None:
    agent_token = client.post("/api/v1/clusters", json={"name": "c1"}).json()["agent_token"]
    r = anon.get("/api/v1/clusters", headers=_bearer(agent_token))
    assert r.status_code == 401
    assert r.json()["detail"] == "agent tokens are accepted only by /api/v1/agent endpoints"
