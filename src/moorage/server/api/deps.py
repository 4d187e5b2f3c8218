"""Shared dependencies of the routers: the app context, scoped principals, DB work off the loop."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from moorage.server.auth import Principal, require
from moorage.server.db.session import SessionFactory, in_transaction
from moorage.server.events import Broadcaster, JobWaiters
from moorage.server.gitops.controller import GitOpsController
from moorage.server.ports import Bus
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from moorage.server.tokens import Scope, TokenHasher

R = TypeVar("R")

MAX_WAIT_SECONDS = 600
# every route with a `wait` query takes it as this type: a finite number of seconds (FastAPI's float
# would take nan and inf, and nan fails every comparison, so a range check alone does not stop it)
WaitSeconds = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_SECONDS,
        allow_inf_nan=False,
        description=f"Seconds to wait for the outcome (0: answer at once; at most {MAX_WAIT_SECONDS}).",
    ),
]


@dataclass
class AppContext:
    settings: ServerSettings
    session_factory: SessionFactory
    bus: Bus
    agent_nats_url: str | None
    agent_nats_ca: str | None  # PEM: the CA agents trust NATS with (None: the system's)
    clock: Callable[[], datetime]
    box: SecretBox
    gitops: GitOpsController
    events: Broadcaster
    job_waiters: JobWaiters
    token_hasher: TokenHasher

    async def db(self, work: Callable[[Session], R]) -> R:
        return await in_transaction(self.session_factory, work)

    async def db_until(
        self, work: Callable[[Session], R], done: Callable[[R], bool], seconds: float, interval: float
    ) -> R:
        """`work` read again every `interval` until `done` says yes or `seconds` ran out; the last read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            result = await self.db(work)
            if done(result) or loop.time() >= deadline:
                return result
            await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))

    async def agents_changed(self, what: str) -> None:
        try:
            await self.bus.agents_changed()
        except Exception as e:
            raise HTTPException(
                503, detail=f"{what} was saved, but the NATS configuration could not be updated: {e}; retry"
            ) from None


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.moorage
    return ctx


Ctx = Annotated[AppContext, Depends(context)]
Reader = Annotated[Principal, Depends(require(Scope.READ))]
Writer = Annotated[Principal, Depends(require(Scope.WRITE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
