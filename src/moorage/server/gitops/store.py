"""GitOps records over a database Session: credentials, each cluster's repository, sync requests,
status and history. No I/O besides the database; callers own the transaction (db.transaction)."""

import ipaddress
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from moorage.server import credhosts, safetext
from moorage.server.db.models import (
    Cluster,
    GitCredential,
    GitRepository,
    GitSync,
    Operation,
    WebhookDelivery,
    new_id,
    utcnow,
)
from moorage.server.egress import EgressPolicy
from moorage.server.gitops import repourl
from moorage.server.gitops.git import GitAuth
from moorage.server.secretbox import Secret, SecretBox
from moorage.server.service import FINAL_OPERATION_STATES, Conflict, Invalid, NotFound, cancel_operation
from moorage.spec.protocol import JobState

GIT_KINDS = ("token", "ssh_key")
REGISTRY_KINDS = ("helm", "oci")  # an HTTP(S) Helm repository, an OCI registry (basic auth / token)
CREDENTIAL_KINDS = (*GIT_KINDS, *REGISTRY_KINDS)
MAX_PEM_CHARS = 64 * 1024
SOURCES = ("webhook", "manual", "poll")
MAX_SECRET_CHARS = 16 * 1024
# a webhook secret authenticates every push: shorter ones are refused, generated ones have 43 chars
MIN_WEBHOOK_SECRET_CHARS = 16
MAX_WEBHOOK_SECRET_CHARS = 1024
# signed deliveries remembered per provider, so that a replay is enqueued once: GitHub lets a
# delivery be redelivered for 3 days
DELIVERY_MEMORY = timedelta(days=3)
MAX_DELIVERIES_PER_PROVIDER = 10_000
GITOPS_SYNC_KIND = "gitops_sync"  # the operation kind of a GitOps sync's job
# sync_status values (ankra-spec §6.3)
SYNCED, SYNCING, ERROR, NOT_CONFIGURED = "synced", "syncing", "error", "not_configured"
# sync phases
FETCHING, VALIDATING, APPLYING, COMPLETED = "fetching", "validating", "applying", "completed"
HistoryColumn = Literal[
    "status", "source", "commit_sha", "started_at", "duration_ms", "triggered_by", "retry_count"
]
HISTORY_COLUMNS: dict[str, Any] = {
    "status": GitSync.status,
    "source": GitSync.source,
    "commit_sha": GitSync.commit_sha,
    "started_at": GitSync.started_at,
    "duration_ms": GitSync.duration_ms,
    "triggered_by": GitSync.triggered_by,
    "retry_count": GitSync.retry_count,
}
# where the Stack Builder's saves go (GitRepository.edit_mode): the tracked branch, or a new branch
# with a pull request
EditMode = Literal["push", "pull_request"]
EDIT_MODES: tuple[EditMode, ...] = ("push", "pull_request")
POLL_JITTER = 0.1  # ±10 % of the interval, so that many repositories do not poll in step


def default_path(cluster_name: str) -> str:
    """Where a cluster's ImportCluster file lives unless told otherwise (docs/spec.md)."""
    return f"clusters/{cluster_name}/import-cluster.yaml"


# --------------------------------------------------------------------------- credentials


def _credential_purpose(row: GitCredential) -> str:
    return f"git-credential:{row.id}"


def _control_character(text: str, allowed: str = "") -> tuple[int, str] | None:
    """The first control character (C0, DEL, C1) of `text` not in `allowed`, with its position."""
    for index, ch in enumerate(text):
        if (ch < " " or "\x7f" <= ch <= "\x9f") and ch not in allowed:
            return index + 1, ch
    return None


