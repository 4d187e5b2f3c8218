"""The messages between `moorage server` and `moorage agent` over NATS JetStream, and their subjects.

Both sides import only this module of each other's world. Every message is JSON, at most
MAX_MESSAGE_BYTES, validated on receipt; a message that does not validate is rejected (and acked,
so it cannot block the stream), never half-processed."""

import ipaddress
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from moorage.spec import kubeproxy

MAX_MESSAGE_BYTES = 1 << 20

JOBS_STREAM = "MOORAGE_JOBS"  # work queue: one job is delivered to its cluster's agent until acked
RESULTS_STREAM = "MOORAGE_RESULTS"  # job results and events, kept for the server to consume durably
SERVER_CONSUMER = "server"


def jobs_subject(cluster_id: str) -> str:
    return f"moorage.jobs.{cluster_id}"


def results_subject(cluster_id: str) -> str:
    return f"moorage.results.{cluster_id}"


def events_subject(cluster_id: str) -> str:
    return f"moorage.events.{cluster_id}"


def heartbeat_subject(cluster_id: str) -> str:
    return f"agent.heartbeat.native_reconcile.{cluster_id}"


def state_subject(cluster_id: str) -> str:
    """JetStream (RESULTS_STREAM): the agent's add-on state reports, consumed durably by the server."""
    return f"moorage.state.{cluster_id}"


def logs_subject(cluster_id: str, stream_id: str) -> str:
    """Core NATS (not persisted): the lines of one log stream, then a LogChunk with end=True."""
    return f"moorage.logs.{cluster_id}.{stream_id}"


def control_subject(cluster_id: str) -> str:
    """Core NATS: the server tells a connected agent to cancel a job."""
    return f"moorage.control.{cluster_id}"


def agent_consumer(cluster_id: str) -> str:
    return f"agent-{cluster_id}"


def agent_inbox(cluster_id: str) -> str:
    """Each agent gets its own reply-inbox prefix, so it cannot read another agent's replies."""
    return f"_INBOX_{cluster_id}"


def agent_permissions(cluster_id: str) -> dict[str, dict[str, list[str]]]:
    """What an agent may publish and subscribe to on NATS: its own subjects and nothing else."""
    consumer = agent_consumer(cluster_id)
    return {
        "publish": {
            "allow": [
                results_subject(cluster_id),
                events_subject(cluster_id),
                state_subject(cluster_id),
                heartbeat_subject(cluster_id),
                logs_subject(cluster_id, "*"),
                kubeproxy.kube_to_server_subject(cluster_id, "*"),
                f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.{consumer}",
                f"$JS.API.CONSUMER.INFO.{JOBS_STREAM}.{consumer}",
                f"$JS.ACK.{JOBS_STREAM}.{consumer}.>",
                "$JS.API.INFO",
            ]
        },
        "subscribe": {
            "allow": [
                f"{agent_inbox(cluster_id)}.>",
                control_subject(cluster_id),
                kubeproxy.kube_to_agent_subject(cluster_id),
            ]
        },
    }


class JobKind(StrEnum):
    READ = "read"
    WRITE = "write"


class JobAction(StrEnum):
    SYNC = "sync"  # deploy a definition (write)
    DELETE = "delete"  # uninstall add-ons / delete manifests by name (write)
    SWEEP = "sweep"  # one reconcile sweep now (write)
    LIST_KINDS = "list_kinds"  # read
    LIST_RESOURCES = "list_resources"  # read
    GET_RESOURCE = "get_resource"  # read
    EVENTS = "events"  # read: the events of one object
    RESOURCE_MAP = "resource_map"  # read: an add-on's objects with their owned children
    LOGS = "logs"  # read: a pod's log, streamed on logs_subject (payload: stream_id, namespace, pod, …)
    DEFINE = "define"  # give a restarted agent its definition back (payload as sync); deploys nothing
    ROLLBACK = "rollback"  # write: helm rollback of one add-on (payload: addon, namespace, revision)
    RELEASE_HISTORY = "release_history"  # read: an add-on's Helm revisions
    RELEASE_VALUES = "release_values"  # read: the deployed values of an add-on, secrets masked
    RELEASE_MANIFEST = "release_manifest"  # read: the manifest of one revision (Secret data masked)
    ADDON_EVENTS = "addon_events"  # read: the events of the add-on's resources
    HELM_RELEASES = "helm_releases"  # read: every Helm release in the cluster, managed or not
    ARGOCD_MIGRATION = "argocd_migration"  # read: a page of Argo CD Applications with their eligibility
    # read: the objects an edited definition's charts would create, change or remove (Stack Builder
    # preview; payload: files, root, releases, sealed registry credentials)
    RENDER_OBJECTS = "render_objects"
    # write: `helm upgrade --reuse-values` of the agent's own release (payload: chart, version)
    UPGRADE_AGENT = "upgrade_agent"


WRITE_ACTIONS = frozenset(
    {JobAction.SYNC, JobAction.DELETE, JobAction.SWEEP, JobAction.ROLLBACK, JobAction.UPGRADE_AGENT}
)


class JobState(StrEnum):
    PENDING = "pending"
    BLOCKED = "blocked"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


FINAL_JOB_STATES = frozenset({JobState.SUCCESS, JobState.FAILED, JobState.TIMEOUT, JobState.CANCELLED})


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobMessage(_Message):
    job_id: str = Field(min_length=1, max_length=64)
    operation_id: str = Field(min_length=1, max_length=64)
    cluster_id: str = Field(min_length=1, max_length=64)
    kind: JobKind
    action: JobAction
    payload: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: int = Field(gt=0, le=24 * 3600)
    created_at: datetime


