"""One GitOps sync of one cluster: Fetching → Validating → Applying → Completed.

Each phase is written to the database as it starts, so the status endpoint shows progress. A
failure ends the run in Error with a history row saying why; failures of the Git server (down,
refused credentials) are retried with backoff, while a bad commit waits for the next one. Nothing
reaches the cluster unless the whole definition at that commit validated."""

import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from moorage.server import addon_state, registries, service
from moorage.server.bundle import MAX_BUNDLE_BYTES, BundleCheck, BundleError, validate_tree
from moorage.server.db.models import Cluster, GitRepository
from moorage.server.db.session import SessionFactory, in_transaction
from moorage.server.gitops import store
from moorage.server.gitops.git import Git, GitAuth, GitError
from moorage.server.ports import Bus
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from moorage.spec.digest import Changes, compare
from moorage.spec.gitsource import mismatch
from moorage.spec.migration import decommissioned_issue
from moorage.spec.protocol import JobAction, JobKind, JobMessage, JobState

log = logging.getLogger("moorage.server.gitops")

R = TypeVar("R")
WAIT_POLL_SECONDS = 0.25
WAIT_MAX_SECONDS = 5.0


@dataclass
class Deps:
    session_factory: SessionFactory
    bus: Bus
    git: Git
    box: SecretBox
    settings: ServerSettings
    clock: Callable[[], datetime]
    # the live event stream (GET /api/v1/events): each phase and the end of every sync
    notify: Callable[[dict[str, Any]], None] | None = None

    async def db(self, work: Callable[[Session], R]) -> R:
        return await in_transaction(self.session_factory, work)

    def tell(self, run: "Run", status: str, phase: str | None, message: str) -> None:
        if self.notify is not None:
            self.notify(
                {
                    "type": "gitops",
                    "cluster": run.cluster_name,
                    "status": status,
                    "phase": phase,
                    "message": message,
                }
            )


@dataclass(frozen=True)
class Run:
    """What one run needs, copied out of the database session."""

    sync_id: str
    cluster_id: str
    cluster_name: str
    url: str
    branch: str
    path: str
    revision: str | None
    source: str
    triggered_by: str
    retry_count: int
    auth: GitAuth | None
    applied_digests: dict[str, str]
    observed_source: dict[str, Any] | None
    clean: bool  # the last sync succeeded fully: unchanged entries need no job
    auth_refused: str | None = None  # the credential must not be sent to this URL (never sent)
    # a sync whose server stopped after queueing its job: this run waits for that job (not a new one)
    resume_operation: str | None = None

    @property
    def source_key(self) -> dict[str, str]:
        return {"url": self.url, "branch": self.branch, "path": self.path}


class SyncFailed(Exception):
    def __init__(
        self, error: dict[str, Any], *, retry: bool, applied_with_failed_members: bool = False
    ) -> None:
        super().__init__(error.get("message", ""))
        self.error = error
        self.retry = retry
        self.applied_with_failed_members = applied_with_failed_members


def _repo(session: Session, cluster_id: str) -> GitRepository:
    repo = store.repository_of(session, cluster_id)
    if repo is None:
        raise service.NotFound("the cluster was disconnected from Git during the sync")
    return repo


async def claim(deps: Deps, cluster_id: str) -> Run | None:
    """Start the cluster's requested sync (None if there is no request any more)."""

    def work(session: Session) -> Run | None:
        repo = store.repository_of(session, cluster_id)
        if repo is None or repo.requested_at is None:
            return None
        row = store.start_sync(session, repo, deps.clock())
        auth, refused = None, None
        try:
            auth = store.auth_of(
                deps.box,
                repo.credential,
                repo.url,
                loopback_http=store.loopback_http(deps.settings.egress_policy()),
            )
        except store.CredentialRefused as e:
            refused = e.message
        return Run(
            sync_id=row.id,
            cluster_id=repo.cluster_id,
            cluster_name=repo.cluster.name,
            url=repo.url,
            branch=repo.branch,
            path=repo.path,
            revision=row.revision,
            source=row.source,
            triggered_by=row.triggered_by,
            retry_count=row.retry_count,
            auth=auth,
            auth_refused=refused,
            applied_digests=dict(repo.applied_digests or {}),
            observed_source=repo.observed_source,
            clean=repo.last_commit_sha is not None
            and repo.error is None
            and not repo.applied_with_failed_members,
        )

    return await deps.db(work)


