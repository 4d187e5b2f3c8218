"""`moorage server`: migrate the database, start (or connect to) NATS, consume results and heartbeats,
serve the API. Stops cleanly on SIGTERM / Ctrl-C."""

import asyncio
import logging
import os
from pathlib import Path

import uvicorn
from sqlalchemy.orm import Session

from moorage.server import addon_state, service
from moorage.server.app import create_app
from moorage.server.bus import NatsBus
from moorage.server.db.session import (
    SessionFactory,
    in_transaction,
    make_engine,
    make_session_factory,
    migrate,
    transaction,
)
from moorage.server.events import Broadcaster, JobWaiters
from moorage.server.nats_embedded import SERVER_USER, AgentUser, EmbeddedNats
from moorage.server.settings import ServerSettings
from moorage.spec.protocol import HeartbeatMessage, JobAction, JobMessage, ResultMessage, StateReport

log = logging.getLogger("moorage.server")


def _agent_users(factory: SessionFactory) -> list[AgentUser]:
    with transaction(factory) as session:
        return [AgentUser(cluster_id, password) for cluster_id, password in service.agent_users(session)]


async def serve(settings: ServerSettings) -> None:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    url = settings.database_url
    await asyncio.to_thread(migrate, url)
    factory = make_session_factory(make_engine(url))

    embedded: EmbeddedNats | None = None
    if settings.nats_url:
        nats_url = settings.nats_url
        nats_user, nats_password = (
            os.environ.get("MOORAGE_NATS_USER"),
            os.environ.get("MOORAGE_NATS_PASSWORD"),
        )
    else:
        embedded = EmbeddedNats(Path(settings.data_dir) / "nats")
        await asyncio.to_thread(embedded.start, _agent_users(factory))
        nats_url, nats_user, nats_password = embedded.url, SERVER_USER, embedded.server_password
        log.info("embedded NATS with JetStream at %s", nats_url)
    try:
        await _run(settings, factory, embedded, nats_url, nats_user, nats_password)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _run(
    settings: ServerSettings,
    factory: SessionFactory,
    embedded: EmbeddedNats | None,
    nats_url: str,
    nats_user: str | None,
    nats_password: str | None,
) -> None:
    events = Broadcaster()
    waiters = JobWaiters()

    async def on_result(message: ResultMessage) -> None:
        await in_transaction(factory, lambda s: service.record_result(s, message))
        waiters.done(message.job_id)

    async def on_state(report: StateReport) -> None:
        changes = await in_transaction(factory, lambda s: addon_state.record_state(s, report))
        events.publish(c.to_dict() for c in changes)

    async def on_heartbeat(beat: HeartbeatMessage) -> None:
        changes, define = await in_transaction(factory, lambda s: heartbeat_received(s, beat))
        events.publish(c.to_dict() for c in changes)
        if define is not None:
            try:
                await bus.publish_job(define)
            except Exception as e:
                log.warning("sending cluster %s its definition failed: %s", beat.cluster_id, e)
                return
            await in_transaction(factory, lambda s: service.mark_dispatched(s, define.job_id))

    async def agent_ids() -> list[str]:
        return await in_transaction(factory, service.agent_cluster_ids)

    async def reload_nats_users() -> None:
        if embedded is not None:
            users = await asyncio.to_thread(_agent_users, factory)
            await asyncio.to_thread(embedded.reload, users)

    bus = NatsBus(
        nats_url,
        user=nats_user,
        password=nats_password,
        on_result=on_result,
        on_heartbeat=on_heartbeat,
        agent_ids=agent_ids,
        on_agents_changed=reload_nats_users,
        on_state=on_state,
    )
    await bus.start()
    app = create_app(
        settings,
        factory,
        bus,
        agent_nats_url=settings.agent_nats_url or nats_url,
        events=events,
        job_waiters=waiters,
    )
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info"))
    watchdog = asyncio.create_task(_restart_nats_when_it_dies(embedded, factory)) if embedded else None
    try:
        await server.serve()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        try:
            await asyncio.wait_for(bus.close(), 10)
        except Exception:
            log.exception("closing the NATS connection failed")
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def heartbeat_received(
    session: Session, beat: HeartbeatMessage
) -> tuple[list[addon_state.Change], JobMessage | None]:
    """Record a heartbeat; an agent back from an outage counts again, and an agent that lost its
    definition (it restarted) is sent the last one it was given, to deploy nothing but report on."""
    if not service.record_heartbeat(session, beat):
        return [], None
    cluster = service.get_cluster_by_id(session, beat.cluster_id)
    assert cluster is not None
    changes = addon_state.agent_back(session, cluster)
    if beat.has_definition:
        return changes, None
    payload = addon_state.definition_for_agent(session, cluster)
    if payload is None:
        return changes, None
    _, message = service.create_operation_with_job(
        session,
        cluster,
        action=JobAction.DEFINE,
        payload=payload,
        timeout_seconds=120,
        operation_kind="define",
        created_by="server: the agent restarted",
    )
    return changes, message


async def _restart_nats_when_it_dies(embedded: EmbeddedNats, factory: SessionFactory) -> None:
    """The embedded NATS is ours to keep alive: JetStream state is on disk and the port is the same,
    so the server's and the agents' connections come back by themselves."""
    while True:
        await asyncio.sleep(1)
        if embedded.running():
            continue
        log.warning("embedded nats-server exited; starting it again")
        try:
            await asyncio.to_thread(embedded.start, _agent_users(factory))
        except Exception:
            log.exception("restarting nats-server failed; trying again")
