"""Upgrade Agent through the API: POST /clusters/{name}/agent/upgrade queues one write job for the
agent (action upgrade_agent, the chart and version only), refuses a version or chart reference that
is not one (and credentials in the reference) before anything is queued, and the cluster shows the
chart version the agent's heartbeat reports. The agent's side: tests/unit/agent/test_selfupgrade.py
and tests/integration/test_agent_upgrade.py."""

import pytest
from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.db.session import SessionFactory, transaction
from moorage.spec.protocol import HeartbeatMessage, JobAction, JobKind
from tests.unit.server.conftest import FakeBus

CHART = "oci://registry.example.com/charts/moorage-agent"


def test_the_upgrade_is_one_write_job_for_the_agent(client: TestClient, bus: FakeBus) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    r = client.post("/api/v1/clusters/c1/agent/upgrade?wait=0", json={"version": "0.2.0", "chart": CHART})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["operation_state"] == "running"
    (job,) = bus.jobs
    assert (job.action, job.kind) == (JobAction.UPGRADE_AGENT, JobKind.WRITE)
    assert job.payload == {"chart": CHART, "version": "0.2.0"}
    assert job.operation_id == body["operation_id"]
    assert client.get(f"/api/v1/operations/{body['operation_id']}").json()["kind"] == "upgrade_agent"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": "latest", "chart": CHART}, "version"),
        ({"version": "0.2.0", "chart": "registry.example.com/moorage-agent"}, "chart"),
        ({"version": "0.2.0", "chart": "oci://user:secret@registry.example.com/moorage-agent"}, "chart"),
        ({"version": "0.2.0"}, "chart"),
        ({"version": "0.2.0", "chart": CHART, "values": {"a": 1}}, "values"),
    ],
)
def test_refused_before_anything_is_queued(
    client: TestClient, bus: FakeBus, body: dict[str, object], field: str
) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    r = client.post("/api/v1/clusters/c1/agent/upgrade?wait=0", json=body)
    assert r.status_code == 422
    assert field in r.text
    assert "secret" not in r.text
    assert bus.jobs == []


def test_an_unknown_cluster(client: TestClient, bus: FakeBus) -> None:
    r = client.post("/api/v1/clusters/nope/agent/upgrade?wait=0", json={"version": "0.2.0", "chart": CHART})
    assert r.status_code == 404
    assert bus.jobs == []


def test_the_cluster_shows_the_chart_version_its_agent_reports(
    client: TestClient, factory: SessionFactory
) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    assert client.get("/api/v1/clusters/c1").json()["chart_version"] is None
    with transaction(factory) as s:
        cid = service.get_cluster(s, "c1").id
        service.record_heartbeat(
            s, HeartbeatMessage(cluster_id=cid, agent_version="0.1.0", chart_version="0.2.0")
        )
    got = client.get("/api/v1/clusters/c1").json()
    assert (got["agent_version"], got["chart_version"]) == ("0.1.0", "0.2.0")
