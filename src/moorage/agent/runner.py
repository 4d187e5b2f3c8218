"""The agent process: registers with the server over HTTPS, connects out to NATS, runs jobs from its
cluster's durable queue in bounded read and write pools (writes to different add-ons in parallel,
`agent.writes`), sweeps every 60 s, publishes heartbeats, and serves /livez, /readyz and /metrics. It
never listens for the control plane. Several replicas elect one leader through a Lease
(`agent.leader`): only the leader sweeps, runs write jobs and sends heartbeats; every replica serves
reads."""

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
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
from moorage.agent import jobs, publicip, render, selfupgrade
from moorage.agent.kubeproxy import KubeProxyAgent, Limits
from moorage.agent.leader import LeaderElector, Timing
from moorage.agent.registryauth import CredentialsError, open_credentials
from moorage.agent.state import StateTracker
from moorage.agent.transport import TransportRefused, check_url, client_context, explain_tls_failure
from moorage.agent.watch import watch_changes
from moorage.agent.writes import Claim, WriteScheduler, batch_size, claim_of
from moorage.charts.source import RegistryAuth
from moorage.engine import argocd, argocd_app
from moorage.engine.context import ADDON_LABEL, CLUSTER_LABEL, EngineContext, Options
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
# a replica that is not the leader hands a write job back this long before it is offered again
NOT_LEADER_NAK_SECONDS = float(os.environ.get("MOORAGE_AGENT_NOT_LEADER_NAK_SECONDS", "1"))
# the jobs only the leader runs: they change the cluster, or the definition the leader sweeps with
LEADER_ACTIONS = protocol.WRITE_ACTIONS | {protocol.JobAction.DEFINE}


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
    write_workers: int = 5  # writes at once (different add-ons; agent/writes.py)
    concurrency: int = 5  # entries one sync or sweep deploys or heals at once (Flux's --concurrent)
    # jobs held at once (running or waiting for their add-on): the agent fetches no more than this
    nats_max_workers: int = 15
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
    # leader election through a Lease (several replicas); None: on when running in a pod
    leader_election: bool | None = None
    lease_namespace: str | None = None  # None: the namespace of the kubeconfig context / the pod
    lease_name: str | None = None  # None: moorage-agent-<cluster id>
    lease: Timing = field(default_factory=Timing)
    # the cluster's public IP in heartbeats: off makes no lookup at all
    public_ip_reporting: bool = False
    public_ip_lookup_url: str = publicip.DEFAULT_URL
    public_ip_refresh: float = 600.0
    # KUBERNETES_REQUEST_MAX_ATTEMPTS: tries of an idempotent Kubernetes read on a dropped connection
    kube_request_attempts: int = 3
    # RECONCILE_AUTO_HEAL_ENABLED: the sweep recovers releases stuck in pending-*
    recover_stuck: bool = True
    kube_proxy: Limits = field(default_factory=Limits)

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
        self.leader = Gauge(
            "moorage_agent_leader",
            "1 while this replica leads (sweeps, writes, heartbeats), else 0; 1 without leader election",
            registry=self.registry,
        )
        self.handed_back = Counter(
            "moorage_agent_jobs_handed_to_leader_total",
            "Write jobs this replica handed back because another replica leads",
            registry=self.registry,
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
        self._reads = asyncio.Semaphore(settings.read_workers)
        # writes of different add-ons at once; a whole-cluster write alone (agent/writes.py)
        self._writes = WriteScheduler(settings.write_workers)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._writing: dict[str, asyncio.Task[None]] = {}  # the write jobs among them
        self._leader: LeaderElector | None = None
        self._election: asyncio.Task[None] | None = None
        self._election_stop = asyncio.Event()
        self._public_ip: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        # per Argo CD add-on, the last self-heal reported: its start, and whether it was over
        self._heals_reported: dict[str, tuple[str, bool]] = {}
        self._watching_since = ""  # when the watch began, in Argo CD's timestamp format
        self._watch_reports = asyncio.Lock()  # FIFO: the watch's reports reach the server in order
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

    @property
    def is_leader(self) -> bool:
        """Whether this replica runs sweeps and writes (always, without leader election)."""
        return self._leader is None or self._leader.is_leader

    def _leadership_changed(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)
        works: list[Coroutine[Any, Any, None]] = []
        if leader:  # the server hears from this replica now: a full snapshot first
            if self._state is not None:
                self._state.reset()
            works += [self._report_all(Cause.CONNECT), self._send_heartbeat()]
        else:  # no longer the leader: writes stop here and go back to the queue (another replica leads)
            for running in list(self._writing.values()):
                running.cancel()
            # the leader after this one may deploy a newer definition: leading again, this replica
            # says it has none (heartbeat) and gets the current one, never sweeping with a stale one
            self._cluster, self._commit = None, None
        if self._kubeproxy is not None:  # kubectl through Moorage: the leader's alone
            works.append(self._kubeproxy.listen() if leader else self._kubeproxy.deafen())
        for work in works:
            task = asyncio.get_running_loop().create_task(work)
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _election_wanted(self, config: kube_config.ClusterConfig) -> bool:
        wanted = self.settings.leader_election
        return config.source == "in-cluster" if wanted is None else wanted

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
            config = kube_config.load(self.settings.kubeconfig)
            self._kube = KubeClient(config, read_attempts=self.settings.kube_request_attempts)
            options = Options(
                recover_stuck=self.settings.recover_stuck, concurrency=self.settings.concurrency
            )
            self._ctx = EngineContext(
                self._kube, Helm(kubeconfig=self.settings.kubeconfig), options, checks=self._server_checks
            )
            self.metrics.leader.set(0 if self._election_wanted(config) else 1)
            if self._election_wanted(config):
                self._leader = LeaderElector(
                    self._kube,
                    self.settings.lease_namespace or config.namespace,
                    self.settings.lease_name or f"moorage-agent-{self.reg.cluster_id}",
                    timing=self.settings.lease,
                    on_change=self._leadership_changed,
                )
            await self._connect()
            assert self._nc is not None
            await self._nc.subscribe(protocol.control_subject(self.reg.cluster_id), cb=self._control)
            self._kubeproxy = KubeProxyAgent(
                self._nc, self.reg.cluster_id, Passthrough(self._kube.config), self.settings.kube_proxy
            )
            await self._kubeproxy.start(listening=self.is_leader)
            self._ready = True
            log.info("agent of cluster %s connected to %s", self.reg.cluster_name, self.reg.nats_url)
            loops = [self._consume(), self._heartbeats(), self._sweeps()]
            if self.settings.watch:
                loops.append(self._watch())
            if self._leader is not None:  # renewed until the last write has ended (_shutdown)
                self._election = asyncio.create_task(self._leader.run(self._election_stop), name="leader")
            if self.settings.public_ip_reporting:
                loops.append(self._public_ip_lookups())
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
        self._election_stop.set()
        if self._election is not None:
            with contextlib.suppress(Exception):
                await self._election
        if self._leader is not None:  # another replica takes over now, not when the lease runs out
            await self._leader.release()
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
            size = batch_size(
                held=len(self._running),
                max_held=self.settings.nats_max_workers,
                reads_free=self._reads._value,
                write_workers=self.settings.write_workers,
                writes_held=self._writes.held,
                leader=self.is_leader,
            )
            if size == 0:  # nats_worker_max_workers jobs held: the rest wait in the stream
                await asyncio.sleep(0.2)
                continue
            try:
                batch = await sub.fetch(size, timeout=1)
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
        if job.action in LEADER_ACTIONS and not self.is_leader:
            # another replica leads: the job goes back to the stream (never lost) for the leader
            self.metrics.handed_back.inc()
            with contextlib.suppress(Exception):
                await msg.nak(delay=NOT_LEADER_NAK_SECONDS)
            return
        task = asyncio.create_task(self._run_job(job, msg), name=f"job-{job.job_id}")
        self._running[job.job_id] = task
        task.add_done_callback(lambda _: self._running.pop(job.job_id, None))
        if job.action in LEADER_ACTIONS:
            self._writing[job.job_id] = task
            task.add_done_callback(lambda _: self._writing.pop(job.job_id, None))

    @contextlib.asynccontextmanager
    async def _slot(self, job: JobMessage) -> AsyncIterator[JobKind]:
        """A read slot, or the write claim of the job (waiting for writes of the same add-ons)."""
        if job.action not in LEADER_ACTIONS:
            async with self._reads:
                yield JobKind.READ
            return
        async with self._writes.hold(claim_of(job.action, job.payload)):
            yield JobKind.WRITE

    async def _run_job(self, job: JobMessage, msg: Msg) -> None:
        # the job is ours while it waits for its slot too: the stream must not offer it again
        keepalive = asyncio.create_task(self._in_progress(msg))
        try:
            async with self._slot(job) as kind:
                state, messages, result = await self._run_now(job, kind)
            # the claim is free before the result leaves: while NATS is away (the server restarting),
            # the result waits here and the sweep that heals meanwhile does not wait behind it. The
            # write is over: losing the lead now must not hand it back to run again (a second rollback)
            self._writing.pop(job.job_id, None)
            await self._publish_result(job, state, messages, result)
            await msg.ack()
        except asyncio.CancelledError:
            await self._hand_back(job, msg)
            raise
        finally:
            keepalive.cancel()

    async def _run_now(self, job: JobMessage, kind: JobKind) -> jobs.Outcome:
        """Run the job in its slot. "running" is said once (the final result supersedes it), so a
        NATS outage never holds the slot."""
        await self._publish_result(job, JobState.RUNNING, [], {}, attempts=1)
        started = time.monotonic()
        self.metrics.running.labels(kind).inc()
        try:
            state, messages, result = await asyncio.wait_for(self._execute(job, kind), job.timeout_seconds)
        except TimeoutError:
            state, messages, result = JobState.TIMEOUT, [f"timed out after {job.timeout_seconds}s"], {}
        except Exception as e:  # a bug must fail the job, not the agent
            log.exception("job %s failed", job.job_id)
            state, messages, result = JobState.FAILED, [f"{type(e).__name__}: {e}"], {}
        finally:
            self.metrics.running.labels(kind).dec()
        self.metrics.jobs.labels(kind, state).inc()
        self.metrics.job_seconds.labels(kind).observe(time.monotonic() - started)
        return state, messages, result

    async def _hand_back(self, job: JobMessage, msg: Msg) -> None:
        """A job cancelled: by the server it ends here for good; else (shutting down, or no longer
        the leader) it goes back to the stream for the next agent."""
        if job.job_id in self._cancelled:
            await self._publish_result(job, JobState.CANCELLED, ["cancelled while running"], {})
            await msg.ack()
            return
        with contextlib.suppress(Exception):
            await msg.nak()

    async def _execute(self, job: JobMessage, kind: JobKind) -> jobs.Outcome:
        assert self._ctx is not None
        if job.action is protocol.JobAction.LOGS:
            return await self._stream_logs(job)
        # a write job runs here holding its claim (_slot): the whole cluster, or its add-ons
        if job.action is protocol.JobAction.DEFINE:
            outcome, cluster = jobs.define(job)
            if cluster is not None:
                try:
                    self._ctx.helm.registry_auth = self._registry_credentials(job)
                except CredentialsError as e:  # the definition stands; private charts wait for a sync
                    log.warning("the definition's registry credentials are not usable: %s", e)
                self._cluster, self._commit = cluster, _commit_of(job)
                self._ctx.checks = definition_checks(job.payload, self._server_checks)
                await self._report_all(Cause.DEFINE, locked=True)
            return outcome
        if job.action is protocol.JobAction.RENDER_OBJECTS:  # a read that fetches charts as a sync does
            try:
                auth = self._registry_credentials(job)
            except CredentialsError as e:
                return JobState.FAILED, [str(e)], {}
            helm = dataclasses.replace(self._ctx.helm, registry_auth=auth)
            return await render.run(dataclasses.replace(self._ctx, helm=helm), job)
        if kind is JobKind.READ:
            return await jobs.run_read(self._ctx, job, self._cluster)
        if job.action is protocol.JobAction.SYNC:
            return await self._sync(job)
        if job.action is protocol.JobAction.SWEEP:
            return await self._sweep_and_report()
        if job.action is protocol.JobAction.UPGRADE_AGENT:
            return await selfupgrade.run(self._ctx, job)
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
            auth = self._registry_credentials(job)
        except CredentialsError as e:
            return JobState.FAILED, [str(e)], {}
        # this job's own context: other add-ons' writes may run beside it with theirs. The deploy's
        # health (strict health included) already follows the new definition's checks.
        checks = definition_checks(job.payload, self._server_checks)
        ctx = dataclasses.replace(
            self._ctx, helm=dataclasses.replace(self._ctx.helm, registry_auth=auth), checks=checks
        )
        outcome, cluster, failed = await jobs.run_sync(ctx, job)
        if cluster is not None:  # the sweep goes on with this definition, its checks and credentials
            self._ctx.checks, self._ctx.helm.registry_auth = checks, auth
            self._cluster, self._commit = cluster, _commit_of(job)
            complete = job.payload.get("only") is None
            await self._publish_state(
                await observe(
                    self._ctx,
                    cluster,
                    cause=Cause.SYNC,
                    commit=self._commit,
                    errors=failed,
                    only=None if complete else set(claim_of(job.action, job.payload).addons or ()),
                ),
                complete=complete,
            )
        return outcome

    def _registry_credentials(self, job: JobMessage) -> dict[str, RegistryAuth]:
        """The job's registry credentials, opened (kept in memory for the sweep's upgrades of this
        definition once it deployed)."""
        identity = self.reg.seal_identity if self.reg is not None else None
        return open_credentials(job.payload, identity)

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
        if self._ctx is None or self._cluster is None or not self.is_leader:
            return
        try:
            if locked:
                found = await observe(self._ctx, self._cluster, cause=cause, commit=self._commit)
            else:
                async with self._writes.hold(Claim.cluster()):
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
        self,
        job: JobMessage,
        state: JobState,
        messages: list[str],
        result: dict[str, Any],
        attempts: int = 30,
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
        for attempt in range(attempts):
            try:
                await self._nc.jetstream().publish(
                    protocol.results_subject(self.reg.cluster_id), protocol.encode(message)
                )
                return
            except Exception as e:  # NATS restarting: the result must not be lost
                more = attempt + 1 < attempts
                log.warning(
                    "publishing the %s result of job %s failed (%s)%s",
                    state,
                    job.job_id,
                    e,
                    "; retrying" if more else "",
                )
                if more:
                    await asyncio.sleep(min(2.0**attempt, 10.0))

    # -- sweeps and heartbeats -----------------------------------------------------------------------

    async def _watch(self) -> None:
        """Watch Helm-managed objects until the agent stops (an edit wakes the sweep)."""
        assert self._kube is not None
        self._watching_since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        task = asyncio.create_task(
            watch_changes(self._kube, self._edited.set, self._application_seen), name="watch"
        )
        await self._stopping.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    def _application_seen(self, app: Mapping[str, Any]) -> None:
        """An Application of Moorage's changed (Argo CD saw drift, healed it, ...): report that add-on
        from the object the watch delivered, at once, since Argo CD often heals before a sweep reads."""
        cluster, labels = self._cluster, (app.get("metadata") or {}).get("labels") or {}
        name = labels.get(ADDON_LABEL)
        if cluster is None or not self.is_leader or name not in cluster.addons:
            return
        addon = cluster.addons[name]
        if labels.get(CLUSTER_LABEL) != cluster.name or not argocd.uses_argocd(addon, cluster.default_engine):
            return
        reports = [[argocd.observation(addon, app, cause=Cause.SWEEP, commit=self._commit)]]
        heal = argocd_app.self_heal(app)
        if heal is not None and heal.started_at >= self._watching_since:  # older heals are history
            seen = self._heals_reported.get(name)
            if seen is None or seen[0] != heal.started_at:  # a new heal: the drift it found, first
                drift = argocd.before_heal(addon, app, heal, cause=Cause.SWEEP, commit=self._commit)
                reports.insert(0, [drift])
                what = ", ".join(f"{kind} {obj}" for _, kind, obj in heal.resources) or "its resources"
                log.info("Argo CD self-heals add-on %s (%s), started %s", name, what, heal.started_at)
            if not heal.running and seen != (heal.started_at, True):  # the heal is over: say so once
                reports[-1] = [reports[-1][0].model_copy(update={"cause": Cause.HEAL})]
            self._heals_reported[name] = (heal.started_at, not heal.running)
        task = asyncio.get_running_loop().create_task(self._publish_in_order(reports))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish_in_order(self, reports: list[list[AddonObservation]]) -> None:
        """Partial reports one after the other (the server records each as its own transition), after
        those of earlier watch events."""
        async with self._watch_reports:
            for observations in reports:
                await self._publish_state(observations, complete=False)

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
            if self._stopping.is_set() or self._cluster is None or self._ctx is None or not self.is_leader:
                continue
            async with self._writes.hold(Claim.cluster()):
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
        # one voice per cluster: the leader's (its sweeps, its definition); the others only serve reads
        if self._nc is None or self.reg is None or not self._nc.is_connected or not self.is_leader:
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
            public_ip=self._public_ip,
            chart_version=selfupgrade.chart_version(),
            sent_at=datetime.now(UTC),
        )
        with contextlib.suppress(Exception):
            await self._nc.publish(protocol.heartbeat_subject(self.reg.cluster_id), protocol.encode(beat))

    async def _public_ip_lookups(self) -> None:
        """The cluster's public IP as seen from outside, looked up now and then (only when enabled)."""
        settings = self.settings
        while not self._stopping.is_set():
            address = await publicip.lookup(settings.public_ip_lookup_url)
            if address is not None and address != self._public_ip:
                log.info("public IP: %s", address)
                self._public_ip = address
                await self._send_heartbeat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), settings.public_ip_refresh)

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
