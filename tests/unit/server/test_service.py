from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.server import service
from moorage.server.db import SessionFactory, make_engine, make_session_factory, migrate, transaction
from moorage.server.db.models import Job
from moorage.server.service import Report
from moorage.spec.protocol import FINAL_JOB_STATES, HeartbeatMessage, JobAction, JobState, ResultMessage
from tests.unit.server.conftest import HASHER

T0 = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------- pure ordering of reports

reports = st.builds(
    Report,
    state=st.sampled_from(list(JobState)),
    source=st.sampled_from([service.Source.AGENT, service.Source.SERVER]),
    at=st.integers(0, 5).map(lambda s: T0 + timedelta(seconds=s)),
)


def _fold(start: Report, items: list[Report]) -> Report:
    current = start
    for r in items:
        if service.supersedes(r, current):
            current = r
    return current


@given(st.lists(reports, max_size=8), st.randoms())
def test_any_order_of_reports_ends_the_same(items: list[Report], rnd: object) -> None:
    start = Report(JobState.PENDING, service.Source.SERVER, T0)
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert _fold(start, items) == _fold(start, shuffled)


@given(st.lists(reports, min_size=1, max_size=8))
def test_a_final_state_is_never_left_for_an_open_one(items: list[Report]) -> None:
    current = Report(JobState.PENDING, service.Source.SERVER, T0)
    reached_final = False
    for r in items:
        if service.supersedes(r, current):
            current = r
        reached_final = reached_final or current.state in FINAL_JOB_STATES
        assert not reached_final or current.state in FINAL_JOB_STATES


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([JobState.PENDING], "running"),
        ([JobState.SUCCESS, JobState.RUNNING], "running"),
        ([JobState.SUCCESS, JobState.CANCELLING], "stopping"),
        ([JobState.SUCCESS, JobState.SUCCESS], "success"),
        ([JobState.SUCCESS, JobState.TIMEOUT], "failed"),
        ([JobState.CANCELLED, JobState.FAILED], "failed"),
        ([JobState.CANCELLED, JobState.SUCCESS], "cancelled"),
    ],
)
def test_operation_state_from_jobs(states: list[JobState], expected: str) -> None:
    assert service.derive_operation_state(states) == expected


# ---------------------------------------------------------------- against the database


@pytest.fixture(scope="module")
def shared_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionFactory]:
    """One database for the property test below (hypothesis runs many examples per test call)."""
    path: Path = tmp_path_factory.mktemp("results") / "moorage.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        service.register_cluster(s, HASHER, "shared")
    yield factory
    engine.dispose()


def _new_job(factory: SessionFactory, name: str) -> tuple[str, str, str]:
    with transaction(factory) as s:
        try:
            cluster = service.get_cluster(s, name)
        except service.NotFound:
            cluster, _ = service.register_cluster(s, HASHER, name)
        op, msg = service.create_operation_with_job(
            s, cluster, action=JobAction.SYNC, payload={}, timeout_seconds=60, operation_kind="apply", now=T0
        )
        return cluster.id, op.id, msg.job_id


results = st.builds(
    lambda state, second, n: (state, T0 + timedelta(seconds=second), n),
    st.sampled_from([JobState.RUNNING, JobState.SUCCESS, JobState.FAILED, JobState.CANCELLED]),
    st.integers(1, 4),
    st.integers(0, 1000),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(results, min_size=1, max_size=6), st.permutations(range(6)))
def test_record_result_in_any_order_and_twice(
    shared_factory: SessionFactory, items: list[tuple[JobState, datetime, int]], perm: list[int]
) -> None:
    ends = []
    for order in ([i for i in perm if i < len(items)], list(range(len(items)))):
        cluster_id, op_id, job_id = _new_job(shared_factory, "shared")
        for i in [*order, *order]:  # every result delivered twice, each in its own transaction
            state, at, n = items[i]
            with transaction(shared_factory) as s:
                service.record_result(
                    s,
                    ResultMessage(job_id=job_id, cluster_id=cluster_id, state=state, at=at, result={"n": n}),
                )
        with transaction(shared_factory) as s:
            op = service.get_operation(s, op_id)
            ends.append((op.state, op.jobs[0].state, op.jobs[0].finished_at))
    assert ends[0] == ends[1]


def test_record_result_details(factory: SessionFactory) -> None:
    cluster_id, op_id, job_id = _new_job(factory, "c1")
    with transaction(factory) as s:
        assert service.record_result(
            s,
            ResultMessage(
                job_id=job_id, cluster_id=cluster_id, state=JobState.RUNNING, at=T0, messages=["start"]
            ),
        )
        # another cluster cannot report this job
        assert not service.record_result(
            s, ResultMessage(job_id=job_id, cluster_id="other", state=JobState.FAILED, at=T0)
        )
        assert not service.record_result(
            s, ResultMessage(job_id="nope", cluster_id=cluster_id, state=JobState.FAILED)
        )
        done = ResultMessage(
            job_id=job_id,
            cluster_id=cluster_id,
            state=JobState.SUCCESS,
            at=T0 + timedelta(seconds=5),
            messages=["start", "done"],
            result={"outcomes": {}},
        )
        assert service.record_result(s, done)
        assert not service.record_result(s, done)  # idempotent
        late_running = ResultMessage(
            job_id=job_id, cluster_id=cluster_id, state=JobState.RUNNING, at=T0 + timedelta(seconds=9)
        )
        assert not service.record_result(s, late_running)
    with transaction(factory) as s:
        op = service.get_operation(s, op_id)
        job = op.jobs[0]
        assert (op.state, job.state) == ("success", "success")
        assert job.messages == ["start", "done"]
        assert job.result == {"outcomes": {}}
        assert job.started_at == T0
        assert job.finished_at == T0 + timedelta(seconds=5)
        assert op.finished_at is not None


