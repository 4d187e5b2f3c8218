"""The GitOps loop with a fake Git and the fake bus (issue 18): one repository's failure never stops
the polling of the others (item 4), and after a restart in the middle of a sync the sync is resumed:
its queued job is waited for, not sent again (issue 19; one queued before it was sent is sent), and
one interrupted before it queued a job runs again."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

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


def _agent_ran(factory: SessionFactory, job_id: str) -> None:
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.state = "success"
        job.operation.state = service.OperationState.SUCCESS


def _history(factory: SessionFactory) -> list[GitSync]:
    with transaction(factory) as s:
        return list(s.scalars(select(GitSync).order_by(GitSync.started_at)))


async def test_after_a_restart_mid_sync_the_queued_job_is_waited_for_and_not_sent_again(
    deps: Deps, factory: SessionFactory, box: SecretBox, bus: FakeBus
) -> None:
    """Issue 19: the server (or replica) that takes the cluster over resumes the sync: same history
    row, the job it had queued is awaited, no second job reaches the agent, nothing is cancelled."""
    cluster_id = connect(factory, box, "c1", "https://git.example/acme/platform.git")

    async def queued() -> bool:
        # sent and recorded as sent: a stop between the two is the other case (sent again, at least once)
        if not bus.jobs:
            return False
        with transaction(factory) as s:
            job = s.get(Job, bus.jobs[0].job_id)
            return job is not None and job.dispatched_at is not None

    # the first server queues the sync job, then stops while waiting for the agent
    await _run_until(GitOpsController(deps, tick_seconds=0.05), queued, "the first sync job")
    (first_job,) = bus.jobs

    async def resumed() -> bool:
        rows = _history(factory)
        return cluster_id in controller.running and len(rows) == 1 and rows[0].phase == store.APPLYING

    async def finished() -> bool:
        return [h.status for h in _history(factory)] == ["success"]

    controller = GitOpsController(deps, tick_seconds=0.05)
    task = asyncio.create_task(controller.run())
    try:
        await eventually(resumed, "the sync resumed")
        await asyncio.sleep(0.3)
        assert len(bus.jobs) == 1  # not sent again
        _agent_ran(factory, first_job.job_id)
        await eventually(finished, "the resumed sync's end")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert bus.cancelled == []
    (row,) = _history(factory)
    assert row.operation_id == first_job.operation_id
    assert row.message.startswith("applied")
    assert "resumed after the server running it stopped" in row.message
    with transaction(factory) as s:
        repo = s.scalars(select(GitRepository)).one()
        assert repo.sync_status == store.SYNCED


async def test_a_sync_interrupted_before_it_queued_its_job_fails_and_runs_again(
    deps: Deps, factory: SessionFactory, box: SecretBox, bus: FakeBus, clock: Clock
) -> None:
    connect(factory, box, "c1", "https://git.example/acme/platform.git")
    with transaction(factory) as s:  # a server stopped while fetching: a running row, no job
        repo = s.scalars(select(GitRepository)).one()
        store.start_sync(s, repo, clock())

    async def published() -> bool:
        return len(bus.jobs) >= 1

    await _run_until(GitOpsController(deps, tick_seconds=0.05), published, "the re-run's job")
    rows = _history(factory)
    assert [h.status for h in rows] == ["failed", "running"]
    assert "interrupted" in (rows[0].error or {}).get("message", "")
    assert rows[1].operation_id == bus.jobs[0].operation_id


async def test_a_resumed_sync_sends_the_job_its_server_created_but_never_sent(
    deps: Deps, factory: SessionFactory, box: SecretBox, bus: FakeBus
) -> None:
    connect(factory, box, "c1", "https://git.example/acme/platform.git")

    async def published(n: int) -> bool:
        return len(bus.jobs) >= n

    async def recorded() -> bool:  # the first server sent the job and recorded it as sent
        if not bus.jobs:
            return False
        with transaction(factory) as s:
            job = s.get(Job, bus.jobs[0].job_id)
            return job is not None and job.dispatched_at is not None

    await _run_until(GitOpsController(deps, tick_seconds=0.05), recorded, "the first sync job")
    (first,) = bus.jobs
    with transaction(factory) as s:  # as if the server died between creating the job and sending it
        job = s.get(Job, first.job_id)
        assert job is not None
        job.dispatched_at = None
    await _run_until(GitOpsController(deps, tick_seconds=0.05), lambda: published(2), "the job sent")
    assert [j.job_id for j in bus.jobs] == [first.job_id, first.job_id]  # the same job (same message id)
    assert [j.id for j in _open_sync_jobs(factory)] == [first.job_id]
    (row,) = _history(factory)
    assert row.status == "running"


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
