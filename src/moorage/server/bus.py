"""The server's side of NATS: durable streams, one durable pull consumer per agent, publishing jobs,
and consuming results and heartbeats. Results are acked only after they are in the database, so a
server restart loses none; jobs stay in the work queue until their agent acks them."""

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError

from moorage.spec import protocol
from moorage.spec.protocol import HeartbeatMessage, JobMessage, LogChunk, ResultMessage, StateReport

log = logging.getLogger("moorage.server.bus")

# A write job may run for minutes: the agent sends "in progress" acks; without them for this long
# (agent killed), the job is delivered again. Tests shorten it with $MOORAGE_AGENT_ACK_WAIT_SECONDS.
AGENT_ACK_WAIT_SECONDS = float(os.environ.get("MOORAGE_AGENT_ACK_WAIT_SECONDS", "60"))
RESULTS_MAX_AGE_SECONDS = 14 * 24 * 3600

OnResult = Callable[[ResultMessage], Awaitable[None]]
OnHeartbeat = Callable[[HeartbeatMessage], Awaitable[None]]
OnState = Callable[[StateReport], Awaitable[None]]
STATE_CONSUMER = "server-state"
SERVER_QUEUE = "moorage-server"  # the queue group of the replicas for core NATS subjects
STREAM_REPLICAS = 3
SETUP_SECONDS = 60.0  # how long start-up waits for JetStream to answer
PUBLISH_RETRY_SECONDS = 15.0  # how long a job publish is retried while the stream does not answer
AgentIds = Callable[[], Awaitable[list[str]]]


