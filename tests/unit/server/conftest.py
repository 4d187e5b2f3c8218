"""Fixtures for the control plane: a migrated SQLite database per test (copied from one migrated
once per session), a recording fake bus, a controllable clock, and a TestClient with an admin token."""

import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from moorage.server.app import create_app
from moorage.server.db import SessionFactory, make_engine, make_session_factory, migrate
from moorage.server.settings import ServerSettings
from moorage.server.tokens import TokenHasher
from moorage.spec.protocol import JobMessage, LogChunk

ADMIN_TOKEN = "test-bootstrap-admin-token-0123456789"
# for tests that call the service functions directly (the app derives its own from the server key)
HASHER = TokenHasher(b"unit-test-token-hashing-key-0123456789")
EXAMPLE_REPO = Path(__file__).resolve().parents[3] / "examples" / "gitops-repo"


class FakeBus:
    def __init__(self) -> None:
        self.jobs: list[JobMessage] = []
        self.agents_changed_calls = 0
        self.fail_publish = False
        self.log_chunks: list[LogChunk] = []
        self.cancelled: list[tuple[str, list[str]]] = []
        self.log_streams: list[tuple[str, str]] = []

    async def publish_job(self, job: JobMessage) -> None:
        if self.fail_publish:
            raise RuntimeError("NATS is not reachable")
        self.jobs.append(job)

    async def agents_changed(self) -> None:
        self.agents_changed_calls += 1

    async def cancel_jobs(self, cluster_id: str, job_ids: list[str]) -> None:
        self.cancelled.append((cluster_id, job_ids))

    @contextlib.asynccontextmanager
    async def log_stream(self, cluster_id: str, stream_id: str) -> AsyncIterator[AsyncIterator[LogChunk]]:
        """Replays `self.log_chunks` (what an agent would publish)."""

        async def chunks() -> AsyncIterator[LogChunk]:
            for chunk in self.log_chunks:
                yield chunk

        self.log_streams.append((cluster_id, stream_id))
        yield chunks()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def example_bundle() -> dict[str, str]:
    """The example repository as an apply bundle (without the test age key: the server needs none)."""
    return {
        str(p.relative_to(EXAMPLE_REPO)): p.read_text()
        for p in sorted(EXAMPLE_REPO.rglob("*"))
        if p.is_file() and p.relative_to(EXAMPLE_REPO).parts[0] != "keys"
    }


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "moorage.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_url(tmp_path: Path, migrated_template: Path) -> str:
    path = tmp_path / "moorage.db"
    shutil.copy(migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> SessionFactory:
    return make_session_factory(engine)


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, db_url: str, factory: SessionFactory, bus: FakeBus, clock: Clock) -> FastAPI:
    settings = ServerSettings(
        data_dir=tmp_path, database_url=db_url, bootstrap_token=ADMIN_TOKEN, nats_url="nats://127.0.0.1:4222"
    )
    return create_app(settings, factory, bus, clock=clock, expire_jobs=False)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@pytest.fixture
def anon(app: FastAPI) -> TestClient:
    return TestClient(app)
