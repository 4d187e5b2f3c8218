import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.app import create_app
from moorage.server.db import SessionFactory, transaction
from moorage.server.settings import ServerSettings
from moorage.spec.protocol import JobAction, JobKind, JobMessage, JobState, ResultMessage
from tests.unit.server.conftest import ADMIN_TOKEN, Clock, FakeBus, example_bundle


def _setup(client: TestClient) -> str:
    cluster_id: str = client.post("/api/v1/clusters", json={"name": "c1"}).json()["id"]
    return cluster_id


def test_apply_valid_bundle_queues_one_write_job(client: TestClient, bus: FakeBus) -> None:
    cluster_id = _setup(client)
    files = example_bundle()
    r = client.post("/api/v1/clusters/c1/apply", json={"files": files, "root": "import-cluster.yaml"})
    assert r.status_code == 202, r.text
    op = r.json()
    assert op["kind"] == "apply"
    assert op["state"] == "running"
    assert op["created_by"] == "bootstrap"
    assert op["step_summary"] == {"total": 1, "succeeded": 0, "failed": 0, "running": 0, "pending": 1}
    [job] = op["jobs"]
    assert job["dispatched_at"] is not None

    [message] = bus.jobs
    assert message.job_id == job["id"]
    assert message.operation_id == op["id"]
    assert message.cluster_id == cluster_id
    assert message.kind is JobKind.WRITE
    assert message.action is JobAction.SYNC
    assert message.payload == {"files": files, "root": "import-cluster.yaml", "trigger": "auto", "held": []}
    assert message.timeout_seconds == 420

    shown = client.get(f"/api/v1/operations/{op['id']}").json()
    assert shown["jobs"][0]["state"] == "pending"
    listing = client.get("/api/v1/clusters/c1/operations").json()
    assert [o["id"] for o in listing["result"]] == [op["id"]]
    assert client.get("/api/v1/clusters/c1/operations?state=success").json()["result"] == []


def test_apply_wait_returns_the_final_operation(
    client: TestClient, bus: FakeBus, factory: SessionFactory
) -> None:
    cluster_id = _setup(client)
    publish = bus.publish_job

    async def publish_and_answer(job: JobMessage) -> None:
        await publish(job)

        async def agent() -> None:
            await asyncio.sleep(0.05)
            result = {
                "outcomes": {
                    "addon/webapp": {"status": "applied", "message": "installed", "health": "Healthy"}
                }
            }
            with transaction(factory) as s:
                service.record_result(
                    s,
                    ResultMessage(
                        job_id=job.job_id, cluster_id=cluster_id, state=JobState.SUCCESS, result=result
                    ),
                )

        asyncio.get_running_loop().create_task(agent())

    bus.publish_job = publish_and_answer  # type: ignore[method-assign]
    r = client.post("/api/v1/clusters/c1/apply?wait=5", json={"files": example_bundle()})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "success"

    op = client.get(f"/api/v1/operations/{r.json()['id']}").json()
    assert op["jobs"][0]["result"]["outcomes"]["addon/webapp"]["status"] == "applied"


def test_invalid_definition_is_422_with_hint(client: TestClient, bus: FakeBus) -> None:
    _setup(client)
    files = example_bundle()
    files["addons/webapp.yaml"] = files["addons/webapp.yaml"].replace("chart_version:", "chart_versoin:")
    r = client.post("/api/v1/clusters/c1/apply", json={"files": files})
    assert r.status_code == 422
    body = r.json()
    assert body["detail"].startswith("the definition has ")
    issue = next(e for e in body["errors"] if "chart_versoin" in e["message"] + e["path"])
    assert issue["file"] == "addons/webapp.yaml"
    assert issue["line"] > 0
    assert "did you mean" in (issue["hint"] + issue["message"]).lower()
    assert bus.jobs == []
    assert client.get("/api/v1/clusters/c1/operations").json()["result"] == []


def _apply_status(
    client: TestClient, files: dict[str, str], root: str = "import-cluster.yaml"
) -> tuple[int, str]:
    r = client.post("/api/v1/clusters/c1/apply", json={"files": files, "root": root})
    return r.status_code, r.json()["detail"]


