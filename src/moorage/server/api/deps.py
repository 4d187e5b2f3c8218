"""Shared dependencies of the routers: the app context, scoped principals, DB work off the loop."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from moorage.server.auth import Principal, require
from moorage.server.db.session import SessionFactory, transaction
from moorage.server.gitops.controller import GitOpsController
from moorage.server.ports import Bus
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from moorage.server.tokens import Scope

R = TypeVar("R")


@dataclass
class AppContext:
    settings: ServerSettings
    session_factory: SessionFactory
    bus: Bus
    agent_nats_url: str | None
    clock: Callable[[], datetime]
    box: SecretBox
    gitops: GitOpsController | None = None

    async def db(self, work: Callable[[Session], R]) -> R:
        """Run `work` in one transaction on a worker thread (database drivers block)."""

        def run() -> R:
            with transaction(self.session_factory) as session:
                return work(session)

        return await run_in_threadpool(run)

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
