"""A job's result waits for NATS outside the job's write claim: while the server restarts, the
sweep (which takes the whole-cluster claim) still runs and heals. NATS here is a stand-in that
refuses every publish, as a client does while it reconnects; the real one is in the integration
test of add-on state (server restarted while the cluster changed)."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from moorage.agent import jobs
from moorage.agent.runner import Agent, AgentSettings, Registration
from moorage.agent.writes import Claim
from moorage.spec import protocol
from moorage.spec.protocol import JobAction, JobKind, JobMessage, JobState, ResultMessage


class Refusing:
    """A JetStream context while NATS is away: every publish fails; the states tried are kept."""

    def __init__(self) -> None:
        self.tried: list[JobState] = []

    def jetstream(self) -> "Refusing":
        return self

    async def publish(self, subject: str, payload: bytes) -> None:
        assert subject == protocol.results_subject("c1")
        self.tried.append(protocol.decode(payload, ResultMessage).state)
        raise ConnectionError("nats: connection closed")

    async def until_tried(self, times: int) -> None:
        async with asyncio.timeout(10):  # the retries' backoff: 1 s, then 2 s
            while len(self.tried) < times:
                await asyncio.sleep(0.05)


class Message:
    def __init__(self) -> None:
        self.acked = False

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay: float | None = None) -> None:
        pass

    async def in_progress(self) -> None:
        pass


def agent_without_nats(ran: list[str] | None = None) -> tuple[Agent, Refusing]:
    """An agent whose jobs succeed at once (their ids appended to `ran`) and whose NATS is away."""
    agent = Agent(AgentSettings(server="http://127.0.0.1:1", token="t"))
    agent.reg = Registration("c1", "live", "nats://127.0.0.1:1", "u", "_INBOX.c1")
    nats = Refusing()
    agent._nc = nats  # type: ignore[assignment]

    async def execute(job: JobMessage, _kind: Any) -> jobs.Outcome:
        if ran is not None:
            ran.append(job.job_id)
        return JobState.SUCCESS, [], {}

    agent._execute = execute  # type: ignore[method-assign,assignment]
    return agent, nats


def job(action: JobAction) -> JobMessage:
    return JobMessage(
        job_id="j1",
        operation_id="o1",
        cluster_id="c1",
        kind=JobKind.WRITE,
        action=action,
        payload={"addon": "web"} if action is JobAction.ROLLBACK else {},
        timeout_seconds=60,
        created_at=datetime.now(UTC),
    )


@pytest.mark.parametrize("action", [JobAction.SYNC, JobAction.ROLLBACK, JobAction.SWEEP])
async def test_the_claim_is_free_while_the_result_waits_for_nats(action: JobAction) -> None:
    agent, nats = agent_without_nats()
    msg = Message()
    running = asyncio.create_task(agent._run_job(job(action), msg))  # type: ignore[arg-type]
    try:
        await nats.until_tried(3)  # "running" once, then the final result, retried
        assert nats.tried == [JobState.RUNNING, JobState.SUCCESS, JobState.SUCCESS]
        # the sweep's claim (the whole cluster) is granted while the job still retries its result
        async with asyncio.timeout(3):
            async with agent._writes.hold(Claim.cluster()):
                pass
        assert not running.done()
        assert not msg.acked  # unacked: the job is redelivered if the agent stops before NATS returns
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_losing_the_lead_after_the_work_ended_does_not_run_it_again() -> None:
    ran: list[str] = []
    agent, nats = agent_without_nats(ran)
    msg = Message()
    running = asyncio.create_task(agent._run_job(job(JobAction.ROLLBACK), msg))  # type: ignore[arg-type]
    agent._running["j1"] = agent._writing["j1"] = running
    try:
        await nats.until_tried(2)  # the rollback ran; its result waits for NATS
        agent._leadership_changed(False)  # another replica leads now
        await asyncio.sleep(0.1)
        assert not running.done()  # not cancelled, so not handed back for the next leader to run again
        assert ran == ["j1"]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
