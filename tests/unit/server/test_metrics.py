from datetime import timedelta

from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.spec.protocol import HeartbeatMessage
from tests.unit.server.conftest import Clock, example_bundle


def test_metrics_lag_clusters_and_counters(
    client: TestClient, anon: TestClient, factory: SessionFactory, clock: Clock
) -> None:
    cluster_id = client.post("/api/v1/clusters", json={"name": "c1"}).json()["id"]
    client.post("/api/v1/clusters", json={"name": "c2"})
    client.post("/api/v1/clusters/c1/apply", json={"files": example_bundle()})
    with transaction(factory) as s:
        beat = HeartbeatMessage(
            cluster_id=cluster_id, agent_version="0.1.0", last_sweep_at=clock.now - timedelta(seconds=42)
        )
        service.record_heartbeat(s, beat, now=clock.now)

    r = anon.get("/metrics")
    assert r.status_code == 200
    text = r.text
    assert f'moorage_native_engine_reconcile_loop_lag_seconds{{cluster_id="{cluster_id}"}} 42.0' in text
    assert 'moorage_clusters{state="online"} 1.0' in text
    assert 'moorage_clusters{state="never_connected"} 1.0' in text
    assert 'moorage_jobs_open{state="pending"} 1.0' in text
    assert 'moorage_jobs_total{state="success"} 0.0' in text
    assert 'moorage_operations_open{state="running"} 1.0' in text
    assert "# TYPE moorage_operations_total counter" in text

    clock.advance(60)
    assert (
        f'moorage_native_engine_reconcile_loop_lag_seconds{{cluster_id="{cluster_id}"}} 102.0'
        in anon.get("/metrics").text
    )
    clock.advance(200)
    assert 'moorage_clusters{state="offline"} 1.0' in anon.get("/metrics").text