async def resume(deps: Deps, sync_id: str) -> Run | None:
    """Take over a sync left running (its server stopped or died) that had queued its job: the same
    history row, the same commit, and the job already queued is waited for, not sent again."""

    def work(session: Session) -> Run | None:
        row = store.get_sync(session, sync_id)
        repo = store.repository_of(session, row.cluster_id)
        if repo is None or row.status != "running" or row.operation_id is None:
            return None
        auth, refused = None, None
        try:
            auth = store.auth_of(
                deps.box,
                repo.credential,
                row.url,
                loopback_http=store.loopback_http(deps.settings.egress_policy()),
            )
        except store.CredentialRefused as e:
            refused = e.message
        row.message = "resumed after its server stopped: waiting for the job it queued"
        repo.sync_status = store.SYNCING
        return Run(
            sync_id=row.id,
            cluster_id=repo.cluster_id,
            cluster_name=repo.cluster.name,
            url=row.url,
            branch=row.branch,
            path=row.path,
            revision=row.commit_sha or row.revision,
            source=row.source,
            triggered_by=row.triggered_by,
            retry_count=row.retry_count,
            auth=auth,
            auth_refused=refused,
            applied_digests=dict(repo.applied_digests or {}),
            observed_source=repo.observed_source,
            clean=False,
            resume_operation=row.operation_id,
        )

    return await deps.db(work)


async def _phase(deps: Deps, run: Run, phase: str, message: str, **row_fields: Any) -> None:
    def work(session: Session) -> None:
        repo = _repo(session, run.cluster_id)
        repo.sync_phase = phase
        repo.sync_progress_message = message
        row = store.get_sync(session, run.sync_id)
        row.phase = phase
        row.message = message
        for key, value in row_fields.items():
            setattr(row, key, value)

    await deps.db(work)
    deps.tell(run, store.SYNCING, phase, message)


async def execute(deps: Deps, run: Run, fetch_slots: asyncio.Semaphore) -> None:
    """Run the sync to its end; never raises (every outcome is recorded)."""
    try:
        async with fetch_slots:
            sha = await _fetch(deps, run)
            check, files = await _validate(deps, run, sha)
        await _apply(deps, run, sha, check, files)
    except SyncFailed as failure:
        await _fail(deps, run, failure)
    except Exception as e:  # a bug must not wedge the cluster in "syncing"
        log.exception("GitOps sync of %s failed unexpectedly", run.cluster_name)
        await _fail(
            deps, run, SyncFailed(store.general_error(f"internal error: {type(e).__name__}: {e}"), retry=True)
        )


async def _fetch(deps: Deps, run: Run) -> str:
    if run.auth_refused is not None:
        raise SyncFailed(store.general_error(run.auth_refused), retry=False)
    try:
        head = await deps.git.fetch(run.url, run.branch, run.auth)
        sha = await deps.git.resolve(run.url, run.revision, run.branch) if run.revision else head
        when = await deps.git.commit_time(run.url, sha)
    except GitError as e:
        raise SyncFailed(store.general_error(e.message), retry=e.temporary) from None

    def seen(session: Session) -> None:
        repo = _repo(session, run.cluster_id)
        repo.last_seen_head = head

    await deps.db(seen)
    await _phase(
        deps,
        run,
        store.VALIDATING,
        f"validating {run.path} at {sha[:12]}",
        commit_sha=sha,
        commit_timestamp=when,
    )
    return sha


