"""Request and response bodies of the add-on routes (live state, drift, history, rollback)."""

from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, Field

from moorage.server.api.schemas import Request
from moorage.server.db.models import AddonState, AddonTransition, GitRepository
from moorage.server.gitops import repourl
from moorage.spec.protocol import AgentStatus


class AddonSummary(BaseModel):
    name: str
    namespace: str
    state: str  # Pending | Deploying | Synced | Degraded | OutOfSync | Unknown
    reason: str
    chart: str
    version: str  # wanted by the definition
    deployed_version: str
    revision: int | None
    helm_status: str | None
    health: str | None
    engine: str
    drifted_fields: int
    held_revision: int | None
    last_deployed: datetime | None
    state_since: datetime
    observed_at: datetime

    @classmethod
    def of(cls, row: AddonState) -> "AddonSummary":
        obs = row.observation
        drifted = sum(len(r.get("changes") or []) or 1 for r in obs.get("drift") or []) + int(
            obs.get("drift_omitted") or 0
        )
        deployed = obs.get("last_deployed")
        return cls(
            name=row.name,
            namespace=row.namespace,
            state=row.state,
            reason=row.reason,
            chart=str(obs.get("chart") or ""),
            version=str(obs.get("version") or ""),
            deployed_version=str(obs.get("release_version") or ""),
            revision=obs.get("revision"),
            helm_status=obs.get("helm_status"),
            health=obs.get("health"),
            engine=str(obs.get("engine") or "native"),
            drifted_fields=drifted,
            held_revision=row.held_revision,
            last_deployed=datetime.fromisoformat(deployed) if isinstance(deployed, str) else None,
            state_since=row.state_since,
            observed_at=row.observed_at,
        )


class AddonList(BaseModel):
    cluster: str
    agent: AgentStatus
    counts: dict[str, int]  # add-ons per lifecycle state (the whole cluster, not just this page)
    result: list[AddonSummary]
    total: int
    page: int
    page_size: int


class AddonDetail(AddonSummary):
    registry_url: str
    health_reason: str
    suspended: list[str]
    definition_matches: bool
    definition_diff: list[str]
    automated: bool
    self_heal: bool
    strict_health: bool
    commit: str | None
    last_error: str | None
    conflicts: list[dict[str, Any]]
    held_at: datetime | None
    defined_at: str  # "file:line" of the add-on's entry in the repository
    defined_at_url: str | None  # that line at that commit, on the Git provider's web site

    @classmethod
    def of(cls, row: AddonState, repo: GitRepository | None = None) -> "AddonDetail":
        obs = row.observation
        defined_at = str(obs.get("defined_at") or "")
        link = None
        if repo is not None and obs.get("commit") and defined_at:
            file, _, line = defined_at.rpartition(":")
            provider = cast(repourl.Provider, repo.provider)
            web = repourl.web_url(repo.url, provider, instance_url=repo.instance_url)
            link = repourl.file_url(
                web, provider, str(obs["commit"]), file, int(line) if line.isdigit() else 0
            )
        return cls(
            **AddonSummary.of(row).model_dump(),
            registry_url=str(obs.get("registry_url") or ""),
            health_reason=str(obs.get("health_reason") or ""),
            suspended=list(obs.get("suspended") or []),
            definition_matches=bool(obs.get("definition_matches", True)),
            definition_diff=list(obs.get("definition_diff") or []),
            automated=bool(obs.get("automated", True)),
            self_heal=bool(obs.get("self_heal", True)),
            strict_health=bool(obs.get("strict_health", False)),
            commit=obs.get("commit"),
            last_error=obs.get("last_error"),
            conflicts=list(obs.get("conflicts") or []),
            held_at=row.held_at,
            defined_at=defined_at,
            defined_at_url=link,
        )


class AddonDrift(BaseModel):
    addon: str
    state: str
    resources: list[
        dict[str, Any]
    ]  # per resource: kind, name, namespace, drift_type, changes[path, want, live]
    omitted: int  # field changes the agent left out (over its per-add-on limit)
    conflicts: list[dict[str, Any]]  # fights with another field manager, with the ignore entry that ends them
    definition_diff: list[str]


class TransitionOut(BaseModel):
    from_state: str | None
    to_state: str
    reason: str
    cause: str
    at: datetime

    @classmethod
    def of(cls, row: AddonTransition) -> "TransitionOut":
        return cls(
            from_state=row.from_state, to_state=row.to_state, reason=row.reason, cause=row.cause, at=row.at
        )


class RollbackRequest(Request):
    revision: int = Field(ge=1, le=1_000_000)


class AddonAction(BaseModel):
    """What a rollback, resume or sync started: its operation, and the add-on's state after it."""

    operation_id: str
    operation_state: str
    messages: list[str]
    addon: AddonDetail | None
