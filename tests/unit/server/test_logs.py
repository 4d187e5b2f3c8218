import asyncio

import pytest
from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.api import resources
from moorage.server.db import SessionFactory, transaction
from moorage.spec.protocol import HeartbeatMessage, JobAction, JobMessage, JobState, LogChunk, ResultMessage
from tests.unit.server.conftest import Clock, FakeBus


def online(client: TestClient, factory: SessionFactory, clock: Clock, name: str = "c1") -> str:
    """A registered cluster whose agent just sent a heartbeat."""
    cluster_id: str = client.post("/api/v1/clusters", json={"name": name}).json()["id"]
    with transaction(factory) as s:
        service.record_heartbeat(s, HeartbeatMessage(cluster_id=cluster_id, agent_version="t"), clock())
    return cluster_id


def test_pod_logs_are_streamed_as_server_sent_events(
    client: TestClient, bus: FakeBus, factory: SessionFactory, clock: Clock
) -> None:
    online(client, factory, clock)
    bus.log_chunks = [LogChunk(lines=["first", "second"]), LogChunk(lines=["third"]), LogChunk(end=True)]
    with client.stream("GET", "/api/v1/clusters/c1/logs/apps/web-0", params={"tail": 10}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    assert body == "data: first\n\ndata: second\n\ndata: third\n\nevent: end\ndata: \n\n"
    (job,) = bus.jobs
    assert job.action is JobAction.LOGS
    assert job.payload["pod"] == "web-0"
    assert job.payload["tail_lines"] == 10
    assert bus.log_streams == [(job.cluster_id, job.payload["stream_id"])]


def test_an_agent_error_ends_the_stream_with_an_error_event(
    client: TestClient, bus: FakeBus, factory: SessionFactory, clock: Clock
) -> None:
    online(client, factory, clock)
    bus.log_chunks = [LogChunk(end=True, error="pod apps/web-0 not found")]
    with client.stream("GET", "/api/v1/clusters/c1/logs/apps/web-0") as response:
        body = response.read().decode()
    assert "event: error\ndata: pod apps/web-0 not found\n\n" in body
    assert body.endswith("event: end\ndata: \n\n")


def test_logs_of_an_unknown_cluster_are_404(client: TestClient, bus: FakeBus) -> None:
    assert client.get("/api/v1/clusters/nope/logs/apps/web-0").status_code == 404
    assert bus.jobs == []


def test_reads_of_a_cluster_whose_agent_is_offline_are_refused_at_once(
    client: TestClient, bus: FakeBus
) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    for path in ("/api/v1/clusters/c1/kinds", "/api/v1/clusters/c1/logs/apps/web-0"):
        response = client.get(path)
        assert response.status_code == 503
        assert "not connected" in response.json()["detail"]
        assert "moorage agent" in response.json()["detail"]
    assert bus.jobs == []  # nothing queued to run a day later


def test_a_read_is_answered_as_soon_as_its_result_is_recorded(
    client: TestClient, bus: FakeBus, factory: SessionFactory, clock: Clock
) -> None:
    cluster_id = online(client, factory, clock)
    app = client.app
    waiters = app.state.moorage.job_waiters  # type: ignore[attr-defined]

    async def answer(job: JobMessage) -> None:
        bus.jobs.append(job)

        async def later() -> None:
            await asyncio.sleep(0.05)
            with transaction(factory) as s:
                message = ResultMessage(
                    job_id=job.job_id, cluster_id=cluster_id, state=JobState.SUCCESS, result={"kinds": []}
                )
                service.record_result(s, message)
            waiters.done(job.job_id)

        asyncio.get_running_loop().create_task(later())

    bus.publish_job = answer  # type: ignore[method-assign]
    response = client.get("/api/v1/clusters/c1/kinds")
    assert response.status_code == 200
    assert response.json() == {"kinds": []}


def test_a_read_nobody_answers_is_cancelled_when_the_request_gives_up(
    client: TestClient, bus: FakeBus, factory: SessionFactory, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    online(client, factory, clock)
    monkeypatch.setattr(resources, "READ_TIMEOUT_SECONDS", 1)
    response = client.get("/api/v1/clusters/c1/kinds")
    assert response.status_code == 504
    (job,) = bus.jobs
    assert bus.cancelled == [(job.cluster_id, [job.job_id])]
    with transaction(factory) as s:
        assert service.get_operation(s, job.operation_id).state == "cancelled"