async def _validate(deps: Deps, run: Run, sha: str) -> tuple[BundleCheck, dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="moorage-git-") as tmp:
        base = Path(tmp)
        try:
            tree = await deps.git.tree(run.url, sha, base)
        except GitError as e:
            raise SyncFailed(store.general_error(e.message), retry=e.temporary) from None
        if run.path not in tree.files:
            skipped = [s for s in tree.skipped if s.startswith(run.path)]
            why = f" ({skipped[0]})" if skipped else ""
            # G6: a missing definition never means "delete everything"
            raise SyncFailed(
                store.general_error(
                    f"the definition file {run.path} is not in commit {sha[:12]} of branch "
                    f"{run.branch}{why}; nothing was applied. Fix the path with "
                    "`moorage cluster connect … --path` or restore the file"
                ),
                retry=False,
            )
        try:
            check = await asyncio.to_thread(validate_tree, base, run.path)
        except BundleError as e:
            raise SyncFailed(store.general_error(e.message), retry=False) from None
        decommissioned = await deps.db(lambda s: _repo(s, run.cluster_id).cluster.argocd_decommissioned_at)
        if decommissioned is not None and check.resolved is not None:
            refused = decommissioned_issue(check.resolved, decommissioned.isoformat())
            check.errors += [refused] if refused else []
        if not check.ok:
            raise SyncFailed(store.validation_error(check.errors, check.warnings), retry=False)
        files = {rel: (base / rel).read_text(encoding="utf-8") for rel in check.files}
    await _registry_credentials(deps, run, check)
    size = sum(len(k) + len(v.encode()) for k, v in files.items())
    if size > MAX_BUNDLE_BYTES:
        raise SyncFailed(
            store.general_error(
                f"the definition's files add up to {size} bytes; one sync carries at most {MAX_BUNDLE_BYTES}"
            ),
            retry=False,
        )
    return check, files


async def _registry_credentials(deps: Deps, run: Run, check: BundleCheck) -> None:
    """Each add-on's values against its chart's values.schema.json, and each registry's credential
    sealed for the agent into `check.sealed`; a missing or refused credential, a chart refused or not
    found, or a value the schema rejects fails the Validating phase, naming it."""
    if not check.registries:
        return

    def cluster_of(session: Session) -> Cluster:
        cluster = service.get_cluster_by_id(session, run.cluster_id)
        if cluster is None:
            raise service.NotFound("the cluster was deleted during the sync")
        return cluster

    check.sealed, errors, warnings = await registries.prepare_job(
        deps.db,
        deps.box,
        cluster_of,
        check.registries,
        check.resolved,
        policy=deps.settings.egress_policy(),
        ghcr_fallback=deps.settings.ghcr_git_token,
    )
    check.warnings.extend(warnings)
    if errors:
        raise SyncFailed(store.validation_error(errors, check.warnings), retry=False)


async def _apply(deps: Deps, run: Run, sha: str, check: BundleCheck, files: dict[str, str]) -> None:
    changes = compare(run.applied_digests, check.digests)
    same_source = run.observed_source == run.source_key
    if run.resume_operation is None and changes.empty and same_source and run.clean:
        await _complete(deps, run, sha, check, changes, "no changes: every entry is as last applied")
        return
    await _phase(deps, run, store.APPLYING, f"applying {changes.summary()}", changes=changes.to_dict())
    if run.resume_operation is not None:
        operation_id = run.resume_operation  # queued by the server that stopped: not sent again
        await _send_if_never_sent(deps, operation_id)
    else:
        operation_id = await _queue(deps, run, sha, check, files, changes)
    await _wait_and_end(deps, run, sha, check, changes, operation_id)