def _check_secret(kind: str, secret: str) -> None:
    if kind not in CREDENTIAL_KINDS:
        raise Invalid(f"unknown credential kind {kind!r}; use {', '.join(CREDENTIAL_KINDS)}")
    if kind in REGISTRY_KINDS:
        kind = "token"  # a registry password or token: one line, no whitespace
    if not secret.strip() or len(secret) > MAX_SECRET_CHARS:
        raise Invalid(f"the secret must have 1 to {MAX_SECRET_CHARS} characters")
    # a NUL cannot be put in git's environment and no control character survives HTTP basic auth
    # or an ssh-agent: every sync using such a secret would fail, so it is refused here (the
    # position only, never the secret itself)
    found = _control_character(
        secret.strip() if kind == "token" else secret, "" if kind == "token" else "\n\r\t"
    )
    if found is not None:
        position, ch = found
        raise Invalid(
            f"the {'token' if kind == 'token' else 'private key'} contains a control character "
            f"(U+{ord(ch):04X} at position {position}) that git cannot use; paste it again without it"
        )
    if kind == "ssh_key" and "PRIVATE KEY-----" not in secret:
        raise Invalid("an ssh_key credential needs a private key in OpenSSH or PEM format")
    if kind == "token" and any(c.isspace() for c in secret.strip()):
        raise Invalid("a token must not contain whitespace")


def _check_username(username: str | None) -> None:
    if username is not None and (why := safetext.problem(username, "the user name")) is not None:
        raise Invalid(why)


def _check_pem(text: str | None, what: str, marker: str) -> str | None:
    if text is None or not text.strip():
        return None
    if len(text) > MAX_PEM_CHARS or marker not in text or _control_character(text, "\n\r\t") is not None:
        raise Invalid(
            f"the {what} must be PEM text (-----BEGIN {marker.strip('-')}…) of at most {MAX_PEM_CHARS} chars"
        )
    return text


def _check_hosts(hosts: list[str] | tuple[str, ...]) -> list[str]:
    try:
        return credhosts.normalize_all(hosts)
    except credhosts.BindingError as e:
        raise Invalid(str(e)) from None