class ResultMessage(_Message):
    """The end of a job (or its start, with state running): what the agent reports."""

    job_id: str = Field(min_length=1, max_length=64)
    cluster_id: str = Field(min_length=1, max_length=64)
    state: JobState
    messages: list[str] = Field(default_factory=list, max_length=1000)
    result: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class HeartbeatMessage(_Message):
    cluster_id: str = Field(min_length=1, max_length=64)
    agent_version: str = Field(max_length=64)
    last_sweep_at: datetime | None = None
    sweep_duration_seconds: float | None = None
    addons_inspected: int = 0
    drifted: int = 0
    healed: int = 0
    pruned: int = 0
    recovered: int = 0
    running_jobs: int = 0
    # False until the agent holds a definition (after a restart): the server sends it one (DEFINE)
    has_definition: bool = True
    # the cluster's public egress IP, only when the agent was asked to look it up (public_ip.*); left
    # out of the JSON when None, so a server that does not know the field still takes the heartbeat
    public_ip: str | None = Field(default=None, max_length=45, exclude_if=lambda v: v is None)
    # the version of the agent chart the agent was installed with (MOORAGE_AGENT_CHART_VERSION, set by
    # the chart), so an Upgrade Agent shows once the new pod reports; left out when unknown
    chart_version: str | None = Field(default=None, max_length=64, exclude_if=lambda v: v is None)
    sent_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("public_ip")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        return None if value is None else str(ipaddress.ip_address(value))


M = TypeVar("M", bound=_Message)

# A state report is split into parts of at most this many bytes of add-on observations, so a
# cluster of any size fits MAX_MESSAGE_BYTES; drift is capped per add-on, and what is left out is
# counted (drift_omitted), never dropped silently.
STATE_PART_BYTES = 512 * 1024
MAX_DRIFT_CHANGES = 100  # field changes per add-on in one observation
MAX_VALUE_CHARS = 512  # of one want/live value in a drift change


class AddonObservation(_Message):
    """What the agent sees of one add-on: its release, health, drift, and how it compares with the
    definition. The server derives the lifecycle state from it (moorage.spec.lifecycle)."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(max_length=253)
    engine: str = Field(default="native", max_length=32)
    chart: str = Field(default="", max_length=253)
    version: str = Field(default="", max_length=128)  # chart version wanted by the definition
    registry_url: str = Field(default="", max_length=2048)
    installed: bool = False
    release_chart: str = Field(default="", max_length=253)
    release_version: str = Field(default="", max_length=128)  # deployed chart version
    revision: int | None = None
    helm_status: str | None = Field(default=None, max_length=32)
    last_deployed: datetime | None = None
    health: str | None = Field(default=None, max_length=16)  # HealthStatus, None when not installed
    health_reason: str = Field(default="", max_length=4000)
    suspended: list[str] = Field(default_factory=list, max_length=100)  # resources paused on purpose
    strict_health: bool = False
    automated: bool = True
    self_heal: bool = True
    drift: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_DRIFT_CHANGES)
    drift_omitted: int = 0  # field changes left out of `drift` (over MAX_DRIFT_CHANGES)
    definition_matches: bool = True  # the release is what the definition asks (chart, version, values)
    definition_diff: list[str] = Field(default_factory=list, max_length=100)  # what differs, secrets masked
    conflicts: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    last_error: str | None = Field(default=None, max_length=4000)  # the last deploy or heal failure
    deploying: bool = False  # a job is changing it now
    commit: str | None = Field(default=None, max_length=64)  # Git commit of the definition, when known
    defined_at: str = Field(default="", max_length=600)  # "file:line" of its entry in the repository
    cause: str = Field(default="sweep", max_length=16)  # sync | sweep | heal | rollback | define | connect


class StateReport(_Message):
    """Add-on observations from an agent. A delta carries only add-ons whose observation changed.
    A full snapshot (after the agent starts or reconnects) comes in `parts` messages sharing one
    `snapshot`; the last part lists every add-on name, so the server forgets the others."""

    cluster_id: str = Field(min_length=1, max_length=64)
    session: str = Field(min_length=1, max_length=64)  # one agent process: its start time and a nonce
    seq: int = Field(ge=0)  # per session, one per message
    snapshot: str | None = Field(default=None, max_length=64)
    part: int = Field(default=0, ge=0)
    parts: int = Field(default=1, ge=1, le=10_000)
    all_names: list[str] | None = Field(default=None, max_length=100_000)  # last part of a snapshot
    addons: list[AddonObservation] = Field(default_factory=list, max_length=10_000)
    removed: list[str] = Field(default_factory=list, max_length=10_000)
    sent_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class LogChunk(_Message):
    lines: list[str] = Field(default_factory=list, max_length=1000)
    end: bool = False
    error: str | None = None


class CancelMessage(_Message):
    cluster_id: str = Field(min_length=1, max_length=64)
    job_ids: list[str] = Field(max_length=1000)


class ProtocolError(ValueError):
    """A message that is too large, not JSON, or not of the expected shape."""


def decode(data: bytes, model: type[M]) -> M:
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"{model.__name__} of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        return model.model_validate_json(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "message"
        raise ProtocolError(f"invalid {model.__name__}: {where}: {first.get('msg')}") from None


def encode(message: _Message) -> bytes:
    data = message.model_dump_json().encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"{type(message).__name__} of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES} bytes"
        )
    return data


AgentStatus = Literal["online", "offline", "never_connected"]
