"""The agent process: registers with the server over HTTPS, connects out to NATS, runs jobs from its
cluster's durable queue in bounded read and write pools, sweeps every 60 s, publishes heartbeats,
and serves /livez, /readyz and /metrics. It never listens for the control plane."""

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from moorage import __version__
from moorage.agent import jobs
from moorage.agent.kubeproxy import KubeProxyAgent
from moorage.agent.registryauth import CredentialsError, open_credentials
from moorage.agent.state import StateTracker
from moorage.agent.transport import TransportRefused, check_url, client_context, explain_tls_failure
from moorage.agent.watch import watch_changes
from moorage.charts.source import RegistryAuth
from moorage.engine.context import EngineContext, Options
from moorage.engine.health.custom import Checks, load_file
from moorage.engine.observe import from_report, observe
from moorage.engine.outcome import Heartbeat
from moorage.helm.cli import Helm
from moorage.kube import config as kube_config
from moorage.kube.client import KubeClient
from moorage.kube.errors import KubeError
from moorage.kube.passthrough import Passthrough
from moorage.spec import protocol
from moorage.spec.content import ResolvedCluster
from moorage.spec.lifecycle import Cause
from moorage.spec.models import HealthCheck
from moorage.spec.protocol import (
    AddonObservation,
    HeartbeatMessage,
    JobKind,
    JobMessage,
    JobState,
    ResultMessage,
)
from moorage.spec.yamlsafe import parse_documents

log = logging.getLogger("moorage.agent")
# seconds; well inside the server's ack wait (60 s by default)
IN_PROGRESS_EVERY = float(os.environ.get("MOORAGE_AGENT_IN_PROGRESS_SECONDS", "15"))
EDIT_SETTLE_SECONDS = 0.5  # after an edit is seen, the sweep waits this long for the rest of a burst


_STREAM_ID = re.compile(r"^[a-z0-9]{1,32}$")
_MAX_LINE = 16 << 10


class RegistrationError(RuntimeError):
    pass


@dataclass
class AgentSettings:
    server: str
    token: str
    kubeconfig: Path | None = None
    read_workers: int = 5
    write_workers: int = 5
    sweep_interval: float = 60.0
    # watch Helm-managed objects and sweep as soon as one is edited (drift seen in seconds)
    watch: bool = os.environ.get("MOORAGE_AGENT_WATCH", "1") != "0"
    heartbeat_interval: float = 15.0
    health_port: int = 8080
    health_host: str = "0.0.0.0"  # noqa: S104 - kubelet probes reach the pod IP
    shutdown_grace: float = 30.0
    # server-wide user health checks (a YAML list of spec.health_checks entries), read at start;
    # a definition's own entries override them for the same kind
    health_checks_file: Path | None = None
    # TLS: the CA of the server's HTTPS certificate (None: the system's), of the NATS server's
    # (None: the one the server hands out at registration); plain text beyond loopback only when insecure
    ca: Path | None = None
    nats_ca: Path | None = None
    insecure: bool = False

    def __repr__(self) -> str:
        return f"AgentSettings(server={self.server!r}, kubeconfig={self.kubeconfig!r})"


def definition_checks(payload: Mapping[str, Any], base: Checks | None) -> Checks | None:
    """The user health checks of a job's definition (``spec.health_checks`` of its root file) over
    the agent's own. The definition was validated by ``jobs.load_bundle``; here only that list is read
    again, since the resolved definition does not carry it."""
    files = payload.get("files") or {}
    root = str(payload.get("root") or "import-cluster.yaml")
    text = files.get(root) if isinstance(files, Mapping) else None
    if not isinstance(text, str):
        return base
    try:
        docs = parse_documents(text, "definition")
        spec = docs[0].value.get("spec") if docs and isinstance(docs[0].value, dict) else None
        raw = spec.get("health_checks", spec.get("healthChecks")) if isinstance(spec, dict) else None
        entries = [HealthCheck.model_validate(e) for e in raw] if isinstance(raw, list) else []
    except Exception as e:  # an invalid definition is refused by load_bundle with every problem
        log.warning("the definition's health checks are ignored: %s", e)
        return base
    if not entries:
        return base
    return Checks.compile(entries).over(base)


