"""The cluster settings page: the agent's chart version, Upgrade Agent (a version and chart field and
the button, for writers and admins only, as the route allows) and the fleet roll-forward opt-out."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.spec.protocol import HeartbeatMessage
from tests.unit.server.ui.test_addon_page_engine import signed_in


def beat(client: TestClient, factory: SessionFactory) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    with transaction(factory) as s:
        cid = service.get_cluster(s, "c1").id
        service.record_heartbeat(
            s, HeartbeatMessage(cluster_id=cid, agent_version="0.1.0", chart_version="0.1.0")
        )


def test_a_writer_gets_the_form_and_the_toggle(
    app: FastAPI, client: TestClient, factory: SessionFactory
) -> None:
    beat(client, factory)
    page = signed_in(app, client, "write").get("/clusters/c1/settings").text
    assert '<span data-field="chart-version">0.1.0</span>' in page
    assert 'id="upgrade-agent"' in page
    assert 'data-url="/api/v1/clusters/c1/agent/upgrade"' in page
    assert 'id="roll-forward" data-url="/api/v1/clusters/c1" checked' in page
    assert "Off on this server (set <code>MOORAGE_AGENT_CHART</code>)" in page
    client.patch("/api/v1/clusters/c1", json={"agent_roll_forward": False})
    page = signed_in_again(app).get("/clusters/c1/settings").text
    assert 'id="roll-forward" data-url="/api/v1/clusters/c1"  >' in page


def signed_in_again(app: FastAPI) -> TestClient:
    from tests.unit.server.ui.test_addon_page_engine import PASSWORD

    browser = TestClient(app)
    assert browser.post("/api/v1/session", json={"username": "ann", "password": PASSWORD}).status_code == 200
    return browser


def test_a_reader_sees_the_version_but_no_button(
    app: FastAPI, client: TestClient, factory: SessionFactory
) -> None:
    beat(client, factory)
    page = signed_in(app, client, "read").get("/clusters/c1/settings").text
    assert '<span data-field="chart-version">0.1.0</span>' in page
    assert 'id="upgrade-agent"' not in page
    assert "Writers and admins can upgrade the agent here." in page
    assert "checked disabled" in page