async def _queue(
    deps: Deps, run: Run, sha: str, check: BundleCheck, files: dict[str, str], changes: Changes
) -> str:
    """The sync's operation and job, queued for the agent; returns the operation's id."""

    def create(session: Session) -> tuple[str, JobMessage]:
        cluster = service.get_cluster_by_id(session, run.cluster_id)
        if cluster is None:
            raise service.NotFound("the cluster was deleted during the sync")
        # a commit that changes a rolled-back add-on ends its hold; the others stay held
        touched = [
            r.removeprefix("addon/") for r in (*changes.added, *changes.changed) if r.startswith("addon/")
        ]
        addon_state.release_holds_changed_by(session, cluster, touched, deps.clock())
        operation, message = service.create_operation_with_job(
            session,
            cluster,
            action=JobAction.SYNC,
            # a GitOps sync changes only automated add-ons (the others wait for `addons sync`)
            payload={
                "files": files,
                "root": run.path,
                "commit": sha,
                "trigger": "auto",
                "held": addon_state.held_addons(session, cluster),
                **check.sealed,
            },
            timeout_seconds=check.timeout_seconds,
            operation_kind=store.GITOPS_SYNC_KIND,
            created_by=f"gitops {run.source}: {run.triggered_by}"[:200],
            now=deps.clock(),
        )
        store.get_sync(session, run.sync_id).operation_id = operation.id
        return operation.id, message

    operation_id, message = await deps.db(create)
    try:
        await deps.bus.publish_job(message)
    except Exception as e:
        reason = f"the sync job could not be queued for the agent: {e}"
        await deps.db(lambda s: service.fail_job(s, message.job_id, reason, deps.clock()))
        raise SyncFailed(store.general_error(reason), retry=True) from None
    await deps.db(lambda s: service.mark_dispatched(s, message.job_id, deps.clock()))
    return operation_id


async def _send_if_never_sent(deps: Deps, operation_id: str) -> None:
    """The job of a resumed sync, published if its server stopped before recording it sent (the job
    id is the message id: JetStream drops a second copy of one it did receive, within its window)."""

    def unsent(session: Session) -> JobMessage | None:
        (job,) = service.get_operation(session, operation_id).jobs
        if job.state != JobState.PENDING.value or job.dispatched_at is not None:
            return None
        return JobMessage(
            job_id=job.id,
            operation_id=operation_id,
            cluster_id=job.cluster_id,
            kind=JobKind(job.kind),
            action=JobAction(job.action),
            payload=dict(job.payload or {}),
            timeout_seconds=job.timeout_seconds,
            created_at=job.created_at,
        )

    message = await deps.db(unsent)
    if message is None:
        return
    try:
        await deps.bus.publish_job(message)
    except Exception as e:
        reason = f"the sync job could not be queued for the agent: {e}"
        await deps.db(lambda s: service.fail_job(s, message.job_id, reason, deps.clock()))
        raise SyncFailed(store.general_error(reason), retry=True) from None
    await deps.db(lambda s: service.mark_dispatched(s, message.job_id, deps.clock()))


async def _wait_and_end(
    deps: Deps, run: Run, sha: str, check: BundleCheck, changes: Changes, operation_id: str
) -> None:
    state, messages, result = await _wait(deps, run, operation_id)
    if state != service.OperationState.SUCCESS:
        outcomes = result.get("outcomes") if isinstance(result.get("outcomes"), dict) else {}
        failed = sorted(
            f"{ref}: {o.get('message', '')}"
            for ref, o in (outcomes or {}).items()
            if isinstance(o, dict) and o.get("status") in ("failed", "blocked")
        )
        detail = failed or [str(m) for m in messages[-10:]] or [f"the operation ended {state}"]
        raise SyncFailed(
            {
                "error_type": "general",
                "message": f"applying commit {sha[:12]} {state}: " + "; ".join(detail)[:4000],
                "operation_id": operation_id,
            },
            retry=False,
            applied_with_failed_members=bool(outcomes),
        )
    await _complete(deps, run, sha, check, changes, f"applied {changes.summary()}")


