"""The messages between `moorage server` and `moorage agent` over NATS JetStream, and their subjects.

Both sides import only this module of each other's world. Every message is JSON, at most
MAX_MESSAGE_BYTES, validated on receipt; a message that does not validate is rejected (and acked,
so it cannot block the stream), never half-processed."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
                heartbeat_subject(cluster_id),
                logs_subject(cluster_id, "*"),
                f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.{consumer}",
                f"$JS.API.CONSUMER.INFO.{JOBS_STREAM}.{consumer}",
                f"$JS.ACK.{JOBS_STREAM}.{consumer}.>",
                "$JS.API.INFO",
            ]
        },
        "subscribe": {"allow": [f"{agent_inbox(cluster_id)}.>", control_subject(cluster_id)]},
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


WRITE_ACTIONS = frozenset({JobAction.SYNC, JobAction.DELETE, JobAction.SWEEP})


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
    sent_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


M = TypeVar("M", bound=_Message)


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