def test_path_escapes_are_refused(client: TestClient, bus: FakeBus) -> None:
    _setup(client)
    base = example_bundle()
    for bad in ("../evil.yaml", "/etc/passwd", "a/../../b.yaml", "a//b.yaml", "./a.yaml", "a\\b.yaml", "~/x"):
        status, detail = _apply_status(client, {**base, bad: "x: 1"})
        assert status == 422, bad
        assert bad in detail or repr(bad) in detail, detail
    status, detail = _apply_status(client, base, root="../import-cluster.yaml")
    assert status == 422
    status, detail = _apply_status(client, base, root="missing.yaml")
    assert (status, detail) == (422, "the root file 'missing.yaml' is not in the bundle")
    status, detail = _apply_status(client, {f"f{i}.yaml": "" for i in range(501)}, root="f0.yaml")
    assert (status, detail) == (422, "the bundle holds 501 files; at most 500 are accepted")
    assert bus.jobs == []


def test_file_and_directory_clash(client: TestClient, bus: FakeBus) -> None:
    _setup(client)
    status, detail = _apply_status(client, {**example_bundle(), "addons/webapp.yaml/x.yaml": "a: 1"})
    assert status == 422
    assert "clashes" in detail
    assert bus.jobs == []


def test_oversized_bodies(client: TestClient, bus: FakeBus) -> None:
    _setup(client)
    big = {"files": {"import-cluster.yaml": "x" * (2 * 1024 * 1024)}}
    r = client.post("/api/v1/clusters/c1/apply", json=big)
    assert r.status_code == 413
    assert r.json() == {"detail": "request body exceeds the limit of 2097152 bytes"}

    # streamed without Content-Length: counted as it arrives
    data = json.dumps(big).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = client.post(
        "/api/v1/clusters/c1/apply", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["detail"] == "request body exceeds the limit of 2097152 bytes"

    # under the body limit, but too large for one job message
    r = client.post("/api/v1/clusters/c1/apply", json={"files": {"import-cluster.yaml": "x" * 1_500_000}})
    assert r.status_code == 413
    assert "one apply carries at most" in r.json()["detail"]
    assert bus.jobs == []


def test_malformed_json(client: TestClient, bus: FakeBus) -> None:
    _setup(client)
    r = client.post(
        "/api/v1/clusters/c1/apply", content=b'{"files": {', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("request body is not valid JSON:")
    r = client.post("/api/v1/clusters/c1/apply", json={"files": {"a.yaml": 1}})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("invalid request: body.files.a.yaml")
    assert "input" not in r.json()["errors"][0]
    # deeply nested JSON: a client error, and the server keeps serving
    r = client.post(
        "/api/v1/clusters/c1/apply", content=b"[" * 200_000, headers={"Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    r = client.post("/api/v1/clusters/c1/apply?wait=601", json={"files": example_bundle()})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("invalid request: query.wait")
    assert bus.jobs == []


def test_apply_to_unknown_cluster(client: TestClient) -> None:
    r = client.post("/api/v1/clusters/nope/apply", json={"files": example_bundle()})
    assert r.status_code == 404


def test_publish_failure_fails_the_job(client: TestClient, bus: FakeBus) -> None:
    _setup(client)
    bus.fail_publish = True
    r = client.post("/api/v1/clusters/c1/apply", json={"files": example_bundle()})
    assert r.status_code == 503
    assert "could not be queued" in r.json()["detail"]
    [op] = client.get("/api/v1/clusters/c1/operations").json()["result"]
    assert op["state"] == "failed"
    assert "NATS is not reachable" in op["jobs"][0]["messages"][0]


def test_cancel_pending_job(client: TestClient) -> None:
    _setup(client)
    op: dict[str, Any] = client.post("/api/v1/clusters/c1/apply", json={"files": example_bundle()}).json()
    r = client.post(f"/api/v1/operations/{op['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    assert r.json()["jobs"][0]["state"] == "cancelled"


def test_background_expiry_while_the_app_runs(
    tmp_path: Path, db_url: str, factory: SessionFactory, bus: FakeBus, clock: Clock
) -> None:
    settings = ServerSettings(
        data_dir=tmp_path, database_url=db_url, bootstrap_token=ADMIN_TOKEN, expire_interval_seconds=0.05
    )
    app = create_app(settings, factory, bus, clock=clock)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        c.post("/api/v1/clusters", json={"name": "c1"})
        op_id = c.post("/api/v1/clusters/c1/apply", json={"files": example_bundle()}).json()["id"]
        clock.advance(service.PENDING_MAX_AGE.total_seconds() + 1)  # never started: queued for a day
        deadline = time.monotonic() + 5
        while c.get(f"/api/v1/operations/{op_id}").json()["state"] != "failed":
            assert time.monotonic() < deadline, "the job never expired"
            time.sleep(0.05)
        assert c.get(f"/api/v1/operations/{op_id}").json()["jobs"][0]["state"] == "timeout"
