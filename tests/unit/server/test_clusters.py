from fastapi.testclient import TestClient

from tests.unit.server.conftest import FakeBus


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_list_get_delete(client: TestClient, bus: FakeBus) -> None:
    r = client.post("/api/v1/clusters", json={"name": "prod-eu", "description": "EU"})
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "prod-eu"
    assert body["state"] == "never_connected"
    assert body["agent_token"].startswith("mrga_")
    assert bus.agents_changed_calls == 1

    # the token is shown once
    assert "agent_token" not in client.get("/api/v1/clusters/prod-eu").json()
    listing = client.get("/api/v1/clusters").json()
    assert [c["name"] for c in listing["result"]] == ["prod-eu"]
    assert listing["pagination"] == {"page": 1, "page_size": 25, "total_pages": 1, "total_count": 1}

    r = client.post("/api/v1/clusters", json={"name": "prod-eu"})
    assert r.status_code == 409
    assert r.json()["detail"] == "a cluster named 'prod-eu' already exists"

    assert client.delete("/api/v1/clusters/prod-eu").status_code == 200
    assert bus.agents_changed_calls == 2
    r = client.get("/api/v1/clusters/prod-eu")
    assert r.status_code == 404
    assert r.json()["detail"] == "no cluster named 'prod-eu'"


def test_invalid_cluster_name(client: TestClient) -> None:
    r = client.post("/api/v1/clusters", json={"name": "Prod_EU"})
    assert r.status_code == 422
    assert "invalid cluster name 'Prod_EU'" in r.json()["detail"]


def test_agent_register_revoke_rotate(client: TestClient, anon: TestClient, bus: FakeBus) -> None:
    created = client.post("/api/v1/clusters", json={"name": "c1"}).json()
    token = created["agent_token"]

    r = anon.post("/api/v1/agent/register", headers=_bearer(token))
    assert r.status_code == 200
    body = r.json()
    # the key that opens the registry credentials sealed into this cluster's jobs (server/registries.py)
    assert body.pop("seal_identity").startswith("AGE-SECRET-KEY-1")
    assert body == {
        "cluster_id": created["id"],
        "cluster_name": "c1",
        "nats_url": "nats://127.0.0.1:4222",
        "nats_user": f"agent-{created['id']}",
        "inbox_prefix": f"_INBOX_{created['id']}",
        "nats_ca": None,  # an external NATS without MOORAGE_NATS_CA: the agent uses the system's CAs
    }
    # an API token is no agent token
    r = client.post("/api/v1/agent/register")
    assert r.status_code == 401
    assert r.json()["detail"] == "unknown or revoked agent token"

    r = client.post("/api/v1/clusters/c1/agent-token/revoke")
    assert r.status_code == 200
    assert r.json()["agent_token_revoked"] is True
    assert bus.agents_changed_calls == 2
    r = anon.post("/api/v1/agent/register", headers=_bearer(token))
    assert r.status_code == 401
    assert r.json()["detail"] == "unknown or revoked agent token"

    rotated = client.post("/api/v1/clusters/c1/agent-token/rotate").json()
    assert rotated["agent_token"] != token
    assert bus.agents_changed_calls == 3
    assert anon.post("/api/v1/agent/register", headers=_bearer(rotated["agent_token"])).status_code == 200
    assert anon.post("/api/v1/agent/register", headers=_bearer(token)).status_code == 401


def test_rotate_invalidates_old_token_without_revoke(client: TestClient, anon: TestClient) -> None:
    token = client.post("/api/v1/clusters", json={"name": "c1"}).json()["agent_token"]
    client.post("/api/v1/clusters/c1/agent-token/rotate")
    assert anon.post("/api/v1/agent/register", headers=_bearer(token)).status_code == 401


def test_addons_before_any_sync(client: TestClient) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    body = client.get("/api/v1/clusters/c1/addons").json()
    assert body["result"] == []
    assert body["total"] == 0
    assert body["agent"] == "never_connected"
    assert set(body["counts"]) == {"Pending", "Deploying", "Synced", "Degraded", "OutOfSync", "Unknown"}


def test_healthz(anon: TestClient) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}


def test_openapi_docs(anon: TestClient) -> None:
    assert anon.get("/docs").status_code == 200
    paths = anon.get("/openapi.json").json()["paths"]
    assert "/api/v1/clusters/{name}/apply" in paths
