"""The GitOps loop of the control plane: turns due retries and moved branch tips (polling) into sync
requests, and runs requested syncs, one at a time per cluster.

Requests live in the database (GitRepository.requested_*), so a webhook only writes a row and wakes
this loop; a burst of requests for one cluster coalesces, and a server restart loses none. Polling
asks each distinct (URL, branch, credential) once per round with `git ls-remote`, however many
clusters share it.

With several replicas on one PostgreSQL (docs/architecture.md, "Several replicas"), a cluster's sync
runs on the replica that holds its lease (`moorage.server.leases.ClusterLeases`, an advisory lock);
the others skip it. A sync left `running` by a replica that died is found by the replica that takes
the lease next: it fails it as interrupted and runs it again. Due polls and retries are claimed
with `FOR UPDATE SKIP LOCKED`, so each is handled by one replica."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy.orm import Session

from moorage.server.gitops import runner, store
from moorage.server.gitops.git import GitAuth, GitError
from moorage.server.leases import ClusterLeases

log = logging.getLogger("moorage.server.gitops")

TICK_SECONDS = 1.0


class GitOpsController:
    def __init__(self, deps: runner.Deps, *, tick_seconds: float = TICK_SECONDS) -> None:
        self.deps = deps
        self.tick_seconds = tick_seconds
        self.running: set[str] = set()
        self.polls = 0  # ls-remote calls made (for benchmarks and metrics)
        self._wake = asyncio.Event()
        self._fetch_slots = asyncio.Semaphore(deps.settings.git_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._polling: asyncio.Task[None] | None = None
        # the last answer per source: clusters sharing a source but due a few seconds apart (the
        # poll jitter) reuse it instead of asking again
        self._answers: dict[tuple[str, str, str | None], tuple[float, str | None, str]] = {}
        self.leases = ClusterLeases(deps.session_factory.kw["bind"])
        self.forward_wake: Callable[[], None] | None = None  # to the other replicas (server.fanout)

    def wake(self, *, forward: bool = True) -> None:
        """Something was requested: look now instead of at the next tick (on every replica)."""
        if forward and self.forward_wake is not None:
            self.forward_wake()
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("the GitOps loop failed a round; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick_seconds)
                self._wake.clear()
        finally:
            for task in [*self._tasks, *([self._polling] if self._polling else [])]:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.to_thread(self.leases.close)

    async def tick(self) -> None:
        now = self.deps.clock()

        def retries(session: Session) -> None:
            for repo in store.due_retries(session, now):
                store.retry_due(session, repo, now)

        await self.deps.db(retries)
        if self._polling is None or self._polling.done():
            self._polling = asyncio.create_task(self.poll_round())
        busy = sorted(self.running)

        def wanted(session: Session) -> list[str]:
            ids = [r.cluster_id for r in store.requested(session, busy)]
            # syncs left running by a replica (or a server) that stopped: their cluster's lease is free
            return ids + [c for c in store.running_sync_clusters(session, busy) if c not in ids]

        for cluster_id in await self.deps.db(wanted):
            if cluster_id not in self.running:
                self._start(cluster_id)

    def _start(self, cluster_id: str) -> None:
        self.running.add(cluster_id)

        async def one() -> None:
            taken = False
            try:
                taken = await asyncio.to_thread(self.leases.try_take, cluster_id)
                if not taken:
                    return  # another replica runs this cluster's sync
                if await self._take_over(cluster_id):
                    return
                await self._supersede(cluster_id)
                run = await runner.claim(self.deps, cluster_id)
                if run is not None:
                    await runner.execute(self.deps, run, self._fetch_slots)
            except Exception:
                log.exception("GitOps sync of cluster %s could not start", cluster_id)
            finally:
                if taken:
                    await asyncio.to_thread(self.leases.release, cluster_id)
                self.running.discard(cluster_id)
                if taken:
                    self._wake.set()  # a request that came in meanwhile runs now

        task = asyncio.create_task(one())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_over(self, cluster_id: str) -> bool:
        """Syncs of the cluster left running by a server that stopped (this one before a restart,
        or a replica that died): one that had queued its job is resumed (its job waited for, not
        sent again); one that had not is failed as interrupted and requested again. True when a
        sync was resumed (and has ended)."""
        now = self.deps.clock()

        def work(session: Session) -> tuple[str | None, int]:
            keep = store.resumable_sync(session, cluster_id)
            return keep, store.interrupted_syncs(session, now, cluster_id, keep=keep)

        keep, failed = await self.deps.db(work)
        if failed:
            log.warning(
                "%d GitOps sync(s) of cluster %s were interrupted before queueing a job; it runs again",
                failed,
                cluster_id,
            )
        if keep is None:
            return False
        run = await runner.resume(self.deps, keep)
        if run is None:
            return False
        log.warning("resuming the GitOps sync of %s left running by a server that stopped", run.cluster_name)
        await runner.execute(self.deps, run, self._fetch_slots)
        return True

    async def _supersede(self, cluster_id: str) -> None:
        """A new run of the cluster starts: a GitOps sync operation still open (its run was
        interrupted by a restart) is cancelled, so its job is not left queued next to the new one."""
        now = self.deps.clock()
        job_ids = await self.deps.db(lambda s: store.supersede_open_syncs(s, cluster_id, now))
        if not job_ids:
            return
        log.info(
            "cluster %s: superseded the unfinished GitOps sync job(s) %s", cluster_id, ", ".join(job_ids)
        )
        try:
            await self.deps.bus.cancel_jobs(cluster_id, job_ids)
        except Exception as e:  # an offline agent skips cancelled jobs it is handed later
            log.warning("telling the agent of cluster %s to cancel failed: %s", cluster_id, e)

    async def poll_round(self) -> None:
        """ls-remote every due repository once per distinct source; request syncs where the tip moved.
        One repository's failure (its credential cannot be opened, git fails in an unexpected way)
        is logged and never keeps the others from being polled."""
        try:
            await self._poll_round()
        except Exception:
            log.exception("a GitOps poll round failed; the next one starts at the next tick")

    async def _poll_round(self) -> None:
        now = self.deps.clock()

        def due(session: Session) -> dict[tuple[str, str, str | None], list[tuple[str, GitAuth | None]]]:
            groups: dict[tuple[str, str, str | None], list[tuple[str, GitAuth | None]]] = defaultdict(list)
            for repo in store.due_polls(session, now):
                repo.next_poll_at = store.next_poll(repo, now)
                key = (repo.url, repo.branch, repo.credential_id)
                try:
                    auth = store.auth_of(
                        self.deps.box,
                        repo.credential,
                        repo.url,
                        loopback_http=store.loopback_http(self.deps.settings.egress_policy()),
                    )
                except Exception as e:
                    log.warning(
                        "cluster %s is not polled: its Git credential cannot be used: %s", repo.cluster_id, e
                    )
                    continue
                groups[key].append((repo.cluster_id, auth))
                fresh_for = min(
                    fresh.get(key, float("inf")), 2 * store.POLL_JITTER * repo.poll_interval_seconds
                )
                fresh[key] = fresh_for
            return groups

        fresh: dict[tuple[str, str, str | None], float] = {}

        groups = await self.deps.db(due)
        if not groups:
            return

        loop = asyncio.get_running_loop()

        async def ask(key: tuple[str, str, str | None], auth: GitAuth | None) -> tuple[str | None, str]:
            cached = self._answers.get(key)
            if cached is not None and loop.time() - cached[0] < fresh[key]:
                return cached[1], cached[2]
            async with self._fetch_slots:
                self.polls += 1
                try:
                    answer: tuple[str | None, str] = await self.deps.git.ls_remote(key[0], key[1], auth), ""
                except GitError as e:
                    answer = None, e.message
                except Exception as e:  # a bug or a bad stored value: this source only
                    log.exception("polling branch %s of %s failed unexpectedly", key[1], key[0])
                    answer = None, f"internal error: {type(e).__name__}"
            self._answers[key] = (loop.time(), *answer)
            return answer

        keys = list(groups)
        answers = await asyncio.gather(*(ask(k, groups[k][0][1]) for k in keys))

        def record(session: Session) -> int:
            requested = 0
            for key, (head, problem) in zip(keys, answers, strict=True):
                for cluster_id, _ in groups[key]:
                    repo = store.repository_of(session, cluster_id)
                    if repo is None or repo.requested_at is not None or cluster_id in self.running:
                        continue
                    if head is None:
                        # let a sync report it (history, status, backoff), unless one already did
                        if repo.sync_status != store.ERROR:
                            store.request_sync(session, repo, "poll", f"poll: {problem[:150]}", now=now)
                            requested += 1
                    elif head != repo.last_seen_head:
                        store.request_sync(
                            session, repo, "poll", f"poll: new commit {head[:12]}", pending_sha=head, now=now
                        )
                        requested += 1
            return requested

        if await self.deps.db(record):
            self.wake()
