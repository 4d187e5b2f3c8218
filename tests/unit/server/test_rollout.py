"""The fleet roll-forward in the server (server/rollout.py, api/fleet.py): a round queues Upgrade
Agent jobs for the first batch only, leaves opted-out clusters alone (PATCH /clusters/{name}), and a
failed job stops the roll-out, which GET /fleet/rollout reports with the job's reason. The chart
source is not asked here (the target is given); tests/integration/test_fleet_rollout.py does that."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.db import make_engine, make_session_factory, migrate
from moorage.server.db.session import SessionFactory, transaction
from moorage.server.rollout import BATCH_KEY, CREATED_BY, RollForward, chart_location, round_
from moorage.server.settings import ServerSettings
from moorage.spec.protocol import HeartbeatMessage, JobAction, JobState, ResultMessage
from tests import postgres
from tests.unit.server.conftest import HASHER, Clock, FakeBus

CHART = "oci://registry.example.com/charts/moorage-agent"


def online(factory: SessionFactory, clock: Clock, name: str, chart: str = "0.1.0") -> None:
    with transaction(factory) as s:
        cid = service.get_cluster(s, name).id
        service.record_heartbeat(
            s, HeartbeatMessage(cluster_id=cid, agent_version="0.1.0", chart_version=chart), clock()
        )


@pytest.fixture
def loop(app: FastAPI, factory: SessionFactory, bus: FakeBus, clock: Clock) -> RollForward:
    settings = app.state.moorage.settings.model_copy(
        update={"agent_chart": CHART, "roll_forward_batch_size": 1, "roll_forward_pause_seconds": 0}
    )
    found = RollForward(settings, factory, bus, clock)
    found.target, found.checked_at = "0.2.0", clock()  # as if the source had answered
    app.state.roll_forward = found
    return found


def test_off_without_a_chart_source(client: TestClient) -> None:
    body = client.get("/api/v1/fleet/rollout").json()
    assert (body["enabled"], body["state"]) == (False, "off")
    assert "MOORAGE_AGENT_CHART" in body["how"]


def test_opting_out(client: TestClient) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    assert client.get("/api/v1/clusters/c1").json()["agent_roll_forward"] is True
    r = client.patch("/api/v1/clusters/c1", json={"agent_roll_forward": False})
    assert r.status_code == 200, r.text
    assert r.json()["agent_roll_forward"] is False
    assert client.get("/api/v1/clusters/c1").json()["agent_roll_forward"] is False
    assert client.patch("/api/v1/clusters/c1", json={"agent_roll_forward": "maybe"}).status_code == 422
    assert client.patch("/api/v1/clusters/c1", json={"name": "x"}).status_code == 422
    assert client.patch("/api/v1/clusters/nope", json={"agent_roll_forward": False}).status_code == 404


def test_batches_opt_out_and_the_first_failure_stops_it(
    client: TestClient, factory: SessionFactory, bus: FakeBus, clock: Clock, loop: RollForward
) -> None:
    for name in ("a", "b", "c"):
        client.post("/api/v1/clusters", json={"name": name})
        online(factory, clock, name)
    client.patch("/api/v1/clusters/b", json={"agent_roll_forward": False})

    plan = asyncio.run(loop.step(refresh=False))
    assert plan is not None
    assert (plan.start, plan.batch) == (("a",), 1)
    (job,) = bus.jobs
    assert job.action is JobAction.UPGRADE_AGENT
    assert job.payload == {"chart": CHART, "version": "0.2.0", BATCH_KEY: 1}
    op = client.get(f"/api/v1/operations/{job.operation_id}").json()
    assert (op["kind"], op["created_by"]) == ("upgrade_agent", CREATED_BY)

    asyncio.run(loop.step(refresh=False))  # batch 1 runs: nothing new
    assert len(bus.jobs) == 1
    status = client.get("/api/v1/fleet/rollout").json()
    assert (status["state"], status["target"], status["batches"]) == ("rolling", "0.2.0", [["a"]])
    parts = {c["cluster"]: c["status"] for c in status["clusters"]}
    assert parts == {"a": "upgrading", "b": "opted_out", "c": "pending"}

    # a's job succeeds and its new agent reports 0.2.0: batch 2 is c, never b
    with transaction(factory) as s:
        service.record_result(
            s, ResultMessage(job_id=job.job_id, cluster_id=job.cluster_id, state=JobState.SUCCESS), clock()
        )
    online(factory, clock, "a", "0.2.0")
    clock.advance(1)
    asyncio.run(loop.step(refresh=False))
    assert [j.payload[BATCH_KEY] for j in bus.jobs] == [1, 2]
    second = bus.jobs[1]
    with transaction(factory) as s:
        assert service.get_cluster(s, "c").id == second.cluster_id
        result = ResultMessage(
            job_id=second.job_id,
            cluster_id=second.cluster_id,
            state=JobState.FAILED,
            messages=[
                "upgrading moorage/moorage-agent from chart 0.1.0 to 0.2.0 failed; the agent keeps running"
            ],
        )
        service.record_result(s, result, clock())
    asyncio.run(loop.step(refresh=False))
    assert len(bus.jobs) == 2  # stopped
    status = client.get("/api/v1/fleet/rollout").json()
    assert status["state"] == "failed"
    assert status["failure"].startswith("cluster c (batch 2): upgrading moorage/moorage-agent")
    assert status["progress"] == {"upgraded": 1, "total": 2}


def test_a_job_that_cannot_be_queued_fails_the_roll_out(
    client: TestClient, factory: SessionFactory, bus: FakeBus, clock: Clock, loop: RollForward
) -> None:
    client.post("/api/v1/clusters", json={"name": "a"})
    online(factory, clock, "a")
    bus.fail_publish = True
    asyncio.run(loop.step(refresh=False))
    status = client.get("/api/v1/fleet/rollout").json()
    assert status["state"] == "failed"
    assert "could not be queued for the agent: NATS is not reachable" in status["failure"]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            "oci://registry.example.com/charts/moorage-agent",
            ("oci://registry.example.com/charts", "moorage-agent"),
        ),
        ("https://charts.example.com/moorage/", ("https://charts.example.com/moorage", "moorage-agent")),
    ],
)
def test_chart_location(reference: str, expected: tuple[str, str]) -> None:
    assert chart_location(reference) == expected


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if reason := postgres.available():
        pytest.skip(reason)
    with postgres.running_postgres() as url:
        migrate(url)
        yield url


def test_two_replicas_on_postgresql_queue_a_batch_once(pg_url: str, tmp_path: Path, clock: Clock) -> None:
    """A round is taken by one replica (leases.try_round); the other skips it, and its next round
    sees the operations the first one committed, so no cluster is asked twice."""
    settings = ServerSettings(data_dir=tmp_path, database_url=pg_url, agent_chart=CHART)
    a, b = make_engine(pg_url), make_engine(pg_url)
    try:
        fa, fb = make_session_factory(a), make_session_factory(b)
        name = f"pg-{uuid.uuid4().hex[:6]}"
        with transaction(fa) as s:
            cluster, _ = service.register_cluster(s, HASHER, name)
            beat = HeartbeatMessage(cluster_id=cluster.id, agent_version="0.1.0", chart_version="0.1.0")
            service.record_heartbeat(s, beat, clock())
        with transaction(fa) as sa:
            first = round_(sa, settings, "9.0.0", clock())
            with transaction(fb) as sb:
                assert round_(sb, settings, "9.0.0", clock()) is None  # A is doing this round
        assert first is not None
        assert name in first[0].start
        assert [m.cluster_id for m in first[1] if m.cluster_id == cluster.id] == [cluster.id]
        with transaction(fb) as sb:
            second = round_(sb, settings, "9.0.0", clock())
        assert second is not None
        assert name not in second[0].start
        assert [m for m in second[1] if m.cluster_id == cluster.id] == []
    finally:
        a.dispose()
        b.dispose()
