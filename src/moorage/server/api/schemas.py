"""Request and response bodies of the HTTP API."""

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from moorage.server import service
from moorage.server.db.models import ApiToken, Cluster, Job, Operation
from moorage.server.tokens import Scope
from moorage.spec.protocol import AgentStatus, JobState

T = TypeVar("T")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pagination(BaseModel):
    page: int
    page_size: int
    total_pages: int
    total_count: int


class Page(BaseModel, Generic[T]):
    result: list[T]
    pagination: Pagination


def page_of(items: list[T], total: int, page: int, page_size: int) -> "Page[T]":
    return Page[T](
        result=items,
        pagination=Pagination(
            page=page, page_size=page_size, total_pages=-(-total // page_size), total_count=total
        ),
    )


# --------------------------------------------------------------------------- tokens


class TokenCreate(Request):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class TokenOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, row: ApiToken) -> "TokenOut":
        return cls(
            id=row.id,
            name=row.name,
            scopes=list(row.scopes),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            revoked=row.revoked_at is not None,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored.")


# --------------------------------------------------------------------------- clusters


class ClusterCreate(Request):
    name: str = Field(min_length=1, max_length=63)
    description: str = Field(default="", max_length=2000)


class ClusterOut(BaseModel):
    id: str
    name: str
    description: str
    state: AgentStatus
    created_at: datetime
    last_heartbeat_at: datetime | None
    agent_version: str | None
    agent_token_revoked: bool
    heartbeat: dict[str, Any] | None
    public_ip: str | None = Field(
        default=None,
        description="The cluster's public egress IP, from the agent's last heartbeat; only when the agent "
        "reports it (public_ip.reporting_enabled, off by default).",
    )
    chart_version: str | None = Field(
        default=None,
        description="The moorage-agent chart version the agent runs, from its last heartbeat (after "
        "an Upgrade Agent, the new version once the new agent reports); none without the chart.",
    )
    agent_roll_forward: bool = Field(
        default=True,
        description="Whether the fleet roll-forward upgrades this cluster's agent to a newly published "
        "chart version (false: opted out; Upgrade Agent by hand still works).",
    )

    @classmethod
    def of(cls, row: Cluster, now: datetime | None = None) -> "ClusterOut":
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            state=service.cluster_state(row, now),
            created_at=row.created_at,
            last_heartbeat_at=row.last_heartbeat_at,
            agent_version=row.agent_version,
            agent_token_revoked=row.revoked_at is not None,
            heartbeat=row.heartbeat,
            public_ip=_public_ip(row.heartbeat),
            chart_version=_heartbeat_text(row.heartbeat, "chart_version"),
            agent_roll_forward=row.agent_roll_forward is not False,
        )


def _public_ip(heartbeat: dict[str, Any] | None) -> str | None:
    """The address the heartbeat carried (validated by the protocol when it arrived)."""
    value = heartbeat.get("public_ip") if isinstance(heartbeat, dict) else None
    return value if isinstance(value, str) else None


def _heartbeat_text(heartbeat: dict[str, Any] | None, key: str) -> str | None:
    value = heartbeat.get(key) if isinstance(heartbeat, dict) else None
    return value if isinstance(value, str) else None


class AgentUpgradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(
        max_length=64,
        pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$",
        description="The moorage-agent chart version to upgrade to, e.g. 0.2.0.",
    )
    chart: str = Field(
        max_length=512,
        pattern=r"^(oci|https?)://[^\s@]+$",
        description="Where the chart is: oci://HOST/PATH/moorage-agent, or a Helm repository's URL holding "
        "moorage-agent (no credentials in it).",
    )


class ClusterUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_roll_forward: bool | None = Field(
        default=None, description="false: the fleet roll-forward leaves this cluster's agent alone."
    )


class AgentUpgradeOut(BaseModel):
    operation_id: str
    operation_state: str
    messages: list[str]
    result: dict[str, Any]


class ClusterCreated(ClusterOut):
    agent_token: str = Field(description="Shown once; give it to `moorage agent --token`.")


class AgentTokenOut(BaseModel):
    cluster_id: str
    cluster_name: str
    agent_token: str = Field(description="Shown once; the previous token stopped working.")


class AgentRegistration(BaseModel):
    cluster_id: str
    cluster_name: str
    nats_url: str
    nats_user: str
    inbox_prefix: str
    nats_ca: str | None = Field(
        default=None,
        description="PEM: the CA of the NATS server's certificate (the embedded NATS's own CA), "
        "unless the agent is given one (--nats-ca); null: the system's CAs.",
    )
    seal_identity: str | None = Field(
        default=None,
        repr=False,
        description="The age identity that opens the registry credentials sealed into this "
        "cluster's jobs (derived from the server key and the agent token).",
    )


# --------------------------------------------------------------------------- operations


class ApplyRequest(Request):
    files: dict[str, str] = Field(description="Repository files by relative path.")
    root: str = Field(default="import-cluster.yaml", description="The ImportCluster file among `files`.")


class JobOut(BaseModel):
    id: str
    operation_id: str
    kind: str
    action: str
    state: str
    messages: list[Any]
    result: dict[str, Any] | None
    timeout_seconds: int
    created_at: datetime
    dispatched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Job) -> "JobOut":
        return cls(
            id=row.id,
            operation_id=row.operation_id,
            kind=row.kind,
            action=row.action,
            state=row.state,
            messages=list(row.messages),
            result=row.result,
            timeout_seconds=row.timeout_seconds,
            created_at=row.created_at,
            dispatched_at=row.dispatched_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class StepSummary(BaseModel):
    total: int
    succeeded: int
    failed: int
    running: int
    pending: int


class OperationOut(BaseModel):
    id: str
    cluster_id: str
    kind: str
    state: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    created_by: str | None
    step_summary: StepSummary
    jobs: list[JobOut]

    @classmethod
    def of(cls, row: Operation) -> "OperationOut":
        states = [JobState(j.state) for j in row.jobs]
        return cls(
            id=row.id,
            cluster_id=row.cluster_id,
            kind=row.kind,
            state=row.state,
            created_at=row.created_at,
            updated_at=row.updated_at,
            finished_at=row.finished_at,
            created_by=row.created_by,
            step_summary=StepSummary(
                total=len(states),
                succeeded=states.count(JobState.SUCCESS),
                failed=sum(s in (JobState.FAILED, JobState.TIMEOUT) for s in states),
                running=sum(s in (JobState.RUNNING, JobState.CANCELLING) for s in states),
                pending=sum(s in (JobState.PENDING, JobState.BLOCKED) for s in states),
            ),
            jobs=[JobOut.of(j) for j in row.jobs],
        )


class AddonOut(BaseModel):
    name: str
    status: str
    message: str = ""
    health: str | None = None
    reason: str | None = None


class ClusterAddons(BaseModel):
    cluster: str
    state: AgentStatus
    synced_at: datetime | None
    operation_id: str | None
    job_id: str | None
    result: list[AddonOut]