@dataclass
class Registration:
    cluster_id: str
    cluster_name: str
    nats_url: str
    nats_user: str
    inbox_prefix: str
    nats_ca: str | None = None
    # the age identity that opens the registry credentials of this cluster's jobs (repr: hidden)
    seal_identity: str | None = field(default=None, repr=False)


async def register(server: str, token: str, ca: Path | None = None, insecure: bool = False) -> Registration:
    """Ask the server who we are and where NATS is. Retried by the caller on temporary errors;
    TransportRefused for a URL the token may not go to, RegistrationError for an untrusted certificate."""
    verdict = check_url(server, what="server", insecure=insecure)
    url = server.rstrip("/") + "/api/v1/agent/register"
    verify = client_context(ca) if verdict.tls else True
    async with httpx.AsyncClient(timeout=15, verify=verify) as client:
        response = await client.post(url, headers={"Authorization": f"Bearer {token}"})
    if response.status_code in (401, 403):
        detail = response.json().get("detail", "refused") if response.content else "refused"
        raise RegistrationError(f"the server refused the agent token: {detail}")
    response.raise_for_status()
    body = response.json()
    nats_ca = body.get("nats_ca")
    return Registration(
        body["cluster_id"],
        body["cluster_name"],
        body["nats_url"],
        body["nats_user"],
        body["inbox_prefix"],
        nats_ca if isinstance(nats_ca, str) else None,
        body["seal_identity"] if isinstance(body.get("seal_identity"), str) else None,
    )


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.jobs = Counter(
            "moorage_agent_jobs_total", "Jobs finished", ["kind", "state"], registry=self.registry
        )
        self.job_seconds = Histogram(
            "moorage_agent_job_duration_seconds", "Job duration", ["kind"], registry=self.registry
        )
        self.sweep_seconds = Gauge(
            "moorage_native_engine_sweep_duration_seconds",
            "Duration of the last sweep",
            registry=self.registry,
        )
        self.drifted = Gauge(
            "moorage_native_release_drifted", "Add-ons drifted at the last sweep", registry=self.registry
        )
        self.running = Gauge(
            "moorage_agent_running_jobs", "Jobs running now", ["kind"], registry=self.registry
        )


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.reg: Registration | None = None
        self._nc: Client | None = None
        self._kube: KubeClient | None = None
        self._kubeproxy: KubeProxyAgent | None = None
        self._ctx: EngineContext | None = None
        self._stopping = asyncio.Event()
        self._slots = {
            JobKind.READ: asyncio.Semaphore(settings.read_workers),
            JobKind.WRITE: asyncio.Semaphore(settings.write_workers),
        }
        self._write_lock = asyncio.Lock()  # one write at a time: syncs and sweeps must not interleave
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelled: dict[str, None] = {}  # job ids the server cancelled (insertion-ordered, bounded)
        self._cluster: ResolvedCluster | None = None
        self._commit: str | None = None  # the Git commit of the definition, when it came from Git
        self._state: StateTracker | None = None
        self._state_lock = asyncio.Lock()  # reports leave in the order they were made
        self._edited = asyncio.Event()  # a watched object was edited: sweep now, not at the interval
        self._last_beat: Heartbeat | None = None
        self._ready = False
        # raises ChecksFileError (every problem, with file and line) before anything starts
        path = settings.health_checks_file
        self._server_checks: Checks | None = load_file(path) if path is not None else None

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        health = await asyncio.start_server(
            self._health, self.settings.health_host, self.settings.health_port
        )
        try:
            self.reg = await self._register_with_backoff()
            self._state = StateTracker(self.reg.cluster_id)
            self._kube = KubeClient(kube_config.load(self.settings.kubeconfig))
            self._ctx = EngineContext(
                self._kube, Helm(kubeconfig=self.settings.kubeconfig), Options(), checks=self._server_checks
            )
            await self._connect()
            assert self._nc is not None
            await self._nc.subscribe(protocol.control_subject(self.reg.cluster_id), cb=self._control)
            self._kubeproxy = KubeProxyAgent(self._nc, self.reg.cluster_id, Passthrough(self._kube.config))
            await self._kubeproxy.start()
            self._ready = True
            log.info("agent of cluster %s connected to %s", self.reg.cluster_name, self.reg.nats_url)
            loops = [self._consume(), self._heartbeats(), self._sweeps()]
            if self.settings.watch:
                loops.append(self._watch())
            await asyncio.gather(*loops)
        finally:
            self._ready = False
            await self._shutdown()
            health.close()
            await health.wait_closed()

    async def _register_with_backoff(self) -> Registration:
        delay = 1.0
        settings = self.settings
        if warning := check_url(settings.server, what="server", insecure=settings.insecure).warning:
            log.warning("%s", warning)
        while True:
            try:
                return await register(settings.server, settings.token, settings.ca, settings.insecure)
            except (RegistrationError, TransportRefused):
                raise
            except (httpx.HTTPError, KeyError, ValueError) as e:
                hint = "give the agent the CA that signed it: --ca FILE ($MOORAGE_CA)"
                if message := explain_tls_failure(e, what="server", url=settings.server, ca_hint=hint):
                    raise RegistrationError(message) from None
                log.warning("cannot register with %s (%s); retrying in %.0fs", self.settings.server, e, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                raise asyncio.CancelledError
            delay = min(delay * 2, 30.0)

    async def _connect(self) -> None:
        assert self.reg is not None

        async def disconnected() -> None:
            log.warning("lost NATS; reconnecting")

        async def reconnected() -> None:
            # the server may have missed what was sent meanwhile: the next report is a full snapshot
            if self._state is not None:
                self._state.reset()
            asyncio.get_running_loop().create_task(self._report_all(Cause.CONNECT))

        # the nodes of a NATS cluster, comma-separated; each must pass the transport rule
        urls = [u.strip() for u in self.reg.nats_url.split(",") if u.strip()] or [self.reg.nats_url]
        url = urls[0]
        verdicts = [check_url(u, what="NATS", insecure=self.settings.insecure) for u in urls]
        verdict = verdicts[0]
        if any(v.tls != verdict.tls for v in verdicts):
            raise RegistrationError(f"the NATS URLs {self.reg.nats_url} mix TLS and plain text; use one kind")
        for warning in {v.warning for v in verdicts if v.warning}:
            log.warning("%s", warning)
        hint = (
            "give the agent the NATS server's CA: --nats-ca FILE ($MOORAGE_NATS_CA); with the embedded "
            "NATS the server hands its CA out, so the certificate was not made by this server"
        )
        connected = False

        async def error(e: Exception) -> None:
            message = explain_tls_failure(e, what="NATS server", url=url, ca_hint=hint)
            if message and not connected:
                raise RegistrationError(message)  # out of nats.connect: retrying cannot help
            log.warning("NATS: %s", message or e)

        tls = client_context(self.settings.nats_ca, self.reg.nats_ca) if verdict.tls else None
        self._nc = await nats.connect(
            urls,
            user=self.reg.nats_user,
            password=self.settings.token,
            inbox_prefix=self.reg.inbox_prefix.encode(),
            name=f"moorage-agent-{self.reg.cluster_name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=2,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
            # TLS before nats-server's INFO, so no one between can strip it (docs/security.md)
            tls=tls,
            tls_handshake_first=tls is not None,
        )
        connected = True

    async def _shutdown(self) -> None:
        """Let running jobs finish for a grace period; hand the rest back (nak) for redelivery."""
        if self._running:
            _, pending = await asyncio.wait(
                list(self._running.values()), timeout=self.settings.shutdown_grace
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._kubeproxy is not None:  # open watches end now: kubectl retries against the next agent
            await self._kubeproxy.stop()
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.drain(), 5)
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._kube is not None:
            await self._kube.close()

    # -- jobs -----------------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._nc is not None
        assert self.reg is not None
        sub = await self._nc.jetstream().pull_subscribe_bind(
            durable=protocol.agent_consumer(self.reg.cluster_id), stream=protocol.JOBS_STREAM
        )
        while not self._stopping.is_set():
            free = self._slots[JobKind.READ]._value + self._slots[JobKind.WRITE]._value
            try:
                batch = await sub.fetch(max(1, free), timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except Exception as e:
                log.warning("fetching jobs failed: %r", e)
                await asyncio.sleep(1)
                continue
            for msg in batch:
                await self._accept(msg)

    async def _accept(self, msg: Msg) -> None:
        assert self.reg is not None
        try:
            job = protocol.decode(msg.data, JobMessage)
        except protocol.ProtocolError as e:
            log.warning("job rejected: %s", e)
            await msg.term()  # never redeliver a message that cannot be a job
            return
        if job.cluster_id != self.reg.cluster_id:
            log.warning("job %s is for cluster %s, not this one: rejected", job.job_id, job.cluster_id)
            await msg.term()
            return
        if job.job_id in self._cancelled:
            await self._publish_result(job, JobState.CANCELLED, ["cancelled before it started"], {})
            await msg.ack()
            return
        task = asyncio.create_task(self._run_job(job, msg), name=f"job-{job.job_id}")
        self._running[job.job_id] = task
        task.add_done_callback(lambda _: self._running.pop(job.job_id, None))

    async def _run_job(self, job: JobMessage, msg: Msg) -> None:
        kind = job.kind if job.action not in protocol.WRITE_ACTIONS else JobKind.WRITE
        async with self._slots[kind]:
            await self._publish_result(job, JobState.RUNNING, [], {})
            keepalive = asyncio.create_task(self._in_progress(msg))
            started = time.monotonic()
            self.metrics.running.labels(kind).inc()
            try:
                state, messages, result = await asyncio.wait_for(
                    self._execute(job, kind), job.timeout_seconds
                )
            except TimeoutError:
                state, messages, result = JobState.TIMEOUT, [f"timed out after {job.timeout_seconds}s"], {}
            except asyncio.CancelledError:
                keepalive.cancel()
                self.metrics.running.labels(kind).dec()
                if job.job_id in self._cancelled:  # the server cancelled it: it ends here, for good
                    await self._publish_result(job, JobState.CANCELLED, ["cancelled while running"], {})
                    await msg.ack()
                    return
                with contextlib.suppress(Exception):
                    await msg.nak()  # shutting down: hand the job back for the next agent start
                raise
            except Exception as e:  # a bug must fail the job, not the agent
                log.exception("job %s failed", job.job_id)
                state, messages, result = JobState.FAILED, [f"{type(e).__name__}: {e}"], {}
            keepalive.cancel()
            self.metrics.running.labels(kind).dec()
            self.metrics.jobs.labels(kind, state).inc()
            self.metrics.job_seconds.labels(kind).observe(time.monotonic() - started)
            await self._publish_result(job, state, messages, result)
            await msg.ack()

    async def _execute(self, job: JobMessage, kind: JobKind) -> jobs.Outcome:
        assert self._ctx is not None
        if job.action is protocol.JobAction.LOGS:
            return await self._stream_logs(job)
        if job.action is protocol.JobAction.DEFINE:
            async with self._write_lock:
                outcome, cluster = jobs.define(job)
                if cluster is not None:
                    try:
                        self._use_registry_credentials(job)
                    except CredentialsError as e:  # the definition stands; private charts wait for a sync
                        log.warning("the definition's registry credentials are not usable: %s", e)
                    self._cluster, self._commit = cluster, _commit_of(job)
                    self._ctx.checks = definition_checks(job.payload, self._server_checks)
                    await self._report_all(Cause.DEFINE, locked=True)
            return outcome
        if kind is JobKind.READ:
            return await jobs.run_read(self._ctx, job, self._cluster)
        async with self._write_lock:
            if job.action is protocol.JobAction.SYNC:
                return await self._sync(job)
            if job.action is protocol.JobAction.SWEEP:
                return await self._sweep_and_report()
            if job.action is protocol.JobAction.ROLLBACK:
                outcome = await jobs.run_rollback(self._ctx, self._cluster, job)
                name = str(job.payload.get("addon", ""))
                if self._cluster is not None and name in self._cluster.addons:
                    await self._publish_state(
                        await observe(
                            self._ctx, self._cluster, cause=Cause.ROLLBACK, commit=self._commit, only={name}
                        ),
                        complete=False,
                    )
                return outcome
        return JobState.FAILED, [f"action {job.action} is not supported by this agent"], {}

    async def _sync(self, job: JobMessage) -> jobs.Outcome:
        """A sync job: report the add-ons it is about to change as deploying, deploy, then report
        every add-on as it is now."""
        assert self._ctx is not None
        try:
            preview, _, _ = jobs.load_bundle(job.payload)
            about_to_change = await jobs.changing(self._ctx, preview, job.payload)
        except (jobs.BundleError, KubeError):
            preview, about_to_change = None, []
        if preview is not None and about_to_change:
            await self._publish_state(
                [
                    o.model_copy(update={"deploying": True})
                    for o in await observe(
                        self._ctx,
                        preview,
                        cause=Cause.SYNC,
                        commit=_commit_of(job),
                        only=set(about_to_change),
                    )
                ],
                complete=False,
            )
        try:
            previous_auth = self._use_registry_credentials(job)
        except CredentialsError as e:
            return JobState.FAILED, [str(e)], {}
        # the deploy's health (strict health included) already follows the new definition's checks
        previous_checks = self._ctx.checks
        self._ctx.checks = definition_checks(job.payload, self._server_checks)
        outcome, cluster, failed = await jobs.run_sync(self._ctx, job)
        if cluster is None:
            self._ctx.checks = previous_checks
            self._ctx.helm.registry_auth = previous_auth
        else:
            self._cluster, self._commit = cluster, _commit_of(job)
            await self._publish_state(
                await observe(self._ctx, cluster, cause=Cause.SYNC, commit=self._commit, errors=failed),
                complete=True,
            )
        return outcome

    def _use_registry_credentials(self, job: JobMessage) -> dict[str, RegistryAuth]:
        """Open the job's registry credentials into the engine's Helm (kept in memory for the sweep's
        upgrades of this definition); returns the ones in use before."""
        assert self._ctx is not None
        previous = self._ctx.helm.registry_auth
        identity = self.reg.seal_identity if self.reg is not None else None
        self._ctx.helm.registry_auth = open_credentials(job.payload, identity)
        return previous

    async def _sweep_and_report(self) -> jobs.Outcome:
        """One sweep (the write lock held): report what it found, then what the heals left."""
        assert self._ctx is not None
        outcome, reports = await jobs.run_sweep(self._ctx, self._cluster)
        cluster = self._cluster
        if cluster is None:
            return outcome
        found = [
            from_report(cluster.addons[r.name], r, commit=self._commit)
            for r in reports
            if r.name in cluster.addons
        ]
        await self._publish_state(found, complete=True)
        healed = {r.name for r in reports if r.healed}
        if healed:
            # what the heals left; the conflicts and errors the sweep found still stand
            before = {o.name: o for o in found}
            after = [
                o.model_copy(
                    update={"conflicts": before[o.name].conflicts, "last_error": before[o.name].last_error}
                )
                for o in await observe(self._ctx, cluster, cause=Cause.HEAL, commit=self._commit, only=healed)
            ]
            await self._publish_state(after, complete=False)
        return outcome

    async def _report_all(self, cause: Cause, *, locked: bool = False) -> None:
        """A full report of every add-on as it is now (after connecting, or a new definition)."""
        if self._ctx is None or self._cluster is None:
            return
        try:
            if locked:
                found = await observe(self._ctx, self._cluster, cause=cause, commit=self._commit)
            else:
                async with self._write_lock:
                    found = await observe(self._ctx, self._cluster, cause=cause, commit=self._commit)
        except KubeError as e:
            log.warning("observing the add-ons failed: %s", e)
            return
        await self._publish_state(found, complete=True)

    async def _publish_state(self, observations: list[AddonObservation], *, complete: bool) -> None:
        if self._nc is None or self.reg is None or self._state is None:
            return
        async with self._state_lock:
            messages = self._state.reports(observations, complete=complete)
            try:
                for message in messages:
                    await self._nc.jetstream().publish(
                        protocol.state_subject(self.reg.cluster_id), protocol.encode(message)
                    )
            except Exception as e:  # the server gets a full snapshot next time instead
                log.warning("publishing add-on state failed (%s); the next report is a full snapshot", e)
                self._state.reset()
                return
            self._state.sent(messages)

    async def _stream_logs(self, job: JobMessage) -> jobs.Outcome:
        """Publish a pod's log lines on the stream's subject as they come, then an end marker."""
        assert self._ctx is not None
        assert self._nc is not None
        assert self.reg is not None
        p = job.payload
        stream_id = str(p.get("stream_id", ""))
        if not _STREAM_ID.match(stream_id):
            return JobState.FAILED, ["invalid log stream id"], {}
        subject = protocol.logs_subject(self.reg.cluster_id, stream_id)
        namespace, pod = str(p.get("namespace", "")), str(p.get("pod", ""))
        params = {"follow": "true" if p.get("follow") else "false"}
        if p.get("container"):
            params["container"] = str(p["container"])
        if p.get("tail_lines") is not None:
            params["tailLines"] = str(int(p["tail_lines"]))
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"
        count = 0
        error = None
        try:
            async for line in self._ctx.kube.stream_lines(
                path, params, what=f"logs of pod {namespace}/{pod}"
            ):
                count += 1
                await self._nc.publish(subject, protocol.encode(protocol.LogChunk(lines=[line[:_MAX_LINE]])))
        except KubeError as e:
            error = str(e)
        await self._nc.publish(subject, protocol.encode(protocol.LogChunk(end=True, error=error)))
        if error:
            return JobState.FAILED, [error], {"lines": count}
        return JobState.SUCCESS, [], {"lines": count}

    async def _control(self, msg: Msg) -> None:
        assert self.reg is not None
        try:
            cancel = protocol.decode(msg.data, protocol.CancelMessage)
        except protocol.ProtocolError as e:
            log.warning("control message rejected: %s", e)
            return
        if cancel.cluster_id != self.reg.cluster_id:
            return
        for job_id in cancel.job_ids:
            self._cancelled[job_id] = None
            if task := self._running.get(job_id):
                task.cancel()
        while len(self._cancelled) > 10_000:
            self._cancelled.pop(next(iter(self._cancelled)))

    async def _in_progress(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(IN_PROGRESS_EVERY)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _publish_result(
        self, job: JobMessage, state: JobState, messages: list[str], result: dict[str, Any]
    ) -> None:
        assert self._nc is not None
        assert self.reg is not None
        message = ResultMessage(
            job_id=job.job_id,
            cluster_id=self.reg.cluster_id,
            state=state,
            messages=messages[-1000:],
            result=result,
        )
        for attempt in range(30):
            try:
                await self._nc.jetstream().publish(
                    protocol.results_subject(self.reg.cluster_id), protocol.encode(message)
                )
                return
            except Exception as e:  # NATS restarting: the result must not be lost
                log.warning("publishing the result of job %s failed (%s); retrying", job.job_id, e)
                await asyncio.sleep(min(2.0**attempt, 10.0))

    # -- sweeps and heartbeats -----------------------------------------------------------------------

    async def _watch(self) -> None:
        """Watch Helm-managed objects until the agent stops (an edit wakes the sweep)."""
        assert self._kube is not None
        task = asyncio.create_task(watch_changes(self._kube, self._edited.set), name="watch")
        await self._stopping.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _next_sweep(self) -> None:
        """Until the sweep interval has passed, or a watched object was edited (then a short pause
        gathers the rest of a burst of edits into one sweep)."""
        waiting = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._edited.wait())]
        try:
            await asyncio.wait(
                waiting, timeout=self.settings.sweep_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waiting:
                w.cancel()
        if self._edited.is_set() and not self._stopping.is_set():
            await asyncio.sleep(EDIT_SETTLE_SECONDS)
        self._edited.clear()

    async def _sweeps(self) -> None:
        while not self._stopping.is_set():
            await self._next_sweep()
            if self._stopping.is_set() or self._cluster is None or self._ctx is None:
                continue
            async with self._write_lock:
                try:
                    state, _, result = await self._sweep_and_report()
                except Exception:
                    log.exception("sweep failed")
                    continue
            if state is JobState.SUCCESS:
                beat = result["heartbeat"]
                self._last_beat = Heartbeat(
                    last_sweep_at=datetime.fromisoformat(beat["last_sweep_at"]),
                    sweep_duration_seconds=beat["sweep_duration_seconds"],
                    addons_inspected=beat["addons_inspected"],
                    drifted=beat["drifted"],
                    healed=beat["healed"],
                    pruned=beat["pruned"],
                    recovered=beat["recovered"],
                )
                self.metrics.sweep_seconds.set(beat["sweep_duration_seconds"])
                self.metrics.drifted.set(beat["drifted"])
                await self._send_heartbeat()

    async def _heartbeats(self) -> None:
        while not self._stopping.is_set():
            await self._send_heartbeat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.heartbeat_interval)

    async def _send_heartbeat(self) -> None:
        if self._nc is None or self.reg is None or not self._nc.is_connected:
            return
        b = self._last_beat
        beat = HeartbeatMessage(
            cluster_id=self.reg.cluster_id,
            agent_version=__version__,
            last_sweep_at=b.last_sweep_at if b else None,
            sweep_duration_seconds=b.sweep_duration_seconds if b else None,
            addons_inspected=b.addons_inspected if b else 0,
            drifted=b.drifted if b else 0,
            healed=b.healed if b else 0,
            pruned=b.pruned if b else 0,
            recovered=b.recovered if b else 0,
            running_jobs=len(self._running),
            has_definition=self._cluster is not None,
            sent_at=datetime.now(UTC),
        )
        with contextlib.suppress(Exception):
            await self._nc.publish(protocol.heartbeat_subject(self.reg.cluster_id), protocol.encode(beat))

    # -- /livez /readyz /metrics -------------------------------------------------------------------

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            path = line.decode("latin-1").split(" ")[1] if line.count(b" ") >= 2 else "/"
            if path == "/livez":
                status, body, ctype = 200, b"ok\n", "text/plain"
            elif path == "/readyz":
                ready = self._ready and self._nc is not None and self._nc.is_connected
                status, body, ctype = (
                    (200, b"ok\n", "text/plain") if ready else (503, b"not ready\n", "text/plain")
                )
            elif path == "/metrics":
                status, body, ctype = 200, generate_latest(self.metrics.registry), "text/plain; version=0.0.4"
            else:
                status, body, ctype = 404, b"not found\n", "text/plain"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()


def _commit_of(job: JobMessage) -> str | None:
    commit = job.payload.get("commit")
    return str(commit)[:64] if commit else None
