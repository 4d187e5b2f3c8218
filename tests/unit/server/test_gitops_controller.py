"""The GitOps loop with a fake Git and the fake bus (issue 18): one repository's failure never stops
the polling of the others (item 4), and after a restart in the middle of a sync the interrupted
sync's job is superseded by the re-run's (item 8)."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import GitCredential, GitRepository, GitSync, Job, Operation
from moorage.server.gitops import store
from moorage.server.gitops.controller import GitOpsController
from moorage.server.gitops.git import Git, GitAuth, GitError, Tree
from moorage.server.gitops.runner import Deps
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from tests.unit.server.conftest import HASHER, Clock, FakeBus, example_bundle

HEAD = "c" * 40


class FakeGit(Git):
    """Answers from memory: `heads` per URL (an exception to raise, or the branch tip), and the
    example repository as every commit's tree."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__(cache_dir)
        self.heads: dict[str, str | Exception] = {}
        self.asked: list[str] = []

    async def ls_remote(self, url: str, branch: str, auth: GitAuth | None) -> str:  # noqa: ARG002
        self.asked.append(url)
        head = self.heads.get(url, HEAD)
        if isinstance(head, Exception):
            raise head
        return head

    async def fetch(self, url: str, branch: str, auth: GitAuth | None) -> str:
        return await self.ls_remote(url, branch, auth)

    async def resolve(self, url: str, revision: str, branch: str) -> str:  # noqa: ARG002
        return revision

    async def commit_time(self, url: str, sha: str) -> datetime:  # noqa: ARG002
        return datetime(2026, 5, 20, 11, 0, tzinfo=UTC)

    async def tree(self, url: str, sha: str, dest: Path) -> Tree:  # noqa: ARG002
        tree = Tree(dest)
        for rel, content in example_bundle().items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(content)
            tree.files.append(rel)
        return tree


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    return SecretBox.load_or_create(tmp_path)


@pytest.fixture
def git(tmp_path: Path) -> FakeGit:
    return FakeGit(tmp_path / "git")


@pytest.fixture
def deps(
    tmp_path: Path,
    db_url: str,
    factory: SessionFactory,
    bus: FakeBus,
    git: FakeGit,
    box: SecretBox,
    clock: Clock,
) -> Deps:
    settings = ServerSettings(data_dir=tmp_path, database_url=db_url)
    return Deps(factory, bus, git, box, settings, clock)


def connect(
    factory: SessionFactory, box: SecretBox, name: str, url: str, credential: str | None = None
) -> str:
    with transaction(factory) as s:
        cluster, _ = service.register_cluster(s, HASHER, name)
        source = store.checked_source(
            provider="github",
            url=url,
            branch="main",
            path="import-cluster.yaml",
            allow_file=False,
            credential_name=credential,
        )
        store.connect(s, box, cluster, source, default_poll_seconds=60)
        return cluster.id


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- item 4: polling


def _all_due(factory: SessionFactory, clock: Clock) -> None:
    """Every repository is due a poll and has no request (as after its first sync)."""
    with transaction(factory) as s:
        for repo in s.scalars(select(GitRepository)):
            repo.requested_at = None
            repo.next_poll_at = clock()
            repo.sync_status = store.SYNCED


def _requests(factory: SessionFactory) -> dict[str, tuple[str | None, str | None]]:
    with transaction(factory) as s:
        return {
            r.url: (r.requested_source, r.pending_commit_sha)
            for r in s.scalars(select(GitRepository).where(GitRepository.requested_at.is_not(None)))
        }


@pytest.mark.parametrize(
    "failure",
    [
        ValueError("embedded null byte"),
        RuntimeError("a bug"),
        GitError("refused", temporary=True, reason="auth"),
    ],
    ids=["nul-in-environment", "bug", "git-error"],
)
async def test_one_repository_failing_does_not_stop_the_polling_of_the_others(
    deps: Deps, factory: SessionFactory, box: SecretBox, git: FakeGit, clock: Clock, failure: Exception
) -> None:
    broken, fine = "https://git.example/acme/broken.git", "https://git.example/acme/fine.git"
    connect(factory, box, "broken", broken)
    connect(factory, box, "fine", fine)
    _all_due(factory, clock)
    git.heads[broken] = failure

    await GitOpsController(deps).poll_round()

    assert sorted(git.asked) == [broken, fine]
    requests = _requests(factory)
    assert requests[fine] == ("poll", HEAD)
    assert requests[broken][0] == "poll"  # its sync reports the problem (history, status, backoff)


async def test_a_credential_that_cannot_be_opened_does_not_stop_the_polling_of_the_others(
    deps: Deps, factory: SessionFactory, box: SecretBox, git: FakeGit, clock: Clock
) -> None:
    with transaction(factory) as s:
        store.create_credential(s, box, "git", "token", "ghp_0123456789abcdef", hosts=["git.example"])
    broken, fine = "https://git.example/acme/broken.git", "https://git.example/acme/fine.git"
    connect(factory, box, "broken", broken, credential="git")
    connect(factory, box, "fine", fine)
    with transaction(factory) as s:
        credential = s.scalar(select(GitCredential))
        assert credential is not None
        credential.secret_sealed = "c2VhbGVkIGJ5IGFub3RoZXIga2V5"  # e.g. sealed under another key
    _all_due(factory, clock)

    await GitOpsController(deps).poll_round()

    assert git.asked == [fine]
    assert _requests(factory) == {fine: ("poll", HEAD)}


