"""`moorage cluster upgrade-agent` against the real server app in-process (tests/unit/cli/conftest.py):
the job's end decides the exit code, and after a successful job the command waits for the new agent
to report the chart version, failing with what to check when none does."""

import pytest

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.spec.protocol import HeartbeatMessage, JobMessage, JobState, ResultMessage
from tests.unit.cli.conftest import Cli, as_json, ok
from tests.unit.server.conftest import FakeBus

CHART = "oci://registry.example.com/charts/moorage-agent"
ARGS = ("--version", "0.2.0", "--chart", CHART, "--wait", "5")


def agent_answers(
    bus: FakeBus, factory: SessionFactory, monkeypatch: pytest.MonkeyPatch, state: JobState, message: str
) -> None:
    """The agent's result, recorded as soon as the job is handed over."""

    async def publish(job: JobMessage) -> None:
        bus.jobs.append(job)
        with transaction(factory) as session:
            service.record_result(
                session,
                ResultMessage(job_id=job.job_id, cluster_id=job.cluster_id, state=state, messages=[message]),
            )

    monkeypatch.setattr(bus, "publish_job", publish)


def heartbeat(factory: SessionFactory, chart_version: str) -> None:
    with transaction(factory) as session:
        cluster = service.get_cluster(session, "c1")
        service.record_heartbeat(
            session,
            HeartbeatMessage(cluster_id=cluster.id, agent_version="0.1.0", chart_version=chart_version),
        )


def test_success_waits_for_the_new_agents_report(
    cli: Cli, bus: FakeBus, factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("cluster", "register", "c1"))
    agent_answers(bus, factory, monkeypatch, JobState.SUCCESS, "upgraded moorage/moorage-agent")
    heartbeat(factory, "0.1.0")  # the old agent still reports
    res = cli("cluster", "upgrade-agent", "c1", *ARGS, "--report-wait", "1")
    assert res.exit_code == 1
    assert "the upgrade was applied, but no agent of 'c1' reported chart 0.2.0 within 1 s" in res.stderr
    assert "(it reports 0.1.0)" in res.stderr
    assert "kubectl get pods" in res.stderr

    heartbeat(factory, "0.2.0")  # the new agent reports
    shown = ok(cli("cluster", "upgrade-agent", "c1", *ARGS, "--report-wait", "5")).stdout
    assert "upgraded moorage/moorage-agent" in shown
    assert "the agent of c1 reports chart 0.2.0" in shown
    answer = as_json(cli("cluster", "upgrade-agent", "c1", *ARGS, "-o", "json"))
    assert (answer["operation_state"], answer["reported_chart_version"]) == ("success", "0.2.0")
    assert [j.payload for j in bus.jobs] == [{"chart": CHART, "version": "0.2.0"}] * 3
    assert "0.2.0" in ok(cli("cluster", "get", "c1")).stdout


def test_a_failed_upgrade_exits_1_with_the_agents_reason(
    cli: Cli, bus: FakeBus, factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("cluster", "register", "c1"))
    agent_answers(bus, factory, monkeypatch, JobState.FAILED, "the agent keeps running 0.1.0: not found")
    res = cli("cluster", "upgrade-agent", "c1", *ARGS)
    assert res.exit_code == 1
    assert "failed" in res.stdout
    assert "the agent keeps running 0.1.0: not found" in res.stdout
    refused = cli("cluster", "upgrade-agent", "c1", "--version", "latest", "--chart", CHART)
    assert refused.exit_code == 1
    assert "version" in refused.stderr
