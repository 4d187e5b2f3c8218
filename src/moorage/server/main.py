"""`moorage server`: migrate the database, start (or connect to) NATS, consume results and heartbeats,
serve the API. Stops cleanly on SIGTERM / Ctrl-C."""

import asyncio
import logging
import os
import ssl
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
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
from moorage.server.fanout import Fanout
from moorage.server.leases import AnotherServer, SingleServerLock
from moorage.server.nats_embedded import SERVER_USER, AgentUser, EmbeddedNats, tls_context
from moorage.server.pki import tls_hosts
from moorage.server.settings import ServerSettings
from moorage.spec.protocol import HeartbeatMessage, JobAction, JobMessage, ResultMessage, StateReport

log = logging.getLogger("moorage.server")


def _agent_users(factory: SessionFactory) -> list[AgentUser]:
    with transaction(factory) as session:
        return [AgentUser(cluster_id, password) for cluster_id, password in service.agent_users(session)]


# what the data directory holds that only the server may read: the database (definitions, sealed
# secrets, token hashes), the server's key, the embedded NATS (its config holds bcrypt hashes, its
# store the queued jobs with their values) and the Git cache
_PRIVATE_FILES = (
    "secret.agekey",
    "nats/nats.conf",
    "nats/nats.log",
    "nats/nats.port",
    "nats/nats-monitor.port",
    "nats/tls/ca.key",
    "nats/tls/server.key",
)
_PRIVATE_DIRS = ("nats", "nats/jetstream", "nats/tls", "git")