class NatsBus:
    def __init__(
        self,
        url: str,
        *,
        user: str | None,
        password: str | None,
        on_result: OnResult,
        on_heartbeat: OnHeartbeat,
        agent_ids: AgentIds,
        on_agents_changed: Callable[[], Awaitable[None]] | None = None,
        on_state: OnState | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self._tls = tls
        self._user, self._password = user, password
        self._on_result, self._on_heartbeat = on_result, on_heartbeat
        self._agent_ids = agent_ids
        self._on_agents_changed = on_agents_changed
        self._on_state = on_state
        self._nc: Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.rejected = 0  # malformed messages dropped

    async def start(self) -> None:
        self._nc = await nats.connect(
            servers_of(self.url),
            user=self._user,
            password=self._password,
            name="moorage-server",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            # TLS before nats-server's INFO: nothing between can strip TLS by sending an INFO without
            # tls_required (after which nats-py would send the password in the clear)
            tls=self._tls,
            tls_handshake_first=self._tls is not None,
        )
        js = self._nc.jetstream()
        # a NATS cluster still electing its JetStream leader answers nothing for a few seconds
        deadline = asyncio.get_running_loop().time() + SETUP_SECONDS
        while True:
            try:
                await self._setup_streams(js)
                break
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError) as e:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("JetStream is not ready (%r); trying again", e)
                await asyncio.sleep(1)
        await self.ensure_agent_consumers()
        # a queue group: with several replicas, each heartbeat is handled by one of them
        await self._nc.subscribe(protocol.heartbeat_subject("*"), queue=SERVER_QUEUE, cb=self._heartbeat)
        self._tasks.append(
            asyncio.create_task(self._consume(protocol.SERVER_CONSUMER, self._result), name="moorage-results")
        )
        self._tasks.append(
            asyncio.create_task(self._consume(STATE_CONSUMER, self._state), name="moorage-state")
        )

    async def _setup_streams(self, js: Any) -> None:
        """The streams and the server's two durable consumers (shared by every replica)."""
        await _ensure_stream(
            js,
            StreamConfig(
                name=protocol.JOBS_STREAM,
                subjects=[protocol.jobs_subject("*")],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=600,
            ),
        )
        await _ensure_stream(
            js,
            StreamConfig(
                name=protocol.RESULTS_STREAM,
                subjects=[
                    protocol.results_subject("*"),
                    protocol.events_subject("*"),
                    protocol.state_subject("*"),
                ],
                storage=StorageType.FILE,
                max_age=RESULTS_MAX_AGE_SECONDS,
            ),
        )
        await js.add_consumer(
            protocol.RESULTS_STREAM,
            ConsumerConfig(
                durable_name=protocol.SERVER_CONSUMER,
                filter_subject=protocol.results_subject("*"),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
            ),
        )
        await js.add_consumer(
            protocol.RESULTS_STREAM,
            ConsumerConfig(
                durable_name=STATE_CONSUMER,
                filter_subject=protocol.state_subject("*"),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
            ),
        )

    async def ensure_agent_consumers(self) -> None:
        assert self._nc is not None
        js = self._nc.jetstream()
        for cluster_id in await self._agent_ids():
            await js.add_consumer(
                protocol.JOBS_STREAM,
                ConsumerConfig(
                    durable_name=protocol.agent_consumer(cluster_id),
                    filter_subject=protocol.jobs_subject(cluster_id),
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=AGENT_ACK_WAIT_SECONDS,
                    max_ack_pending=100,
                ),
            )

    async def publish_job(self, job: JobMessage) -> None:
        """Queue the job in JetStream. While a NATS cluster elects a new stream leader (a node just
        died) the stream answers nothing for a few seconds: the publish is retried for up to
        PUBLISH_RETRY_SECONDS. The job id is the message id, so a retried publish is queued once."""
        assert self._nc is not None
        deadline = asyncio.get_running_loop().time() + PUBLISH_RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                await self._nc.jetstream().publish(
                    protocol.jobs_subject(job.cluster_id),
                    protocol.encode(job),
                    headers={"Nats-Msg-Id": job.job_id},
                )
                return
            except (NoStreamResponseError, NoRespondersError, NatsTimeoutError, ServiceUnavailableError):
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                log.info("the jobs stream did not answer (a NATS leader election?); publishing again")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def nats_client(self) -> Client | None:
        """The connection, for the kubectl proxy's core NATS streams (moorage.server.kubeproxy)."""
        return self._nc

    async def cancel_jobs(self, cluster_id: str, job_ids: list[str]) -> None:
        assert self._nc is not None
        message = protocol.CancelMessage(cluster_id=cluster_id, job_ids=job_ids)
        await self._nc.publish(protocol.control_subject(cluster_id), protocol.encode(message))

    @contextlib.asynccontextmanager
    async def log_stream(self, cluster_id: str, stream_id: str) -> AsyncIterator[AsyncIterator[LogChunk]]:
        assert self._nc is not None
        queue: asyncio.Queue[LogChunk] = asyncio.Queue(maxsize=10_000)

        async def received(msg: Msg) -> None:
            try:
                chunk = protocol.decode(msg.data, LogChunk)
            except protocol.ProtocolError:
                chunk = LogChunk(end=True, error="a malformed log message was dropped")
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(chunk)

        sub = await self._nc.subscribe(protocol.logs_subject(cluster_id, stream_id), cb=received)

        async def chunks() -> AsyncIterator[LogChunk]:
            while True:
                chunk = await queue.get()
                yield chunk
                if chunk.end:
                    return

        try:
            yield chunks()
        finally:
            await sub.unsubscribe()

    async def agents_changed(self) -> None:
        if self._on_agents_changed is not None:
            await self._on_agents_changed()
        await self.ensure_agent_consumers()

    async def _heartbeat(self, msg: Msg) -> None:
        try:
            beat = protocol.decode(msg.data, HeartbeatMessage)
        except protocol.ProtocolError as e:
            self.rejected += 1
            log.warning("heartbeat rejected on %s: %s", msg.subject, e)
            return
        if msg.subject != protocol.heartbeat_subject(beat.cluster_id):
            self.rejected += 1
            log.warning("heartbeat for %s arrived on %s: rejected", beat.cluster_id, msg.subject)
            return
        await self._on_heartbeat(beat)

    async def _consume(self, durable: str, handle: Callable[[Msg], Awaitable[None]]) -> None:
        assert self._nc is not None
        sub = await self._nc.jetstream().pull_subscribe_bind(durable=durable, stream=protocol.RESULTS_STREAM)
        while True:
            try:
                batch = await sub.fetch(50, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS restarting: keep trying
                log.warning("fetching results failed: %r", e)
                await asyncio.sleep(1)
                continue
            for msg in batch:
                await handle(msg)

    async def _result(self, msg: Msg) -> None:
        try:
            result = protocol.decode(msg.data, ResultMessage)
        except protocol.ProtocolError as e:
            self.rejected += 1
            log.warning("result rejected on %s: %s", msg.subject, e)
            await msg.ack()  # a malformed message must not block the stream
            return
        if msg.subject != protocol.results_subject(result.cluster_id):
            self.rejected += 1
            log.warning("result for cluster %s arrived on %s: rejected", result.cluster_id, msg.subject)
            await msg.ack()
            return
        try:
            await self._on_result(result)
        except Exception:
            log.exception("recording result of job %s failed; it will be delivered again", result.job_id)
            await msg.nak(delay=2)
            return
        await msg.ack()

    async def _state(self, msg: Msg) -> None:
        try:
            report = protocol.decode(msg.data, StateReport)
        except protocol.ProtocolError as e:
            self.rejected += 1
            log.warning("state report rejected on %s: %s", msg.subject, e)
            await msg.ack()
            return
        if msg.subject != protocol.state_subject(report.cluster_id):
            self.rejected += 1
            log.warning("state report for cluster %s arrived on %s: rejected", report.cluster_id, msg.subject)
            await msg.ack()
            return
        if self._on_state is not None:
            try:
                await self._on_state(report)
            except Exception:
                log.exception(
                    "recording a state report of cluster %s failed; it will be delivered again",
                    report.cluster_id,
                )
                await msg.nak(delay=2)
                return
        await msg.ack()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._nc is not None:
            await self._nc.drain()


def servers_of(url: str) -> list[str]:
    """`--nats-url` may list several servers of a NATS cluster, comma-separated."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    if not servers:
        raise ValueError("the NATS URL is empty")
    return servers


async def _ensure_stream(js: Any, config: StreamConfig) -> None:
    """Created or updated with as many replicas as the NATS cluster allows: STREAM_REPLICAS on a
    cluster of three or more, else one (a single server refuses more)."""
    last: Exception | None = None
    for replicas in (STREAM_REPLICAS, 1):
        config.num_replicas = replicas
        try:
            try:
                await js.stream_info(config.name)
            except NotFoundError:
                await js.add_stream(config)
            else:
                await js.update_stream(config)
        except APIError as e:
            last = e
            log.info("stream %s with %d replica(s) refused: %s", config.name, replicas, e.description)
            continue
        log.info("stream %s: %d replica(s)", config.name, replicas)
        return
    assert last is not None
    raise last