# --------------------------------------------------------------------------- item 8: restart mid-sync


def _open_sync_jobs(factory: SessionFactory) -> list[Job]:
    with transaction(factory) as s:
        return list(
            s.scalars(
                select(Job)
                .join(Operation)
                .where(
                    Operation.kind == store.GITOPS_SYNC_KIND,
                    Job.state.in_(["pending", "blocked", "running", "cancelling"]),
                )
            )
        )


async def _run_until(controller: GitOpsController, check: Callable[[], Awaitable[bool]], what: str) -> None:
    """The controller's loop until `check` holds; then the loop stops as at a server stop."""
    task = asyncio.create_task(controller.run())
    try:
        await eventually(check, what)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_after_a_restart_mid_sync_the_interrupted_job_is_superseded_by_the_re_run(
    deps: Deps, factory: SessionFactory, box: SecretBox, bus: FakeBus
) -> None:
    cluster_id = connect(factory, box, "c1", "https://git.example/acme/platform.git")

    async def published(n: int) -> bool:
        return len(bus.jobs) >= n

    # the first server queues the sync job, then stops while waiting for the agent
    await _run_until(GitOpsController(deps, tick_seconds=0.05), lambda: published(1), "the first sync job")
    (interrupted,) = bus.jobs
    assert [j.id for j in _open_sync_jobs(factory)] == [interrupted.job_id]

    # the server starts again: the interrupted sync fails, is requested again and re-run
    await _run_until(GitOpsController(deps, tick_seconds=0.05), lambda: published(2), "the re-run's job")
    rerun = bus.jobs[1]
    assert rerun.job_id != interrupted.job_id
    assert [j.id for j in _open_sync_jobs(factory)] == [rerun.job_id]  # one sync job queued, not two
    assert (cluster_id, [interrupted.job_id]) in bus.cancelled  # the agent is told too
    with transaction(factory) as s:
        old = service.get_operation(s, interrupted.operation_id)
        assert old.state == service.OperationState.CANCELLED
        assert any("superseded" in str(m) for m in old.jobs[0].messages)
        assert service.get_operation(s, rerun.operation_id).state == service.OperationState.RUNNING
        history = list(s.scalars(select(GitSync).order_by(GitSync.started_at)))
        assert [h.status for h in history] == ["failed", "running"]
        assert "interrupted" in (history[0].error or {}).get("message", "")


async def test_a_running_interrupted_job_is_told_to_stop(
    deps: Deps, factory: SessionFactory, box: SecretBox, bus: FakeBus, clock: Clock
) -> None:
    cluster_id = connect(factory, box, "c1", "https://git.example/acme/platform.git")

    async def published(n: int) -> bool:
        return len(bus.jobs) >= n

    await _run_until(GitOpsController(deps, tick_seconds=0.05), lambda: published(1), "the first sync job")
    (interrupted,) = bus.jobs
    with transaction(factory) as s:  # the agent had started it
        job = s.get(Job, interrupted.job_id)
        assert job is not None
        job.state, job.started_at, job.state_source = "running", clock(), "agent"

    await _run_until(GitOpsController(deps, tick_seconds=0.05), lambda: published(2), "the re-run's job")
    assert (cluster_id, [interrupted.job_id]) in bus.cancelled
    jobs: dict[str, Any] = {j.id: j.state for j in _open_sync_jobs(factory)}
    assert jobs == {interrupted.job_id: "cancelling", bus.jobs[1].job_id: "pending"}


# --------------------------------------------------------------------------- issue 16, item 6


async def test_a_sync_warns_when_the_definition_names_another_repository(
    deps: Deps, factory: SessionFactory, box: SecretBox, bus: FakeBus
) -> None:
    # the example's spec.git_repository is moorage-demo/gitops-repo, branch main
    connect(factory, box, "c1", "https://git.example/acme/platform.git")

    async def published() -> bool:
        return len(bus.jobs) >= 1

    async def finished() -> bool:
        with transaction(factory) as s:
            return any(h.status == "success" for h in s.scalars(select(GitSync)))

    controller = GitOpsController(deps, tick_seconds=0.05)
    task = asyncio.create_task(controller.run())
    try:
        await eventually(published, "the sync job")
        with transaction(factory) as s:  # the agent ran it
            job = s.get(Job, bus.jobs[0].job_id)
            assert job is not None
            job.state = "success"
            job.operation.state = service.OperationState.SUCCESS
        await eventually(finished, "the sync's end")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with transaction(factory) as s:
        (row,) = s.scalars(select(GitSync))
        assert "warning: the definition's spec.git_repository names repository moorage-demo/gitops-repo" in (
            row.message
        )
        assert "(connected: https://git.example/acme/platform.git)" in row.message