def _sqlite_path(database_url: str) -> Path | None:
    parsed = make_url(database_url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def _private(path: Path, mode: int) -> None:
    """`path` gets `mode` if it exists and has more; logged, because what was readable may have
    been read."""
    try:
        current = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if current & ~mode:
        try:
            path.chmod(mode)
        except OSError as e:  # not ours to change: say so, and go on
            log.warning("%s is mode %o and cannot be made %o: %s", path, current, mode, e)
            return
        log.warning("%s was mode %o; now %o (only the server's user may read it)", path, current, mode)


def secure_storage(settings: ServerSettings) -> None:
    """The data directory 0700 and what it holds 0600 (0700 for folders): created so, and fixed at
    every start when an older server (or a copy) left them readable by others. New files of the
    server and its nats-server child are private from here on (umask 077); SQLite gives its -wal
    and -shm files the database file's mode."""
    os.umask(0o077)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _private(data_dir, 0o700)
    for name in _PRIVATE_DIRS:
        _private(data_dir / name, 0o700)
    for name in _PRIVATE_FILES:
        _private(data_dir / name, 0o600)
    database = _sqlite_path(settings.database_url)
    if database is not None:
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not database.exists():
            # created empty and private before SQLite opens it (an empty file is a new database)
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for suffix in ("", "-wal", "-shm", "-journal"):
            _private(database.with_name(database.name + suffix), 0o600)


async def serve(settings: ServerSettings) -> None:
    secure_storage(settings)
    url = settings.database_url
    database = _sqlite_path(url)
    single = SingleServerLock(database) if database is not None else None
    if single is not None:
        try:
            single.acquire()  # SQLite is for one server: a second one on the file stops here
        except AnotherServer as e:
            raise SystemExit(f"moorage server: {e}") from None
    try:
        await _serve(settings, url)
    finally:
        if single is not None:
            single.release()


async def _serve(settings: ServerSettings, url: str) -> None:
    await asyncio.to_thread(migrate, url)
    factory = make_session_factory(make_engine(url))

    embedded: EmbeddedNats | None = None
    nats_tls, agent_ca = external_nats_tls(settings)
    if settings.nats_url:
        nats_url = settings.nats_url
        nats_user, nats_password = (
            os.environ.get("MOORAGE_NATS_USER"),
            os.environ.get("MOORAGE_NATS_PASSWORD"),
        )
    else:
        hosts = tls_hosts(
            agent_nats_url=settings.agent_nats_url,
            public_url=settings.public_url,
            listen_host=settings.host,
            extra=settings.nats_tls_hosts.split(","),
        )
        embedded = EmbeddedNats(Path(settings.data_dir) / "nats", tls_hosts=hosts)
        await asyncio.to_thread(embedded.start, _agent_users(factory))
        nats_url, nats_user, nats_password = embedded.url, SERVER_USER, embedded.server_password
        nats_tls, agent_ca = embedded.tls_context(), embedded.ca_pem()
        log.info("embedded NATS with JetStream at %s (TLS; certificate for %s)", nats_url, ", ".join(hosts))
    try:
        await _run(settings, factory, embedded, nats_url, nats_user, nats_password, nats_tls, agent_ca)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def agent_nats_url(settings: ServerSettings, embedded: EmbeddedNats | None, nats_url: str) -> str:
    """The NATS URL agents are told. The embedded NATS speaks TLS only, so a nats:// URL set for it
    (an older chart value) is handed out as tls:// (the certificate names its host)."""
    url = settings.agent_nats_url or nats_url
    if embedded is not None and url.startswith("nats://"):
        secure = "tls://" + url.removeprefix("nats://")
        log.warning("the embedded NATS speaks TLS only: agents are told %s, not %s", secure, url)
        return secure
    return url


def external_nats_tls(settings: ServerSettings) -> tuple[ssl.SSLContext | None, str | None]:
    """For a NATS of its own at tls://…: the server's TLS context (the CA of MOORAGE_NATS_CA, else
    the system's) and the CA handed to agents (None: they use the system's too)."""
    if not settings.nats_url or not settings.nats_url.startswith("tls://"):
        return None, None
    if settings.nats_ca is None:
        return ssl.create_default_context(), None
    ca = settings.nats_ca.read_text()
    return tls_context(ca), ca


async def _run(
    settings: ServerSettings,
    factory: SessionFactory,
    embedded: EmbeddedNats | None,
    nats_url: str,
    nats_user: str | None,
    nats_password: str | None,
    nats_tls: ssl.SSLContext | None = None,
    agent_nats_ca: str | None = None,
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
        tls=nats_tls,
    )
    await bus.start()
    fanout = Fanout(events, waiters)  # what the other replicas must see at once
    nc = bus.nats_client()
    assert nc is not None
    await fanout.start(nc)
    app = create_app(
        settings,
        factory,
        bus,
        agent_nats_url=agent_nats_url(settings, embedded, nats_url),
        agent_nats_ca=agent_nats_ca,
        events=events,
        job_waiters=waiters,
    )
    controller = app.state.moorage.gitops
    controller.forward_wake = fanout.woken
    fanout.wake = lambda: controller.wake(forward=False)
    server = uvicorn.Server(uvicorn_config(app, settings))
    watchdog = asyncio.create_task(_restart_nats_when_it_dies(embedded, factory)) if embedded else None
    try:
        await server.serve()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await fanout.close()
        try:
            await asyncio.wait_for(bus.close(), 10)
        except Exception:
            log.exception("closing the NATS connection failed")
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


class DropQueryString(logging.Filter):
    """Removes the query string from uvicorn's access log lines: a token or other secret sent as
    `?token=…` (by mistake, or by a client that knows no better) would otherwise land on disk.
    uvicorn passes the path with its query as one of the record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.partition("?")[0] if isinstance(a, str) and a.startswith("/") else a for a in record.args
            )
        return True


def uvicorn_config(app: FastAPI, settings: ServerSettings) -> uvicorn.Config:
    """uvicorn for the app (HTTPS with the settings' certificate and key), its access log without
    query strings."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn.Config just now
    if not any(isinstance(f, DropQueryString) for f in access.filters):
        access.addFilter(DropQueryString())
    return config


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
