"""The GitOps Validating phase and registry credentials (issue 16): a definition naming a credential
the server does not have fails validation naming it, no job is queued; once the credential exists
the sync job carries it sealed, never in plain text."""

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from moorage.agent.registryauth import open_credentials
from moorage.server import registries
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import Cluster, GitRepository, GitSync
from moorage.server.gitops import store
from moorage.server.gitops.controller import GitOpsController
from moorage.server.gitops.git import Tree
from moorage.server.gitops.runner import Deps
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from tests.unit.server.conftest import Clock, FakeBus, example_bundle
from tests.unit.server.test_gitops_controller import FakeGit, connect, eventually

REPO = "http://127.0.0.1:8879"
PASSWORD = "charts-password-0123456789"


class PrivateGit(FakeGit):
    """The example repository, its registry naming the credential charts-bot."""

    async def tree(self, url: str, sha: str, dest: Path) -> Tree:
        tree = await super().tree(url, sha, dest)
        root = dest / "import-cluster.yaml"
        root.write_text(
            root.read_text().replace(f"url: {REPO}\n", f"url: {REPO}\n      credential_name: charts-bot\n")
        )
        return tree


@pytest.fixture
def deps(tmp_path: Path, db_url: str, factory: SessionFactory, bus: FakeBus, clock: Clock) -> Deps:
    # loopback allowed, as in the tests and the demo: a credential may go to http://127.0.0.1
    settings = ServerSettings(data_dir=tmp_path, database_url=db_url, egress_allow="loopback")
    return Deps(
        factory, bus, PrivateGit(tmp_path / "git"), SecretBox.load_or_create(tmp_path), settings, clock
    )


async def _sync_once(deps: Deps, factory: SessionFactory, done: int) -> None:
    async def finished() -> bool:
        with transaction(factory) as s:
            return len([h for h in s.scalars(select(GitSync)) if h.status != "running"]) >= done

    controller = GitOpsController(deps, tick_seconds=0.05)
    task = asyncio.create_task(controller.run())
    try:
        await eventually(finished, "the sync's end", seconds=20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_missing_registry_credential_fails_validating_then_travels_sealed(
    deps: Deps, factory: SessionFactory, bus: FakeBus
) -> None:
    assert "url: http://127.0.0.1:8879" in example_bundle()["import-cluster.yaml"]
    connect(factory, deps.box, "c1", "https://git.example/acme/platform.git")
    await _sync_once(deps, factory, 1)
    with transaction(factory) as s:
        (row,) = s.scalars(select(GitSync))
        assert row.status == "failed"
        assert "credential 'charts-bot'" in json.dumps(row.error)
        repo = s.scalars(select(GitRepository)).one()
        assert repo.sync_status == store.ERROR
    assert bus.jobs == []  # validation failed: nothing reached the agent

    with transaction(factory) as s:
        store.create_credential(s, deps.box, "charts-bot", "helm", PASSWORD, "robot", hosts=[REPO])
        repo = s.scalars(select(GitRepository)).one()
        store.request_sync(s, repo, "manual", "test")

    async def published() -> bool:
        return len(bus.jobs) >= 1

    controller = GitOpsController(deps, tick_seconds=0.05)
    task = asyncio.create_task(controller.run())
    try:
        await eventually(published, "the sync job", seconds=20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    (job,) = bus.jobs
    assert PASSWORD not in job.model_dump_json()
    with transaction(factory) as s:
        cluster = s.scalars(select(Cluster)).one()
        identity = registries.agent_identity(deps.box, cluster)
    opened = open_credentials(job.payload, identity)
    assert opened[REPO].password == PASSWORD
    assert opened[REPO].username == "robot"
