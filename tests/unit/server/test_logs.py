from fastapi.testclient import TestClient

from moorage.spec.protocol import JobAction, LogChunk
from tests.unit.server.conftest import FakeBus


def test_pod_logs_are_streamed_as_server_sent_events(client: TestClient, bus: FakeBus) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
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


def test_an_agent_error_ends_the_stream_with_an_error_event(client: TestClient, bus: FakeBus) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    bus.log_chunks = [LogChunk(end=True, error="pod apps/web-0 not found")]
    with client.stream("GET", "/api/v1/clusters/c1/logs/apps/web-0") as response:
        body = response.read().decode()
    assert "event: error\ndata: pod apps/web-0 not found\n\n" in body
    assert body.endswith("event: end\ndata: \n\n")


def test_logs_of_an_unknown_cluster_are_404(client: TestClient, bus: FakeBus) -> None:
    assert client.get("/api/v1/clusters/nope/logs/apps/web-0").status_code == 404
    assert bus.jobs == []
