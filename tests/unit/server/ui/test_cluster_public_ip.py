"""The cluster's settings page shows the public IP its agent reports, and nothing when it reports none."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import Cluster
from moorage.spec.protocol import HeartbeatMessage
from tests.unit.server.conftest import HASHER
from tests.unit.server.ui.test_addon_page_engine import signed_in


def beat(factory: SessionFactory, public_ip: str | None) -> None:
    with transaction(factory) as s:
        cluster = s.scalar(select(Cluster).where(Cluster.name == "c1"))
        if cluster is None:
            cluster, _ = service.register_cluster(s, HASHER, "c1")
        message = HeartbeatMessage(cluster_id=cluster.id, agent_version="0.1.0", public_ip=public_ip)
        assert service.record_heartbeat(s, message)


def test_the_settings_page_shows_the_reported_public_ip(
    app: FastAPI, client: TestClient, factory: SessionFactory
) -> None:
    beat(factory, "203.0.113.7")
    browser = signed_in(app, client)
    page = browser.get("/clusters/c1/settings")
    assert page.status_code == 200
    assert 'public IP <span data-field="public-ip">203.0.113.7</span>' in page.text
    beat(factory, None)
    assert "public IP" not in browser.get("/clusters/c1/settings").text