def test_naive_timestamps_from_an_agent_are_utc(factory: SessionFactory) -> None:
    cluster_id, op_id, job_id = _new_job(factory, "c1")
    with transaction(factory) as s:
        naive = datetime(2026, 5, 20, 12, 0, 5)
        msg = ResultMessage(job_id=job_id, cluster_id=cluster_id, state=JobState.SUCCESS, at=naive)
        assert service.record_result(s, msg)
    with transaction(factory) as s:
        assert service.get_operation(s, op_id).jobs[0].finished_at == T0 + timedelta(seconds=5)


def test_expire_jobs_and_a_late_agent_result(factory: SessionFactory) -> None:
    cluster_id, op_id, job_id = _new_job(factory, "c1")  # timeout 60 s, created at T0, never started
    with transaction(factory) as s:
        # a pending job waits for its (offline) agent: it runs when the agent reconnects
        assert service.expire_jobs(s, T0 + timedelta(hours=23)) == []
        assert service.expire_jobs(s, T0 + service.PENDING_MAX_AGE + timedelta(seconds=1)) == [job_id]
        assert service.expire_jobs(s, T0 + timedelta(days=3)) == []  # already final
    with transaction(factory) as s:
        op = service.get_operation(s, op_id)
        assert (op.state, op.jobs[0].state) == ("failed", "timeout")
        assert op.jobs[0].messages[-1] == "never started (server)"
        # the agent did finish after all: its word beats the server's guess
        service.record_result(
            s,
            ResultMessage(
                job_id=job_id, cluster_id=cluster_id, state=JobState.SUCCESS, at=T0 + timedelta(seconds=80)
            ),
        )
    with transaction(factory) as s:
        assert service.get_operation(s, op_id).state == "success"


def test_running_job_expires_from_its_start(factory: SessionFactory) -> None:
    cluster_id, _, job_id = _new_job(factory, "c1")
    with transaction(factory) as s:
        service.record_result(
            s,
            ResultMessage(
                job_id=job_id, cluster_id=cluster_id, state=JobState.RUNNING, at=T0 + timedelta(seconds=50)
            ),
        )
    with transaction(factory) as s:
        assert service.expire_jobs(s, T0 + timedelta(seconds=100)) == []
        assert service.expire_jobs(s, T0 + timedelta(seconds=141)) == [job_id]
        assert s.get(Job, job_id) is not None


def test_cancel_running_job_waits_for_the_agent(factory: SessionFactory) -> None:
    cluster_id, op_id, job_id = _new_job(factory, "c1")
    with transaction(factory) as s:
        service.record_result(
            s, ResultMessage(job_id=job_id, cluster_id=cluster_id, state=JobState.RUNNING, at=T0)
        )
        op = service.cancel_operation(s, op_id, T0 + timedelta(seconds=1))
        assert (op.state, op.jobs[0].state) == ("stopping", "cancelling")
        service.record_result(
            s,
            ResultMessage(
                job_id=job_id, cluster_id=cluster_id, state=JobState.CANCELLED, at=T0 + timedelta(seconds=2)
            ),
        )
        assert service.get_operation(s, op_id).state == "cancelled"


def test_heartbeat_online_offline(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster, _ = service.register_cluster(s, HASHER, "c1")
        assert service.cluster_state(cluster, T0) == "never_connected"
        beat = HeartbeatMessage(
            cluster_id=cluster.id, agent_version="0.1.0", last_sweep_at=T0, addons_inspected=3
        )
        assert service.record_heartbeat(s, beat, now=T0)
        assert not service.record_heartbeat(s, beat.model_copy(update={"cluster_id": "unknown"}), now=T0)
        assert service.cluster_state(cluster, T0 + timedelta(seconds=180)) == "online"
        assert service.cluster_state(cluster, T0 + timedelta(seconds=181)) == "offline"
        assert cluster.agent_version == "0.1.0"
        assert cluster.heartbeat is not None
        assert cluster.heartbeat["addons_inspected"] == 3
        # a revoked agent's heartbeats are ignored
        service.revoke_agent_token(cluster, T0)
        assert not service.record_heartbeat(s, beat, now=T0 + timedelta(seconds=10))


def test_agent_users_excludes_revoked(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        a, token_a = service.register_cluster(s, HASHER, "a")
        b, _ = service.register_cluster(s, HASHER, "b")
        service.revoke_agent_token(b)
        users = service.agent_users(s)
        assert [cid for cid, _ in users] == [a.id]
        assert users[0][1].startswith("$2b$")  # bcrypt, as nats-server expects
        assert token_a not in str(users)
        authed = service.authenticate_agent(s, HASHER, token_a)
        assert authed is not None
        assert authed.id == a.id


def test_bootstrap_token_only_once(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        assert service.ensure_bootstrap_token(s, HASHER, "x" * 20)
        assert not service.ensure_bootstrap_token(s, HASHER, "y" * 20)
        assert service.authenticate_token(s, HASHER, "x" * 20) is not None
        assert service.authenticate_token(s, HASHER, "y" * 20) is None