async def _wait(deps: Deps, run: Run, operation_id: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Wait for the sync's operation to end. A queued job waits for its agent (the job expiry of
    the control plane decides when it gives up), so this only reports what it is waiting for."""
    shown = ""
    delay = WAIT_POLL_SECONDS
    while True:

        def view(session: Session) -> tuple[str, str, list[Any], dict[str, Any]]:
            operation = service.get_operation(session, operation_id)
            (job,) = operation.jobs
            return operation.state, job.state, list(job.messages or []), dict(job.result or {})

        op_state, job_state, messages, result = await deps.db(view)
        if op_state in service.FINAL_OPERATION_STATES:
            return op_state, messages, result
        message = (
            "applying: waiting for the agent to take the job"
            if job_state == JobState.PENDING.value
            else f"applying: the agent is running the job ({len(messages)} entries done)"
        )
        if message != shown:
            await _phase(deps, run, store.APPLYING, message)
            shown = message
        # a job waiting for an offline agent may wait for hours: look less and less often
        delay = (
            WAIT_POLL_SECONDS if job_state != JobState.PENDING.value else min(WAIT_MAX_SECONDS, delay * 1.5)
        )
        await asyncio.sleep(delay)


def source_warning(check: BundleCheck, run: Run) -> str:
    """A definition whose spec.git_repository names another repository or branch than the connection."""
    return mismatch(check.git_repository, run.url, run.branch) if check.git_repository else ""


async def _complete(
    deps: Deps, run: Run, sha: str, check: BundleCheck, changes: Changes, message: str
) -> None:
    if run.resume_operation is not None:
        message += "; resumed after the server running it stopped"
    if warning := source_warning(check, run):
        message += f"; warning: {warning}"
        log.warning("GitOps sync of %s: %s", run.cluster_name, warning)

    def work(session: Session) -> None:
        now = deps.clock()
        repo = _repo(session, run.cluster_id)
        row = store.get_sync(session, run.sync_id)
        store.finish(row, now, status="success", message=message)
        row.changes = changes.to_dict()
        repo.sync_status = store.SYNCED
        repo.sync_phase = store.COMPLETED
        repo.sync_progress_message = message
        repo.error = None
        repo.applied_with_failed_members = False
        repo.retry_count = 0
        repo.next_retry_at = None
        repo.last_synced_at = now
        repo.last_synced_from = run.source
        repo.last_commit_sha = sha
        repo.last_commit_timestamp = row.commit_timestamp
        if repo.pending_commit_sha == sha:
            repo.pending_commit_sha = None
        repo.observed_source = run.source_key
        repo.applied_digests = dict(check.digests)

    await deps.db(work)
    deps.tell(run, store.SYNCED, store.COMPLETED, message)
    log.info("GitOps sync of %s at %s: %s", run.cluster_name, sha[:12], message)


async def _fail(deps: Deps, run: Run, failure: SyncFailed) -> None:
    def work(session: Session) -> None:
        now = deps.clock()
        row = store.get_sync(session, run.sync_id)
        store.finish(row, now, status="failed", error=failure.error, message=failure.error.get("message", ""))
        repo = store.repository_of(session, run.cluster_id)
        if repo is None:
            return
        repo.sync_status = store.ERROR
        repo.sync_progress_message = failure.error.get("message", "")
        repo.error = failure.error
        repo.applied_with_failed_members = failure.applied_with_failed_members
        if failure.retry and repo.requested_at is None:  # a newer request runs anyway: no retry
            repo.retry_count = run.retry_count + 1
            delay = store.backoff_seconds(
                repo.retry_count, deps.settings.git_retry_base_seconds, deps.settings.git_retry_max_seconds
            )
            repo.next_retry_at = now + timedelta(seconds=delay)
            row.message = f"{row.message} (attempt {repo.retry_count + 1} in {delay:.0f} s)"
        else:
            repo.retry_count = 0
            repo.next_retry_at = None

    await deps.db(work)
    deps.tell(run, store.ERROR, None, failure.error.get("message", ""))
    log.warning("GitOps sync of %s failed: %s", run.cluster_name, failure.error.get("message", ""))
