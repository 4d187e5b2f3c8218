"""Fixtures of the remote CLI tests: the real server app, served in-process through httpx's ASGI
transport (a migrated SQLite database and the recording fake bus of the server tests), and a `cli`
that runs `moorage` against it."""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from moorage.cli import client as client_module
from moorage.cli.main import app as main_app
from moorage.server.app import create_app
from moorage.server.db import SessionFactory
from moorage.server.settings import ServerSettings
from tests.unit.server.conftest import (  # the database, bus and clock fixtures are the server tests'
    ADMIN_TOKEN,
    Clock,
    FakeBus,
    bus,
    clock,
    db_url,
    engine,
    factory,
    migrated_template,
)

__all__ = ["bus", "clock", "db_url", "engine", "factory", "migrated_template"]

SERVER = "http://moorage.test"


class InProcess(httpx.BaseTransport):
    """A synchronous transport in front of httpx.ASGITransport: each request runs the app once."""

    def __init__(self, app: FastAPI) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def run() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            # the bytes as sent (gzip included): the client decodes them as it would off the wire
            content = b"".join([chunk async for chunk in response.aiter_raw()])
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return asyncio.run(run())


@pytest.fixture
def server_app(
    tmp_path: Path, factory: SessionFactory, bus: FakeBus, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'moorage.db'}",
        bootstrap_token=ADMIN_TOKEN,
        nats_url="nats://127.0.0.1:4222",
        # the server's links (webhook URL) come from its settings, never from a request's Host
        public_url=SERVER,
    )
    app = create_app(settings, factory, bus, clock=clock, expire_jobs=False, run_gitops=False)
    monkeypatch.setattr(client_module, "transport_factory", lambda: InProcess(app))
    return app


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(
        self,
        *args: str,
        token: str | None = ADMIN_TOKEN,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        environment = {"MOORAGE_SERVER": SERVER, "MOORAGE_TOKEN": token, "COLUMNS": "200", **(env or {})}
        return self.runner.invoke(main_app, list(args), env=environment, input=stdin)


@pytest.fixture
def cli(server_app: FastAPI) -> Cli:
    return Cli()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)
