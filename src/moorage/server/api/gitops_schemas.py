"""Request and response bodies of the GitOps API (ankra-spec §6.3): credentials, connection, status,
history. Secrets go in as SecretStr and never come out, except a generated webhook secret, once."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from moorage.server.api.schemas import Request
from moorage.server.db.models import Cluster, GitCredential, GitRepository, GitSync
from moorage.server.gitops import repourl, store


class CredentialCreate(Request):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: Literal["token", "ssh_key", "helm", "oci"] = Field(
        default="token",
        description="Git: token (HTTPS) or ssh_key; chart registries: helm (HTTP(S) repository) or oci",
    )
    secret: SecretStr = Field(
        description="The token, password or private key. Stored encrypted; never returned."
    )
    username: str | None = Field(default=None, max_length=200, description="HTTP user for a token")
    hosts: list[str] = Field(
        min_length=1,
        max_length=32,
        description="Hosts (github.com, registry:5000) or URL prefixes (https://charts.example.com/team, "
        "oci://ghcr.io/acme) the credential may be sent to; nowhere else. Adding one later needs admin.",
    )
    ca_bundle: str | None = Field(default=None, max_length=65536, description="PEM CA bundle (registries)")
    client_cert: str | None = Field(default=None, max_length=65536, description="PEM client certificate")
    client_key: SecretStr | None = Field(default=None, description="PEM client key; stored encrypted")


class CredentialHosts(Request):
    hosts: list[str] = Field(min_length=1, max_length=32)


class CredentialRotate(Request):
    secret: SecretStr
    username: str | None = Field(default=None, max_length=200)


class CredentialOut(BaseModel):
    id: str
    name: str
    kind: str
    username: str | None
    hosts: list[str]
    ca_bundle: bool
    client_cert: bool
    created_at: datetime
    updated_at: datetime
    used_by: int

    @classmethod
    def of(cls, row: GitCredential, used_by: int = 0) -> "CredentialOut":
        return cls(
            id=row.id,
            name=row.name,
            kind=row.kind,
            username=row.username,
            hosts=list(row.hosts or []),
            ca_bundle=row.ca_bundle is not None,
            client_cert=row.client_cert is not None,
            created_at=row.created_at,
            updated_at=row.updated_at,
            used_by=used_by,
        )


class ConnectRequest(Request):
    provider: repourl.Provider | None = Field(
        default=None,
        description="github, bitbucket_cloud or bitbucket_data_center; default: from the URL's host",
    )
    url: str = Field(min_length=1, max_length=2048, description="Any URL git can clone (https, ssh, git).")
    branch: str = Field(default="main", min_length=1, max_length=255)
    path: str | None = Field(
        default=None,
        max_length=512,
        description="The ImportCluster file; default clusters/<name>/import-cluster.yaml",
    )
    credential_name: str | None = Field(default=None, max_length=200)
    poll_interval_seconds: int | None = Field(default=None, ge=5, le=86_400)
    repository: str | None = Field(default=None, max_length=255, description="github: owner/name")
    workspace: str | None = Field(default=None, max_length=255)
    repo_slug: str | None = Field(default=None, max_length=255)
    project_key: str | None = Field(default=None, max_length=255)
    instance_url: str | None = Field(default=None, max_length=2048)
    webhook_secret: SecretStr | None = Field(
        default=None, description="Use this webhook secret (e.g. one shared by clusters of one repository)."
    )
    edit_mode: store.EditMode | None = Field(
        default=None,
        description="Where Stack Builder saves go: push (commit to the tracked branch) or pull_request (a "
        "new branch per save, with a pull request opened through the provider's API; nothing syncs until "
        "it is merged). Default: unchanged (push for a new connection).",
    )
    allow_repoint: bool = False
    allow_repoint_destroying_data: bool = False


class SettingsUpdate(Request):
    """Settings of a connection that change nothing about what is synced (no repoint, no sync)."""

    edit_mode: store.EditMode = Field(
        description="push: Stack Builder saves commit to the tracked branch; pull_request: each save goes "
        "to a new branch with a pull request (opened through the provider's API where the connection's "
        "token credential may reach it), and nothing syncs until it is merged."
    )


class SyncRequest(Request):
    revision: str | None = Field(default=None, max_length=64, description="A commit of the branch (SHA)")


class GitRepoOut(BaseModel):
    provider: str
    url: str
    branch: str
    path: str
    web_url: str | None
    repo_owner: str
    repo_name: str
    workspace: str | None
    repo_slug: str | None
    project_key: str | None
    instance_url: str | None
    credential_name: str | None
    poll_interval_seconds: int
    webhook_url: str
    edit_mode: str = Field(description="push or pull_request: where Stack Builder saves go")


def web_url_of(repo: GitRepository) -> str | None:
    return repourl.web_url(repo.url, repo.provider, instance_url=repo.instance_url)  # type: ignore[arg-type]


class GitOpsStatus(BaseModel):
    cluster_name: str
    cluster_short_id: str
    sync_status: str
    sync_phase: str | None = None
    sync_progress_message: str = ""
    last_synced_at: datetime | None = None
    last_synced_from: str | None = None
    last_commit_sha: str | None = None
    last_commit_url: str | None = None
    last_commit_timestamp: datetime | None = None
    pending_commit_sha: str | None = None
    applied_with_failed_members: bool = False
    error: dict[str, Any] | None = None
    retry_count: int = 0
    next_retry_at: datetime | None = None
    observed_source: dict[str, Any] | None = None
    source_mismatch: bool = False
    iac_files_url: str | None = None
    git_repo: GitRepoOut | None = None

    @classmethod
    def of(cls, cluster: Cluster, repo: GitRepository | None, webhook_base: str) -> "GitOpsStatus":
        short_id = cluster.id[:8]
        if repo is None:
            return cls(cluster_name=cluster.name, cluster_short_id=short_id, sync_status=store.NOT_CONFIGURED)
        web = web_url_of(repo)
        provider: repourl.Provider = repo.provider  # type: ignore[assignment]
        source = {"url": repo.url, "branch": repo.branch, "path": repo.path}
        sha = repo.last_commit_sha
        directory = repo.path.rpartition("/")[0]
        return cls(
            cluster_name=cluster.name,
            cluster_short_id=short_id,
            sync_status=repo.sync_status,
            sync_phase=repo.sync_phase,
            sync_progress_message=repo.sync_progress_message,
            last_synced_at=repo.last_synced_at,
            last_synced_from=repo.last_synced_from,
            last_commit_sha=sha,
            last_commit_url=repourl.commit_url(web, provider, sha) if sha else None,
            last_commit_timestamp=repo.last_commit_timestamp,
            pending_commit_sha=repo.pending_commit_sha,
            applied_with_failed_members=repo.applied_with_failed_members,
            error=repo.error,
            retry_count=repo.retry_count,
            next_retry_at=repo.next_retry_at,
            observed_source=repo.observed_source,
            source_mismatch=repo.observed_source is not None and repo.observed_source != source,
            iac_files_url=repourl.files_url(web, provider, sha, directory) if sha else None,
            git_repo=GitRepoOut(
                provider=repo.provider,
                url=repo.url,
                branch=repo.branch,
                path=repo.path,
                web_url=web,
                repo_owner=repo.owner,
                repo_name=repo.repo_name,
                workspace=repo.workspace,
                repo_slug=repo.repo_slug,
                project_key=repo.project_key,
                instance_url=repo.instance_url,
                credential_name=repo.credential.name if repo.credential else None,
                poll_interval_seconds=repo.poll_interval_seconds,
                webhook_url=f"{webhook_base}/{repo.provider.replace('_', '-')}",
                edit_mode=repo.edit_mode,
            ),
        )


class Connected(GitOpsStatus):
    webhook_secret: str | None = Field(
        default=None,
        description="Generated at the first connect and shown once: give it to the Git provider.",
    )


class SyncOut(BaseModel):
    id: str
    status: str
    source: str
    triggered_by: str
    phase: str
    message: str
    commit_sha: str | None
    commit_url: str | None
    files_url: str | None  # the definition's folder at that commit (seed 003's sync metadata)
    commit_timestamp: datetime | None
    revision: str | None
    url: str
    branch: str
    path: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    retry_count: int
    error: dict[str, Any] | None
    changes: dict[str, Any] | None
    operation_id: str | None

    @classmethod
    def of(cls, row: GitSync, repo: GitRepository | None) -> "SyncOut":
        web = web_url_of(repo) if repo is not None and repo.url == row.url else None
        provider: repourl.Provider = repo.provider if repo is not None else "github"  # type: ignore[assignment]
        return cls(
            id=row.id,
            status=row.status,
            source=row.source,
            triggered_by=row.triggered_by,
            phase=row.phase,
            message=row.message,
            commit_sha=row.commit_sha,
            commit_url=repourl.commit_url(web, provider, row.commit_sha) if row.commit_sha else None,
            files_url=(
                repourl.files_url(web, provider, row.commit_sha, row.path.rpartition("/")[0])
                if row.commit_sha
                else None
            ),
            commit_timestamp=row.commit_timestamp,
            revision=row.revision,
            url=row.url,
            branch=row.branch,
            path=row.path,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_ms=row.duration_ms,
            retry_count=row.retry_count,
            error=row.error,
            changes=row.changes,
            operation_id=row.operation_id,
        )


class SyncRequested(BaseModel):
    cluster_name: str
    requested_at: datetime
    revision: str | None
    sync: SyncOut | None = Field(default=None, description="The finished sync, when `wait` was given")


class WebhookAccepted(BaseModel):
    event: str
    enqueued: list[str] = Field(default_factory=list, description="clusters whose sync was requested")
    ignored: list[str] = Field(default_factory=list, description="why other pushes or clusters were skipped")
