"""The control plane's FastAPI application. `moorage.server.main` builds the pieces (database,
NATS bus) and passes them in; tests pass a migrated SQLite database and a fake bus."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session

from moorage.server import addon_state, leases, service
from moorage.server.api import (
    addons,
    agent,
    charts,
    clusters,
    credentials,
    errors,
    fleet,
    gitops,
    kube,
    operations,
    resources,
    stacks,
    system,
    tokens,
    users,
    webhooks,
)
from moorage.server.api import session as session_routes
from moorage.server.api.deps import AppContext
from moorage.server.db.models import utcnow
from moorage.server.db.session import SessionFactory, transaction
from moorage.server.events import Broadcaster, JobWaiters
from moorage.server.gitops.controller import GitOpsController
from moorage.server.gitops.git import Git
from moorage.server.gitops.runner import Deps
from moorage.server.kubeproxy import GZipExceptProxy
from moorage.server.metrics import make_registry
from moorage.server.middleware import BodyLimitMiddleware
from moorage.server.ports import Bus
from moorage.server.rollout import RollForward
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from moorage.server.tokens import TOKEN_KEY_PURPOSE, TokenHasher
from moorage.server.ui import routes as ui

log = logging.getLogger("moorage.server")

API_PREFIX = "/api/v1"


def create_app(
    settings: ServerSettings,
    session_factory: SessionFactory,
    bus: Bus,
    *,
    agent_nats_url: str | None = None,
    agent_nats_ca: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    expire_jobs: bool = True,
    run_gitops: bool = True,
    events: Broadcaster | None = None,
    job_waiters: JobWaiters | None = None,
    run_roll_forward: bool = True,
) -> FastAPI:
    """The app, on an already migrated database. `agent_nats_url` is what agents are told at
    registration (default: settings.agent_nats_url, then settings.nats_url), `agent_nats_ca` the CA
    (PEM) they trust it with. With `expire_jobs`,
    a background task marks overdue jobs as timeout while the app runs; with `run_gitops`, the
    GitOps loop (polling, retries, syncs) runs too; with `run_roll_forward` and settings.agent_chart,
    the fleet roll-forward (server/rollout.py)."""
    box = SecretBox.load_or_create(settings.data_dir, settings.secret_key)
    hasher = TokenHasher(box.derive_key(TOKEN_KEY_PURPOSE))
    with transaction(session_factory) as session:
        leases.one_at_a_time(session, leases.STARTUP_KEY)  # replicas starting together: one by one
        if upgraded := service.upgrade_token_hashes(session, hasher):
            log.info("rewrote %d token hash(es) as keyed hashes", upgraded)
        if settings.bootstrap_token and service.ensure_bootstrap_token(
            session, hasher, settings.bootstrap_token
        ):
            log.info("created the bootstrap admin token")
    git = Git(
        settings.data_dir / "git",
        allow_file=settings.git_allow_file,
        timeout_seconds=settings.git_timeout_seconds,
        egress_policy=settings.egress_policy(),
    )
    events = events or Broadcaster()
    controller = GitOpsController(
        Deps(session_factory, bus, git, box, settings, clock, notify=lambda e: events.publish([e]))
    )
    ctx = AppContext(
        settings=settings,
        session_factory=session_factory,
        bus=bus,
        agent_nats_url=agent_nats_url or settings.agent_nats_url or settings.nats_url,
        agent_nats_ca=agent_nats_ca,
        clock=clock,
        box=box,
        gitops=controller,
        events=events,
        job_waiters=job_waiters or JobWaiters(),
        token_hasher=hasher,
    )

    roll_forward = RollForward(settings, session_factory, bus, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_expiry_loop(ctx))] if expire_jobs else []
        if run_gitops:
            tasks.append(asyncio.create_task(controller.run()))
        if roll_forward.enabled and run_roll_forward:
            tasks.append(asyncio.create_task(roll_forward.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Moorage",
        summary="GitOps control plane for Kubernetes add-ons",
        version="0.1.0",
        docs_url="/docs",
        lifespan=lifespan,
    )
    app.state.moorage = ctx
    app.state.session_factory = session_factory  # read by moorage.server.auth
    app.state.roll_forward = roll_forward  # read by api/fleet.py
    app.state.metrics_registry = make_registry(session_factory, clock)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # pages, JSON and static files compressed (server-sent events are left alone by Starlette);
    # no page carries a secret, so a reflected search term cannot reveal one (BREACH)
    # (not the kubectl proxy's answers: they stream, compressed or not as the API server sent them)
    app.add_middleware(GZipExceptProxy, minimum_size=1024)
    errors.install(app)
    for module in (
        tokens,
        clusters,
        addons,
        operations,
        agent,
        resources,
        credentials,
        gitops,
        stacks,
        webhooks,
        kube,
        fleet,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    for module in (session_routes, users, charts):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(system.router)
    ui.install(app)
    return app


def _expiry_round(session: Session, now: datetime) -> tuple[list[str], list[addon_state.Change]]:
    """Overdue jobs timed out, silent agents offline; with several replicas, one of them does each
    round (moorage.server.leases), in one transaction."""
    if not leases.try_round(session, leases.EXPIRY_KEY):
        return [], []
    return service.expire_jobs(session, now), addon_state.mark_offline(session, service.OFFLINE_AFTER, now)


async def _expiry_loop(ctx: AppContext) -> None:
    while True:
        await asyncio.sleep(ctx.settings.expire_interval_seconds)
        try:
            expired, offline = await ctx.db(lambda s: _expiry_round(s, ctx.clock()))
        except Exception:
            log.exception("expiring overdue jobs failed; will retry")
            continue
        ctx.events.publish(c.to_dict() for c in offline)
        if expired:
            log.info("jobs timed out: %s", ", ".join(expired))