def create_credential(
    session: Session,
    box: SecretBox,
    name: str,
    kind: str,
    secret: str,
    username: str | None = None,
    *,
    hosts: list[str] | tuple[str, ...] = (),
    ca_bundle: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> GitCredential:
    """A credential bound to `hosts` (hosts or URL prefixes, see credhosts): it is sent nowhere
    else. Registry credentials (helm, oci) need a username; a CA bundle and a client certificate
    with its key are for registries only."""
    _check_secret(kind, secret)
    _check_username(username)
    if kind in REGISTRY_KINDS and not username:
        raise Invalid(f"a {kind} credential needs a username (any name for a registry that takes a token)")
    if kind in GIT_KINDS and (ca_bundle or client_cert or client_key):
        raise Invalid("a CA bundle and a client certificate are for helm and oci credentials only")
    ca = _check_pem(ca_bundle, "CA bundle", "-----BEGIN CERTIFICATE-----")
    cert = _check_pem(client_cert, "client certificate", "-----BEGIN CERTIFICATE-----")
    key = _check_pem(client_key, "client key", "PRIVATE KEY-----")
    if (cert is None) != (key is None):
        raise Invalid("a client certificate needs its key, and a key its certificate")
    bound = _check_hosts(hosts)
    if session.scalar(select(GitCredential.id).where(GitCredential.name == name)) is not None:
        raise Conflict(f"a credential named {name!r} already exists; rotate it instead")
    now = utcnow()
    row = GitCredential(
        id=new_id(),
        name=name,
        kind=kind,
        username=username,
        hosts=bound,
        ca_bundle=ca,
        client_cert=cert,
        created_at=now,
        updated_at=now,
    )
    row.secret_sealed = box.seal(secret.strip() if kind != "ssh_key" else secret, _credential_purpose(row))
    if key is not None:
        row.client_key_sealed = box.seal(key, _client_key_purpose(row))
    session.add(row)
    session.flush()
    return row


def _client_key_purpose(row: GitCredential) -> str:
    return f"credential-client-key:{row.id}"


def allow_hosts(session: Session, name: str, hosts: list[str]) -> GitCredential:
    """Bind the credential to more hosts (an admin's decision: the credential will be sent there)."""
    row = get_credential(session, name)
    added = _check_hosts(hosts)
    merged = list(row.hosts or [])
    merged += [h for h in added if h not in merged]
    row.hosts = _check_hosts(merged)
    row.updated_at = utcnow()
    return row


def credential_refusal(row: GitCredential, url: str, *, loopback_http: bool, git: bool) -> str | None:
    """Why `row` must not be sent to `url` (wrong kind, a host it is not bound to, plain HTTP)."""
    if git and row.kind not in GIT_KINDS:
        return f"credential {row.name!r} is a {row.kind} (chart registry) credential, not a Git one"
    if not git and row.kind not in REGISTRY_KINDS:
        return f"credential {row.name!r} is a Git credential; a registry needs a helm or oci credential"
    return credhosts.refusal(row.name, list(row.hosts or []), url, loopback_http=loopback_http)


def get_credential(session: Session, name: str) -> GitCredential:
    row = session.scalar(select(GitCredential).where(GitCredential.name == name))
    if row is None:
        raise NotFound(f"no credential named {name!r}; create it with `moorage credentials create`")
    return row


def rotate_credential(
    session: Session, box: SecretBox, name: str, secret: str, username: str | None = None
) -> GitCredential:
    row = get_credential(session, name)
    _check_secret(row.kind, secret)
    _check_username(username)
    row.secret_sealed = box.seal(
        secret.strip() if row.kind != "ssh_key" else secret, _credential_purpose(row)
    )
    if username is not None:
        row.username = username
    row.updated_at = utcnow()
    # a repository waiting out a backoff because of refused credentials should try again now
    for repo in session.scalars(select(GitRepository).where(GitRepository.credential_id == row.id)):
        if repo.sync_status == ERROR and repo.next_retry_at is not None:
            repo.next_retry_at = row.updated_at
    return row


def list_credentials(session: Session) -> list[tuple[GitCredential, int]]:
    """Each credential with the number of clusters using it."""
    used = dict(
        session.execute(
            select(GitRepository.credential_id, func.count()).group_by(GitRepository.credential_id)
        ).all()
    )
    rows = session.scalars(select(GitCredential).order_by(GitCredential.name))
    return [(row, int(used.get(row.id, 0))) for row in rows]


def delete_credential(session: Session, name: str) -> GitCredential:
    row = get_credential(session, name)
    users = session.scalars(
        select(Cluster.name)
        .join(GitRepository, GitRepository.cluster_id == Cluster.id)
        .where(GitRepository.credential_id == row.id)
    ).all()
    if users:
        raise Conflict(f"credential {name!r} is used by cluster(s) {', '.join(sorted(users))}")
    session.delete(row)
    session.flush()
    return row


def secret_of(box: SecretBox, row: GitCredential) -> Secret:
    """The credential's secret (for a registry login the server hands to an agent, sealed)."""
    return box.open(row.secret_sealed, _credential_purpose(row))


def client_key_of(box: SecretBox, row: GitCredential) -> Secret | None:
    return box.open(row.client_key_sealed, _client_key_purpose(row)) if row.client_key_sealed else None


def loopback_http(policy: EgressPolicy) -> bool:
    """Whether credentials may go over plain HTTP to loopback: only when the administrator allowed
    loopback targets at all (MOORAGE_EGRESS_ALLOW=loopback, as the tests and the demo do)."""
    return policy.allows(ipaddress.ip_address("127.0.0.1"))


class CredentialRefused(Invalid):
    """A credential is not sent to this URL; the message names it and what to do."""


def auth_of(box: SecretBox, row: GitCredential | None, url: str, *, loopback_http: bool) -> GitAuth | None:
    """The Git credential opened for `url`, or CredentialRefused when it must not go there."""
    if row is None:
        return None
    why = credential_refusal(row, url, loopback_http=loopback_http, git=True)
    if why is not None:
        raise CredentialRefused(why)
    return GitAuth(
        kind=row.kind,
        secret=box.open(row.secret_sealed, _credential_purpose(row)),
        username=row.username,
        name=row.name,
    )


# --------------------------------------------------------------------------- repositories


@dataclass(frozen=True)
class Source:
    """What a cluster is connected to, checked."""

    provider: repourl.Provider
    url: str
    branch: str
    path: str
    credential_name: str | None = None
    poll_interval_seconds: int | None = None
    workspace: str | None = None
    repo_slug: str | None = None
    project_key: str | None = None
    instance_url: str | None = None
    repository: str | None = None

    def identity(self) -> repourl.RepoIdentity | None:
        explicit = repourl.identity_from_fields(
            self.provider,
            repository=self.repository,
            workspace=self.workspace,
            repo_slug=self.repo_slug,
            project_key=self.project_key,
        )
        return explicit or repourl.identity_of(self.url)


def checked_source(
    *,
    provider: str,
    url: str,
    branch: str,
    path: str,
    allow_file: bool,
    credential_name: str | None = None,
    poll_interval_seconds: int | None = None,
    workspace: str | None = None,
    repo_slug: str | None = None,
    project_key: str | None = None,
    instance_url: str | None = None,
    repository: str | None = None,
) -> Source:
    if provider not in repourl.PROVIDERS:
        raise Invalid(f"unknown provider {provider!r}; use one of {', '.join(repourl.PROVIDERS)}")
    try:
        source = Source(
            provider=provider,
            url=repourl.check_url(url, allow_file=allow_file),
            branch=repourl.check_branch(branch),
            path=repourl.check_repo_path(path),
            credential_name=credential_name,
            poll_interval_seconds=poll_interval_seconds,
            workspace=workspace,
            repo_slug=repo_slug,
            project_key=project_key,
            instance_url=repourl.check_instance_url(instance_url) if instance_url else None,
            repository=repository,
        )
        source.identity()
    except repourl.RepoInputError as e:
        raise Invalid(e.message) from None
    return source


def get_repository(session: Session, cluster: Cluster) -> GitRepository | None:
    return repository_of(session, cluster.id)


def repository_of(session: Session, cluster_id: str) -> GitRepository | None:
    return session.scalar(select(GitRepository).where(GitRepository.cluster_id == cluster_id))


def previous_source(session: Session, cluster: Cluster) -> dict[str, Any] | None:
    """Where the cluster's definition last came from: what the connected repository's last successful
    sync read, else the last successful sync in the history (which outlives a disconnect)."""
    repo = get_repository(session, cluster)
    if repo is not None and repo.observed_source is not None:
        return dict(repo.observed_source)
    row = session.scalar(
        select(GitSync)
        .where(GitSync.cluster_id == cluster.id, GitSync.status == "success")
        .order_by(GitSync.started_at.desc())
        .limit(1)
    )
    return {"url": row.url, "branch": row.branch, "path": row.path} if row is not None else None


def repoint_of(previous: dict[str, Any] | None, source: Source) -> list[str]:
    """What a connect would change about where the cluster's definition comes from (empty: nothing,
    or never synced from Git, so nothing deployed from an old source can be lost)."""
    if previous is None:
        return []
    return [
        f"{key} {previous[key]!r} → {getattr(source, key)!r}"
        for key in ("url", "branch", "path")
        if previous.get(key) != getattr(source, key)
    ]


def _webhook_purpose(repo: GitRepository) -> str:
    return f"webhook-secret:{repo.id}"


def check_webhook_secret(secret: str) -> None:
    """A webhook secret someone chose: long enough not to be guessed, and carried as is by the
    Git provider's form (no control characters, no surrounding whitespace)."""
    if len(secret) < MIN_WEBHOOK_SECRET_CHARS:
        raise Invalid(
            f"the webhook secret must have at least {MIN_WEBHOOK_SECRET_CHARS} characters (it has "
            f"{len(secret)}); it authenticates every push. Leave it out and one is generated"
        )
    if len(secret) > MAX_WEBHOOK_SECRET_CHARS:
        raise Invalid(f"the webhook secret must have at most {MAX_WEBHOOK_SECRET_CHARS} characters")
    if secret != secret.strip() or _control_character(secret) is not None:
        raise Invalid("the webhook secret must not contain control characters or surrounding whitespace")


def connect(
    session: Session,
    box: SecretBox,
    cluster: Cluster,
    source: Source,
    *,
    default_poll_seconds: int,
    webhook_secret: str | None = None,
    triggered_by: str = "connect",
    now: datetime | None = None,
    loopback_http: bool = False,
    edit_mode: EditMode | None = None,
) -> tuple[GitRepository, str | None]:
    """Create or update the cluster's repository and request a first sync. Returns the row and the
    webhook secret when one was generated (shown once). Repoint checks are the caller's. A credential
    is attached only to a URL it is bound to (CredentialRefused otherwise). `edit_mode` None keeps
    the connection's (a new one pushes)."""
    now = now or utcnow()
    if webhook_secret is not None:
        check_webhook_secret(webhook_secret)
    credential = get_credential(session, source.credential_name) if source.credential_name else None
    if credential is not None:
        why = credential_refusal(credential, source.url, loopback_http=loopback_http, git=True)
        if why is not None:
            raise CredentialRefused(why)
    identity = source.identity()
    repo = get_repository(session, cluster)
    generated: str | None = None
    if repo is None:
        repo = GitRepository(
            id=new_id(),
            cluster_id=cluster.id,
            created_at=now,
            webhook_secret_sealed="",
            sync_status=SYNCING,
            sync_progress_message="",
            applied_digests={},
            retry_count=0,
            requested_retry=0,
            applied_with_failed_members=False,
            edit_mode="push",
        )
        session.add(repo)
        if webhook_secret is None:
            generated = webhook_secret = secrets.token_urlsafe(32)
    if webhook_secret is not None:
        repo.webhook_secret_sealed = box.seal(webhook_secret, _webhook_purpose(repo))
    repo.provider = source.provider
    repo.url = source.url
    repo.branch = source.branch
    repo.path = source.path
    repo.credential_id = credential.id if credential else None
    repo.owner = identity.owner if identity else ""
    repo.repo_name = identity.name if identity else ""
    repo.workspace, repo.repo_slug = source.workspace, source.repo_slug
    repo.project_key, repo.instance_url = source.project_key, source.instance_url
    if edit_mode is not None:
        repo.edit_mode = edit_mode
    repo.poll_interval_seconds = source.poll_interval_seconds or default_poll_seconds
    repo.updated_at = now
    repo.next_poll_at = next_poll(repo, now)
    repo.last_seen_head = None
    repo.next_retry_at = None
    request_sync(session, repo, "manual", triggered_by, now=now)
    return repo, generated


def webhook_secret(box: SecretBox, repo: GitRepository) -> bytes:
    return box.open(repo.webhook_secret_sealed, _webhook_purpose(repo)).reveal().encode()


def rotate_webhook_secret(session: Session, box: SecretBox, repo: GitRepository) -> str:
    secret = secrets.token_urlsafe(32)
    repo.webhook_secret_sealed = box.seal(secret, _webhook_purpose(repo))
    repo.updated_at = utcnow()
    session.flush()
    return secret


def disconnect(session: Session, cluster: Cluster) -> GitRepository:
    """Stop syncing from Git. Nothing in the cluster changes; the history stays."""
    repo = get_repository(session, cluster)
    if repo is None:
        raise NotFound(f"cluster {cluster.name!r} is not connected to a Git repository")
    session.delete(repo)
    session.flush()
    return repo


# --------------------------------------------------------------------------- sync requests


def request_sync(
    session: Session,
    repo: GitRepository,
    source: str,
    triggered_by: str,
    *,
    revision: str | None = None,
    pending_sha: str | None = None,
    retry: int = 0,
    now: datetime | None = None,
) -> None:
    """Ask for a sync; a later request replaces an earlier one not yet started (coalescing)."""
    repo.requested_at = now or utcnow()
    repo.requested_source = source
    repo.requested_by = triggered_by[:200]
    repo.requested_revision = revision
    repo.requested_retry = retry
    if retry == 0:
        repo.next_retry_at = None
    if pending_sha is not None:
        repo.pending_commit_sha = pending_sha
    session.flush()


def webhook_candidates(
    session: Session, identity: repourl.RepoIdentity, provider: str
) -> list[GitRepository]:
    return list(
        session.scalars(
            select(GitRepository).where(
                GitRepository.owner == identity.owner,
                GitRepository.repo_name == identity.name,
                GitRepository.provider == provider,
            )
        )
    )


def remember_delivery(session: Session, provider: str, delivery_id: str, now: datetime) -> bool:
    """Record a signed delivery's id; False when it was recorded before (a replay: act on it once).
    Ids older than DELIVERY_MEMORY, and beyond the newest MAX_DELIVERIES_PER_PROVIDER, are
    forgotten. Two identical deliveries at the same moment: the second one's transaction fails on
    the primary key (the caller treats that as a replay)."""
    if session.get(WebhookDelivery, (provider, delivery_id)) is not None:
        return False
    where = WebhookDelivery.provider == provider
    session.execute(delete(WebhookDelivery).where(where, WebhookDelivery.received_at < now - DELIVERY_MEMORY))
    oldest_kept = session.scalar(
        select(WebhookDelivery.received_at)
        .where(where)
        .order_by(WebhookDelivery.received_at.desc())
        .offset(MAX_DELIVERIES_PER_PROVIDER - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        session.execute(delete(WebhookDelivery).where(where, WebhookDelivery.received_at <= oldest_kept))
    session.add(WebhookDelivery(provider=provider, delivery_id=delivery_id, received_at=now))
    session.flush()
    return True


def running_sync_clusters(session: Session, busy: Sequence[str]) -> list[str]:
    """Clusters with a sync row still `running`, besides `busy` (this replica's own): either another
    replica runs it (it holds the cluster's lease) or the server running it stopped."""
    query = select(GitSync.cluster_id).where(GitSync.status == "running")
    if busy:
        query = query.where(GitSync.cluster_id.not_in(list(busy)))
    return sorted(set(session.scalars(query)))


def requested(session: Session, busy: Sequence[str]) -> list[GitRepository]:
    """Repositories with a sync request, whose cluster has no sync running."""
    query = select(GitRepository).where(GitRepository.requested_at.is_not(None))
    if busy:
        query = query.where(GitRepository.cluster_id.not_in(list(busy)))
    return list(session.scalars(query.order_by(GitRepository.requested_at)))


def due_retries(session: Session, now: datetime) -> list[GitRepository]:
    """Locked for the caller's transaction; rows another replica is taking are skipped."""
    return list(
        session.scalars(
            select(GitRepository)
            .where(
                GitRepository.next_retry_at.is_not(None),
                GitRepository.next_retry_at <= now,
                GitRepository.requested_at.is_(None),
            )
            .with_for_update(skip_locked=True)
        )
    )


def due_polls(session: Session, now: datetime) -> list[GitRepository]:
    """Locked for the caller's transaction (which moves next_poll_at on); rows another replica is
    polling are skipped, so each due poll is done by one replica (PostgreSQL; SQLite has one)."""
    return list(
        session.scalars(
            select(GitRepository)
            .where(GitRepository.next_poll_at.is_not(None), GitRepository.next_poll_at <= now)
            .with_for_update(skip_locked=True, of=GitRepository)
        )
    )


def next_poll(repo: GitRepository, now: datetime, rng: random.Random | None = None) -> datetime:
    jitter = 1 + (rng or random).uniform(-POLL_JITTER, POLL_JITTER)
    return now + timedelta(seconds=repo.poll_interval_seconds * jitter)


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with ±20 % jitter: base, 2·base, 4·base, … up to cap."""
    raw = min(cap, base * 2.0 ** min(60, max(0, attempt - 1)))
    return raw * (1 + (rng or random).uniform(-0.2, 0.2))


# --------------------------------------------------------------------------- sync runs


def start_sync(session: Session, repo: GitRepository, now: datetime) -> GitSync:
    """Turn the pending request into a running history row."""
    row = GitSync(
        cluster_id=repo.cluster_id,
        status="running",
        source=repo.requested_source or "manual",
        triggered_by=repo.requested_by or "",
        phase=FETCHING,
        message="fetching",
        url=repo.url,
        branch=repo.branch,
        path=repo.path,
        revision=repo.requested_revision,
        requested_at=repo.requested_at,
        started_at=now,
        retry_count=repo.requested_retry,
    )
    session.add(row)
    repo.requested_at = None
    repo.sync_status = SYNCING
    repo.sync_phase = FETCHING
    repo.sync_progress_message = f"fetching branch {repo.branch}"
    session.flush()
    return row


def resumable_sync(session: Session, cluster_id: str) -> str | None:
    """The newest sync of the cluster left running after it queued its job (the caller holds the
    cluster's lease, so no server runs it any more): it is resumed, its job waited for."""
    return session.scalar(
        select(GitSync.id)
        .where(
            GitSync.cluster_id == cluster_id, GitSync.status == "running", GitSync.operation_id.is_not(None)
        )
        .order_by(GitSync.started_at.desc())
        .limit(1)
    )


def interrupted_syncs(
    session: Session, now: datetime, cluster_id: str | None = None, *, keep: str | None = None
) -> int:
    """Syncs left running by a stopped server: marked failed, and each cluster gets a new request.
    With `cluster_id`, only that cluster's (the caller holds its lease: no replica runs them);
    `keep` is one to leave running (it is resumed)."""
    count = 0
    query = select(GitSync).where(GitSync.status == "running")
    if cluster_id is not None:
        query = query.where(GitSync.cluster_id == cluster_id)
    if keep is not None:
        query = query.where(GitSync.id != keep)
    for row in session.scalars(query):
        finish(
            row, now, status="failed", error=general_error("interrupted: the server stopped during this sync")
        )
        repo = repository_of(session, row.cluster_id)
        if repo is not None and repo.requested_at is None:
            request_again(session, repo, row, now=now)
        count += 1
    return count


def supersede_open_syncs(session: Session, cluster_id: str, now: datetime) -> list[str]:
    """Cancel the GitOps sync operations of a cluster that are still open when a new sync run
    starts: a sync interrupted by a server restart (or whose wait failed) left its job queued or
    running, and the new run applies a newer state anyway. Returns the ids of the jobs cancelled or
    being cancelled, for the agent to be told."""
    operations = session.scalars(
        select(Operation).where(
            Operation.cluster_id == cluster_id,
            Operation.kind == GITOPS_SYNC_KIND,
            Operation.state.not_in([str(s) for s in FINAL_OPERATION_STATES]),
        )
    ).all()
    job_ids: list[str] = []
    for operation in operations:
        cancel_operation(session, operation.id, now)
        for job in operation.jobs:
            if job.state in (JobState.CANCELLED.value, JobState.CANCELLING.value):
                job.messages = [*job.messages, "superseded by a newer GitOps sync (server)"]
                job_ids.append(job.id)
    return job_ids


def request_again(
    session: Session, repo: GitRepository, row: GitSync | None, *, retry: int = 0, now: datetime
) -> None:
    """Request the sync that `row` ran (same source, trigger and revision) once more."""
    if row is None:
        request_sync(session, repo, "manual", "retry", retry=retry, now=now)
    else:
        request_sync(session, repo, row.source, row.triggered_by, revision=row.revision, retry=retry, now=now)


def retry_due(session: Session, repo: GitRepository, now: datetime) -> None:
    """A backoff ran out: the last (failed) sync is requested again, counting the attempt."""
    last = session.scalar(
        select(GitSync)
        .where(GitSync.cluster_id == repo.cluster_id)
        .order_by(GitSync.started_at.desc())
        .limit(1)
    )
    request_again(session, repo, last, retry=repo.retry_count, now=now)
    repo.next_retry_at = None


def finish(
    row: GitSync, now: datetime, *, status: str, error: dict[str, Any] | None = None, message: str = ""
) -> None:
    row.status = status
    row.finished_at = now
    row.duration_ms = max(0, int((now - row.started_at).total_seconds() * 1000))
    row.error = error
    if status == "success":
        row.phase = COMPLETED
    if message:
        row.message = message


def general_error(message: str) -> dict[str, Any]:
    return {"error_type": "general", "message": message}


def validation_error(
    errors: Sequence[dict[str, Any]], warnings: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    n = len(errors)
    return {
        "error_type": "multiple_validation_errors",
        "message": f"the definition has {n} error{'s' if n != 1 else ''}; nothing was applied",
        "errors": list(errors),
        "warnings": list(warnings),
    }


def history(
    session: Session,
    cluster: Cluster,
    *,
    page: int = 1,
    page_size: int = 10,
    sort: str = "started_at",
    order: Literal["asc", "desc"] = "desc",
) -> tuple[list[GitSync], int]:
    if sort not in HISTORY_COLUMNS:
        raise Invalid(f"cannot sort by {sort!r}; use one of {', '.join(HISTORY_COLUMNS)}")
    column = HISTORY_COLUMNS[sort]
    where = GitSync.cluster_id == cluster.id
    total = session.scalar(select(func.count()).select_from(GitSync).where(where)) or 0
    # running syncs have no duration yet: last in either order, on SQLite and PostgreSQL alike
    primary = (column.asc() if order == "asc" else column.desc()).nulls_last()
    # ties (same status, same source…) keep a stable, newest-first order across pages
    rows = session.scalars(
        select(GitSync)
        .where(where)
        .order_by(primary, GitSync.started_at.desc(), GitSync.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return list(rows), total


def get_sync(session: Session, sync_id: str) -> GitSync:
    row = session.get(GitSync, sync_id)
    if row is None:
        raise NotFound(f"no sync with id {sync_id}")
    return row
