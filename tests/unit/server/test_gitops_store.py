"""moorage.server.gitops.store over a migrated SQLite database: credentials, connect, sync requests,
history, backoff and polling schedules, recovery of interrupted syncs, webhook matching."""

import random
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrage import x25519
from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import Cluster, GitCredential, GitRepository, GitSync, new_id
from moorage.server.gitops import store
from moorage.server.gitops.repourl import RepoIdentity
from moorage.server.secretbox import SecretBox, SecretBoxError
from moorage.server.service import Conflict, Invalid, NotFound

BOX = SecretBox(x25519.Identity.generate())
T0 = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
URL = "https://github.com/Acme/Platform.git"
PATH = "clusters/dev/import-cluster.yaml"
TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def make_cluster(session: Session, name: str) -> Cluster:
    """A cluster row without the bcrypt cost of service.register_cluster."""
    cluster = Cluster(name=name, agent_token_hash=new_id(), agent_password_bcrypt="unused")
    session.add(cluster)
    session.flush()
    return cluster


def source(
    url: str = URL, branch: str = "main", path: str = PATH, provider: str = "github", **kwargs: Any
) -> store.Source:
    return store.checked_source(
        provider=provider, url=url, branch=branch, path=path, allow_file=False, **kwargs
    )


def connect(
    session: Session, cluster: Cluster, src: store.Source | None = None, now: datetime = T0, **kwargs: Any
) -> tuple[GitRepository, str | None]:
    return store.connect(session, BOX, cluster, src or source(), default_poll_seconds=300, now=now, **kwargs)


def add_sync(session: Session, cluster: Cluster, **fields: Any) -> GitSync:
    values: dict[str, Any] = {
        "cluster_id": cluster.id,
        "status": "success",
        "source": "manual",
        "triggered_by": "alice",
        "phase": store.COMPLETED,
        "url": URL,
        "branch": "main",
        "path": PATH,
        "started_at": T0,
    }
    row = GitSync(**(values | fields))
    session.add(row)
    session.flush()
    return row


# --------------------------------------------------------------------------- credentials


def _cred(s: Session, name: str, kind: str, secret: str, username: str | None = None) -> GitCredential:
    return store.create_credential(s, BOX, name, kind, secret, username, hosts=["github.com"])


def test_create_credential_seals_the_secret(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        row = _cred(s, "bot", "token", f"  {TOKEN}\n", username="robot")
        other = _cred(s, "deploy-key", "ssh_key", SSH_KEY)
    with transaction(factory) as s:
        row = store.get_credential(s, "bot")
        assert row.secret_sealed != TOKEN
        assert TOKEN not in row.secret_sealed
        auth = store.auth_of(BOX, row, URL, loopback_http=False)
        assert auth is not None
        assert (auth.kind, auth.username, auth.name) == ("token", "robot", "bot")
        assert auth.secret.reveal() == TOKEN  # a token is stored stripped
        assert TOKEN not in repr(auth)
        key = store.auth_of(BOX, store.get_credential(s, "deploy-key"), URL, loopback_http=False)
        assert key is not None
        assert key.secret.reveal() == SSH_KEY  # a key is stored as given
        assert other.kind == "ssh_key"
    assert store.auth_of(BOX, None, URL, loopback_http=False) is None


def test_a_sealed_secret_does_not_open_in_another_row(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        a = _cred(s, "a", "token", "token-a")
        b = _cred(s, "b", "token", "token-b")
        b.secret_sealed = a.secret_sealed
        with pytest.raises(SecretBoxError, match="does not belong"):
            store.auth_of(BOX, b, URL, loopback_http=False)


@pytest.mark.parametrize(
    ("kind", "secret", "message"),
    [
        ("password", "x", "unknown credential kind"),
        ("token", "", "1 to"),
        ("token", "   \n", "1 to"),
        ("token", "x" * (store.MAX_SECRET_CHARS + 1), "1 to"),
        ("token", "two words", "whitespace"),
        ("ssh_key", "not a key", "private key"),
    ],
)
def test_create_credential_refuses_bad_secrets(
    factory: SessionFactory, kind: str, secret: str, message: str
) -> None:
    with transaction(factory) as s, pytest.raises(Invalid, match=message) as e:
        _cred(s, "bot", kind, secret)
    if secret.strip():
        assert secret not in e.value.message


def test_credential_names_are_unique(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        _cred(s, "bot", "token", TOKEN)
        with pytest.raises(Conflict, match="'bot' already exists"):
            _cred(s, "bot", "token", "other")
        with pytest.raises(NotFound, match="'nope'"):
            store.get_credential(s, "nope")


def test_list_credentials_counts_their_clusters(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        _cred(s, "zeta", "token", TOKEN)
        _cred(s, "alpha", "token", TOKEN)
        _cred(s, "unused", "token", TOKEN)
        for name in ("c1", "c2"):
            connect(s, make_cluster(s, name), source(credential_name="zeta"))
        connect(s, make_cluster(s, "c3"), source(credential_name="alpha"))
        connect(s, make_cluster(s, "c4"))  # no credential
    with transaction(factory) as s:
        assert [(row.name, used) for row, used in store.list_credentials(s)] == [
            ("alpha", 1),
            ("unused", 0),
            ("zeta", 2),
        ]


def test_rotate_credential(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        row = _cred(s, "bot", "token", TOKEN, username="robot")
        sealed = row.secret_sealed
        created = row.updated_at
    with transaction(factory) as s:
        row = store.rotate_credential(s, BOX, "bot", " new-token-value ")
        assert row.secret_sealed != sealed
        assert row.updated_at >= created
    with transaction(factory) as s:
        auth = store.auth_of(BOX, store.get_credential(s, "bot"), URL, loopback_http=False)
        assert auth is not None
        assert auth.secret.reveal() == "new-token-value"
        assert auth.username == "robot"  # kept when not given
        store.rotate_credential(s, BOX, "bot", "third", username="other-user")
        assert store.get_credential(s, "bot").username == "other-user"
        with pytest.raises(Invalid):
            store.rotate_credential(s, BOX, "bot", "has space")
        with pytest.raises(NotFound):
            store.rotate_credential(s, BOX, "nope", "x")


def test_rotate_credential_ends_the_backoff_of_failing_repositories(factory: SessionFactory) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with transaction(factory) as s:
        _cred(s, "bot", "token", TOKEN)
        _cred(s, "other", "token", TOKEN)
        failing, _ = connect(s, make_cluster(s, "failing"), source(credential_name="bot"))
        waiting_no_retry, _ = connect(s, make_cluster(s, "no-retry"), source(credential_name="bot"))
        synced, _ = connect(s, make_cluster(s, "synced"), source(credential_name="bot"))
        elsewhere, _ = connect(s, make_cluster(s, "elsewhere"), source(credential_name="other"))
        failing.sync_status, failing.next_retry_at = store.ERROR, later
        waiting_no_retry.sync_status = store.ERROR
        synced.sync_status, synced.next_retry_at = store.SYNCED, later
        elsewhere.sync_status, elsewhere.next_retry_at = store.ERROR, later
    before = datetime.now(UTC)
    with transaction(factory) as s:
        row = store.rotate_credential(s, BOX, "bot", "rotated-token")
    after = datetime.now(UTC)
    with transaction(factory) as s:
        repos = {r.cluster.name: r for r in s.scalars(select(GitRepository))}
        moved = repos["failing"].next_retry_at
        assert moved is not None
        assert before <= moved <= after
        assert moved == row.updated_at
        assert repos["no-retry"].next_retry_at is None
        assert repos["synced"].next_retry_at == later
        assert repos["elsewhere"].next_retry_at == later


def test_delete_credential(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        _cred(s, "bot", "token", TOKEN)
        _cred(s, "spare", "token", TOKEN)
        for name in ("web", "api"):
            connect(s, make_cluster(s, name), source(credential_name="bot"))
    with transaction(factory) as s, pytest.raises(Conflict) as e:
        store.delete_credential(s, "bot")
    assert "'bot'" in e.value.message
    assert "api, web" in e.value.message
    with transaction(factory) as s:
        store.delete_credential(s, "spare")
        with pytest.raises(NotFound):
            store.delete_credential(s, "spare")
    with transaction(factory) as s:
        assert [row.name for row, _ in store.list_credentials(s)] == ["bot"]
        for cluster in s.scalars(select(Cluster)):
            store.disconnect(s, cluster)
        store.delete_credential(s, "bot")
    with transaction(factory) as s:
        assert s.scalars(select(GitCredential)).all() == []


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    "fields",
    [
        {"provider": "gitlab"},
        {"url": "file:///srv/repo.git"},
        {"url": "/srv/repo.git"},
        {"url": "https://ghp_0123456789abcdefghijkl@github.com/a/b.git"},
        {"url": "https://user:pass@github.com/a/b.git"},
        {"url": "--upload-pack=touch /tmp/x"},
        {"url": "ext::sh -c touch% /tmp/x"},
        {"branch": "-x"},
        {"branch": "a..b"},
        {"branch": ""},
        {"path": "../x.yaml"},
        {"path": "/abs.yaml"},
        {"path": "cluster.txt"},
        {"workspace": "acme"},  # a Bitbucket field on GitHub
        {"repository": "no-slash"},
        {"instance_url": "ftp://example.com/x"},
        {"instance_url": "https://ann:secret@example.com"},
    ],
)
def test_checked_source_rejections_are_invalid(fields: dict[str, Any]) -> None:
    args: dict[str, Any] = {"provider": "github", "url": URL, "branch": "main", "path": PATH} | fields
    with pytest.raises(Invalid) as e:
        store.checked_source(allow_file=False, **args)
    assert e.value.message
    assert "user:pass" not in e.value.message  # the URL, which may hold a secret, is never repeated
    assert "ghp_" not in e.value.message


def test_an_instance_url_may_be_just_the_host() -> None:
    """GitHub Enterprise or Bitbucket Data Center at the root of their host (not a repository URL)."""
    src = store.checked_source(
        provider="bitbucket_data_center",
        url="ssh://git@bb.example.com:7999/plat/defs.git",
        branch="main",
        path=PATH,
        allow_file=False,
        instance_url="https://bb.example.com",
    )
    assert src.instance_url == "https://bb.example.com"


def test_checked_source_accepts_and_normalises() -> None:
    src = store.checked_source(
        provider="github", url=f"  {URL} ", branch="release/1.x", path=" clusters/a.yml ", allow_file=False
    )
    assert (src.url, src.branch, src.path) == (URL, "release/1.x", "clusters/a.yml")
    assert src.identity() == RepoIdentity("acme", "platform")
    local = store.checked_source(
        provider="github", url="file:///srv/org/repo.git", branch="main", path=PATH, allow_file=True
    )
    assert local.url == "file:///srv/org/repo.git"
    bitbucket = source(
        "https://bitbucket.org/x/y.git", provider="bitbucket_cloud", workspace="Team", repo_slug="Repo"
    )
    assert bitbucket.identity() == RepoIdentity("team", "repo")


# --------------------------------------------------------------------------- connect


def test_connect_creates_the_repository_and_requests_a_sync(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        _cred(s, "bot", "token", TOKEN)
        cluster = make_cluster(s, "dev")
        repo, secret = connect(s, cluster, source(credential_name="bot", poll_interval_seconds=60))
    assert secret is not None
    assert len(secret) >= 40
    with transaction(factory) as s:
        repo = s.scalars(select(GitRepository)).one()
        assert secret not in repo.webhook_secret_sealed
        assert store.webhook_secret(BOX, repo) == secret.encode()
        assert (repo.provider, repo.url, repo.branch, repo.path) == ("github", URL, "main", PATH)
        assert (repo.owner, repo.repo_name) == ("acme", "platform")
        assert repo.credential is not None
        assert repo.credential.name == "bot"
        assert repo.sync_status == store.SYNCING
        assert repo.requested_at == T0
        assert repo.requested_source == "manual"
        assert repo.requested_by == "connect"
        assert repo.requested_revision is None
        assert repo.poll_interval_seconds == 60
        assert repo.next_poll_at is not None
        # the first poll is jittered too, so that clusters connected together do not poll together
        assert abs((repo.next_poll_at - T0).total_seconds() - 60) <= 60 * store.POLL_JITTER
        assert repo.next_retry_at is None


def test_a_second_connect_updates_and_keeps_the_webhook_secret(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        repo, secret = connect(s, cluster)
        repo_id = repo.id
        assert secret is not None
    later = T0 + timedelta(minutes=5)
    with transaction(factory) as s:
        cluster = s.scalars(select(Cluster)).one()
        repo = s.scalars(select(GitRepository)).one()
        repo.next_retry_at = later + timedelta(hours=1)
        repo.requested_at = None
        again, second = connect(s, cluster, source(branch="prod"), now=later)
        assert second is None
        assert again.id == repo_id
    with transaction(factory) as s:
        repo = s.scalars(select(GitRepository)).one()
        assert store.webhook_secret(BOX, repo) == secret.encode()
        assert repo.branch == "prod"
        assert repo.poll_interval_seconds == 300  # the default
        assert repo.requested_at == later
        assert repo.requested_source == "manual"
        assert repo.next_retry_at is None
        assert repo.credential_id is None


def test_connect_with_a_given_webhook_secret(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        repo, generated = connect(s, cluster, webhook_secret="chosen-by-the-user")
        assert generated is None
        assert store.webhook_secret(BOX, repo) == b"chosen-by-the-user"
        _, generated = connect(s, cluster, webhook_secret="changed-by-the-user")
        assert generated is None
        assert store.webhook_secret(BOX, repo) == b"changed-by-the-user"
        new = store.rotate_webhook_secret(s, BOX, repo)
        assert new != "changed-by-the-user"
        assert store.webhook_secret(BOX, repo) == new.encode()


def test_connect_needs_an_existing_credential(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        with pytest.raises(NotFound, match="'missing'"):
            connect(s, cluster, source(credential_name="missing"))
        assert store.get_repository(s, cluster) is None


def test_disconnect(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        connect(s, cluster)
        add_sync(s, cluster)
        store.disconnect(s, cluster)
        assert store.get_repository(s, cluster) is None
        assert store.history(s, cluster)[1] == 1  # the history stays
        with pytest.raises(NotFound, match="not connected"):
            store.disconnect(s, cluster)


# --------------------------------------------------------------------------- repoint


def test_repoint_of_a_never_synced_repository_is_empty(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        assert store.previous_source(s, cluster) is None
        connect(s, cluster)
        assert store.previous_source(s, cluster) is None
        assert store.repoint_of(store.previous_source(s, cluster), source("https://github.com/x/y.git")) == []
        # a failed sync deployed nothing either
        add_sync(s, cluster, status="failed", url="https://github.com/old/repo.git")
        assert store.previous_source(s, cluster) is None


def test_repoint_of_lists_what_changes_after_a_sync(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        repo, _ = connect(s, cluster)
        repo.last_commit_sha = "a" * 40
        repo.observed_source = {"url": URL, "branch": "main", "path": PATH}
        previous = store.previous_source(s, cluster)
        assert previous == {"url": URL, "branch": "main", "path": PATH}
        assert store.repoint_of(previous, source()) == []
        changes = store.repoint_of(previous, source("https://github.com/acme/other.git", "prod", "c/x.yaml"))
        assert changes == [
            f"url {URL!r} → 'https://github.com/acme/other.git'",
            "branch 'main' → 'prod'",
            f"path {PATH!r} → 'c/x.yaml'",
        ]
        assert store.repoint_of(previous, source(branch="prod")) == ["branch 'main' → 'prod'"]


def test_repoint_of_after_a_disconnect_uses_the_last_successful_sync(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        add_sync(s, cluster, url="https://github.com/acme/older.git", started_at=T0 - timedelta(hours=2))
        add_sync(s, cluster, url="https://github.com/acme/newest.git", started_at=T0 - timedelta(hours=1))
        add_sync(s, cluster, status="failed", url="https://github.com/acme/failed.git", started_at=T0)
        previous = store.previous_source(s, cluster)
        assert previous is not None
        assert previous["url"] == "https://github.com/acme/newest.git"
        assert store.repoint_of(previous, source()) == [f"url 'https://github.com/acme/newest.git' → {URL!r}"]


# --------------------------------------------------------------------------- sync requests


def test_request_sync_coalesces(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        repo, _ = connect(s, make_cluster(s, "dev"))
        t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
        store.request_sync(s, repo, "webhook", "alice", revision="abc1234", pending_sha="b" * 40, now=t1)
        assert (repo.requested_at, repo.requested_source, repo.requested_revision) == (
            t1,
            "webhook",
            "abc1234",
        )
        store.request_sync(s, repo, "poll", "x" * 300, now=t2)
    with transaction(factory) as s:
        repo = s.scalars(select(GitRepository)).one()
        assert repo.requested_at == t2
        assert repo.requested_source == "poll"
        assert repo.requested_revision is None
        assert repo.requested_by == "x" * 200
        assert repo.pending_commit_sha == "b" * 40  # kept when the later request names none
        assert store.requested(s, []) == [repo]
        assert store.requested(s, [repo.cluster_id]) == []


def test_a_retry_request_keeps_the_backoff_and_a_fresh_one_clears_it(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        repo, _ = connect(s, make_cluster(s, "dev"))
        when = T0 + timedelta(minutes=1)
        repo.next_retry_at = when
        store.request_sync(s, repo, "manual", "retry", retry=2, now=T0)
        kept = (repo.next_retry_at, repo.requested_retry)
        store.request_sync(s, repo, "manual", "alice", now=T0)
        cleared: tuple[datetime | None, int] = (repo.next_retry_at, repo.requested_retry)
        assert kept == (when, 2)
        assert cleared == (None, 0)


def test_due_polls_and_retries(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        repo, _ = connect(s, make_cluster(s, "dev"))  # next poll at T0 + 300 s ± 10 %
        assert store.due_polls(s, T0 + timedelta(seconds=269)) == []
        assert store.due_polls(s, T0 + timedelta(seconds=331)) == [repo]
        repo.next_retry_at = T0 + timedelta(seconds=10)
        assert store.due_retries(s, T0 + timedelta(seconds=20)) == []  # a request is pending
        repo.requested_at = None
        assert store.due_retries(s, T0 + timedelta(seconds=9)) == []
        assert store.due_retries(s, T0 + timedelta(seconds=10)) == [repo]


def test_start_sync_and_finish(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        repo, _ = connect(s, make_cluster(s, "dev"))
        store.request_sync(s, repo, "webhook", "push", revision="abc1234", retry=1, now=T0)
        row = store.start_sync(s, repo, T0 + timedelta(seconds=1))
        assert (row.status, row.source, row.triggered_by) == ("running", "webhook", "push")
        assert (row.revision, row.phase, row.retry_count, row.url) == ("abc1234", store.FETCHING, 1, URL)
        assert repo.requested_at is None
        assert repo.sync_status == store.SYNCING
        store.finish(row, T0 + timedelta(seconds=3.5), status="success", message="done")
        assert (row.status, row.phase, row.message) == ("success", store.COMPLETED, "done")
        assert row.duration_ms == 2500
        assert store.get_sync(s, row.id) is row
        with pytest.raises(NotFound):
            store.get_sync(s, "nope")


# --------------------------------------------------------------------------- history


def _history_rows(session: Session, cluster: Cluster) -> list[GitSync]:
    """Rows with many ties in every column, and equal start times (ties broken by id)."""
    statuses = ["success", "failed", "running"]
    sources = ["webhook", "manual", "poll"]
    rows = []
    for i in range(11):
        rows.append(
            add_sync(
                session,
                cluster,
                status=statuses[i % 3],
                source=sources[i % 2],
                commit_sha=f"{i % 4:x}" * 40,
                started_at=T0 + timedelta(minutes=i // 2),  # pairs start at the same time
                duration_ms=(i * 7) % 5 * 1000,
                triggered_by=["bob", "alice", "carol"][i % 3],
                retry_count=i % 2,
            )
        )
    return rows


def _expected(rows: list[GitSync], column: str, order: str) -> list[str]:
    ordered = sorted(rows, key=lambda r: r.id)
    ordered.sort(key=lambda r: r.started_at, reverse=True)
    ordered.sort(key=lambda r: getattr(r, column), reverse=order == "desc")  # stable: ties keep the above
    return [r.id for r in ordered]


def test_history_sorts_by_every_column_with_stable_ties_and_pages(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        rows = _history_rows(s, cluster)
        add_sync(s, make_cluster(s, "other"))  # never in dev's history
    with transaction(factory) as s:
        cluster = s.scalars(select(Cluster).where(Cluster.name == "dev")).one()
        for column in store.HISTORY_COLUMNS:
            for order in ("asc", "desc"):
                expected = _expected(rows, column, order)
                everything, total = store.history(s, cluster, page_size=100, sort=column, order=order)
                assert total == 11
                assert [r.id for r in everything] == expected, (column, order)
                paged: list[str] = []
                for page in (1, 2, 3, 4):
                    chunk, total = store.history(s, cluster, page=page, page_size=3, sort=column, order=order)
                    assert total == 11
                    assert len(chunk) == (3 if page < 4 else 2)
                    paged += [r.id for r in chunk]
                assert paged == expected, (column, order)
        beyond, total = store.history(s, cluster, page=5, page_size=3)
        assert (beyond, total) == ([], 11)


def test_history_default_is_newest_first(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        rows = [add_sync(s, cluster, started_at=T0 + timedelta(seconds=i)) for i in range(4)]
        page, total = store.history(s, cluster)
        assert [r.id for r in page] == [r.id for r in reversed(rows)]
        assert total == 4


def test_history_refuses_unknown_sort_columns(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster = make_cluster(s, "dev")
        for sort in ("url", "id; DROP TABLE git_syncs", ""):
            with pytest.raises(Invalid) as e:
                store.history(s, cluster, sort=sort)
            assert "started_at" in e.value.message


# --------------------------------------------------------------------------- schedules


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 (jitter, not cryptography)


class _Fixed(random.Random):
    """uniform() always answers `value` (a point of the jitter range)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def uniform(self, a: float, b: float) -> float:
        assert a <= self.value <= b
        return self.value


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(0, 200),
    base=st.floats(0.1, 60),
    cap=st.floats(1, 3600),
    seed=st.integers(0, 2**32),
)
def test_backoff_doubles_up_to_the_cap_with_jitter(attempt: int, base: float, cap: float, seed: int) -> None:
    raw = min(cap, base * 2 ** max(0, attempt - 1))
    delay = store.backoff_seconds(attempt, base, cap, seeded(seed))
    assert raw * 0.8 - 1e-9 <= delay <= raw * 1.2 + 1e-9
    assert delay <= cap * 1.2 + 1e-9


def test_backoff_sequence_without_jitter() -> None:
    exact = [store.backoff_seconds(n, 5, 300, _Fixed(0.0)) for n in range(1, 10)]
    assert exact == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert store.backoff_seconds(0, 5, 300, _Fixed(0.0)) == 5
    assert store.backoff_seconds(3, 5, 300, _Fixed(0.2)) == pytest.approx(24)
    assert store.backoff_seconds(3, 5, 300, _Fixed(-0.2)) == pytest.approx(16)
    assert 4 <= store.backoff_seconds(1, 5, 300) <= 6  # the module's own random


def test_backoff_after_very_many_attempts_stays_at_the_cap() -> None:
    assert store.backoff_seconds(1025, 5, 300, _Fixed(0.0)) == 300


@settings(max_examples=100, deadline=None)
@given(interval=st.integers(1, 7 * 24 * 3600), seed=st.integers(0, 2**32))
def test_next_poll_is_within_ten_percent_of_the_interval(interval: int, seed: int) -> None:
    repo = GitRepository(poll_interval_seconds=interval)
    after = (store.next_poll(repo, T0, seeded(seed)) - T0).total_seconds()
    assert interval * 0.9 - 1e-6 <= after <= interval * 1.1 + 1e-6


def test_next_poll_spreads_out() -> None:
    repo = GitRepository(poll_interval_seconds=600)
    rng = seeded(7)
    times = {store.next_poll(repo, T0, rng) for _ in range(20)}
    assert len(times) > 10
    assert store.next_poll(repo, T0, _Fixed(0.1)) == T0 + timedelta(seconds=660)
    assert store.next_poll(repo, T0, _Fixed(-0.1)) == T0 + timedelta(seconds=540)


# --------------------------------------------------------------------------- recovery


def test_interrupted_syncs_fail_and_are_requested_again(factory: SessionFactory) -> None:
    now = T0 + timedelta(minutes=10)
    with transaction(factory) as s:
        idle = make_cluster(s, "idle")
        repo, _ = connect(s, idle)
        repo.requested_at = None
        repo.next_retry_at = T0 + timedelta(hours=1)
        running = add_sync(
            s, idle, status="running", phase=store.APPLYING, source="webhook", triggered_by="push by bob",
            revision="abc1234", started_at=T0,
        )  # fmt: skip
        done = add_sync(s, idle, status="success", started_at=T0 - timedelta(hours=1))
        busy = make_cluster(s, "busy")
        busy_repo, _ = connect(s, busy, now=T0 + timedelta(minutes=9))  # a newer request is waiting
        add_sync(s, busy, status="running", started_at=T0)
        gone = make_cluster(s, "gone")  # disconnected while its sync ran
        add_sync(s, gone, status="running", started_at=T0)
        ids = (running.id, done.id, repo.id, busy_repo.id)
    with transaction(factory) as s:
        assert store.interrupted_syncs(s, now) == 3
    with transaction(factory) as s:
        rows = s.scalars(select(GitSync)).all()
        assert sorted(r.status for r in rows) == ["failed", "failed", "failed", "success"]
        row = s.get(GitSync, ids[0])
        assert row is not None
        assert row.finished_at == now
        assert row.duration_ms == 600_000
        assert row.error is not None
        assert row.error["error_type"] == "general"
        assert "interrupted" in row.error["message"]
        finished = s.get(GitSync, ids[1])
        assert finished is not None
        assert finished.status == "success"
        again = s.get(GitRepository, ids[2])
        assert again is not None
        assert again.requested_at == now
        assert (again.requested_source, again.requested_by) == ("webhook", "push by bob")
        assert again.requested_revision == "abc1234"
        assert again.next_retry_at is None
        waiting = s.get(GitRepository, ids[3])
        assert waiting is not None
        assert waiting.requested_at == T0 + timedelta(minutes=9)
        assert waiting.requested_by == "connect"
        assert store.interrupted_syncs(s, now) == 0


# --------------------------------------------------------------------------- webhooks


def test_webhook_candidates_match_provider_and_lowercased_identity(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        https, _ = connect(s, make_cluster(s, "https"), source("https://github.com/Acme/Platform.git"))
        scp, _ = connect(s, make_cluster(s, "scp"), source("git@github.com:ACME/platform"))
        connect(s, make_cluster(s, "other-repo"), source("https://github.com/acme/platform-2.git"))
        connect(s, make_cluster(s, "other-owner"), source("https://github.com/acme2/platform.git"))
        bitbucket, _ = connect(
            s,
            make_cluster(s, "bitbucket"),
            source("https://bitbucket.org/acme/platform.git", provider="bitbucket_cloud"),
        )
        explicit, _ = connect(
            s,
            make_cluster(s, "explicit"),
            source("https://git.example.com/mirror/x.git", repository="Acme/Platform"),
        )
        assert (https.owner, https.repo_name) == ("acme", "platform")
        assert (scp.owner, scp.repo_name) == ("acme", "platform")
        found = store.webhook_candidates(s, RepoIdentity("ACME", "PlatForm"), "github")
        assert sorted(r.cluster.name for r in found) == ["explicit", "https", "scp"]
        assert store.webhook_candidates(s, RepoIdentity("acme", "platform"), "bitbucket_cloud") == [bitbucket]
        assert store.webhook_candidates(s, RepoIdentity("acme", "platform"), "bitbucket_data_center") == []
        assert store.webhook_candidates(s, RepoIdentity("mirror", "x"), "github") == []
        assert explicit.url == "https://git.example.com/mirror/x.git"


def test_the_sortable_columns_of_the_api_are_the_ones_the_store_sorts_by() -> None:
    assert set(typing.get_args(store.HistoryColumn)) == set(store.HISTORY_COLUMNS)


def test_a_due_retry_requests_the_failed_sync_again(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        repo, _ = connect(s, make_cluster(s, "dev"))
        store.request_sync(s, repo, "webhook", "push abc", revision="abc1234", now=T0)
        row = store.start_sync(s, repo, T0)
        store.finish(row, T0 + timedelta(seconds=1), status="failed", error=store.general_error("down"))
        repo.retry_count = 2
        repo.next_retry_at = T0 + timedelta(seconds=10)
        store.retry_due(s, repo, T0 + timedelta(seconds=10))
        assert (repo.requested_source, repo.requested_by, repo.requested_revision) == (
            "webhook",
            "push abc",
            "abc1234",
        )
        assert repo.requested_retry == 2
        assert repo.next_retry_at is None  # retry_due cleared it


# ------------------------------------------------------------- credentials bound to hosts (issue 18, item 1)


def test_a_credential_is_not_attached_to_a_host_it_is_not_bound_to(factory: SessionFactory) -> None:
    """Found by probing: any writer could connect a cluster to http://any-host/x.git with an existing
    credential, and the server then sent it there. Now the connect is refused and nothing is stored."""
    with transaction(factory) as s:
        _cred(s, "bot", "token", TOKEN)
        cluster = make_cluster(s, "web")
        for url in (
            "https://evil.example/x.git",
            "https://github.com.evil.example/x.git",
            "git@evil.example:a/b",
        ):
            with pytest.raises(store.CredentialRefused, match=r"bound to github\.com, not to") as e:
                connect(s, cluster, source(url=url, credential_name="bot"))
            assert TOKEN not in e.value.message
            assert "allow-host bot" in e.value.message
        assert s.scalar(select(GitRepository)) is None
        repo, _ = connect(s, cluster, source(credential_name="bot"))  # github.com: bound
        assert repo.credential_id is not None


def test_a_credential_is_not_sent_over_plain_http_except_to_allowed_loopback(
    factory: SessionFactory,
) -> None:
    with transaction(factory) as s:
        row = store.create_credential(
            s, BOX, "local", "token", TOKEN, hosts=["http://127.0.0.1:8080", "http://git.example"]
        )
        with pytest.raises(store.CredentialRefused, match=r"plain HTTP to git\.example"):
            store.auth_of(BOX, row, "http://git.example/a.git", loopback_http=True)
        with pytest.raises(store.CredentialRefused, match="plain HTTP to a loopback address unless"):
            store.auth_of(BOX, row, "http://127.0.0.1:8080/a.git", loopback_http=False)
        auth = store.auth_of(BOX, row, "http://127.0.0.1:8080/a.git", loopback_http=True)
        assert auth is not None
        with pytest.raises(store.CredentialRefused, match=r"not to 127\.0\.0\.1"):
            store.auth_of(BOX, row, "http://127.0.0.1:9999/a.git", loopback_http=True)


def test_the_sync_refuses_a_credential_whose_host_binding_was_lost(factory: SessionFactory) -> None:
    """A repository row that points elsewhere (an older server connected it) gets no credential."""
    with transaction(factory) as s:
        _cred(s, "bot", "token", TOKEN)
        repo, _ = connect(s, make_cluster(s, "web"), source(credential_name="bot"))
        repo.url = "https://evil.example/x.git"
    with transaction(factory) as s:
        repo = s.scalars(select(GitRepository)).one()
        with pytest.raises(store.CredentialRefused):
            store.auth_of(BOX, repo.credential, repo.url, loopback_http=False)


def test_binding_a_credential_to_another_host(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        _cred(s, "bot", "token", TOKEN)
        row = store.allow_hosts(s, "bot", ["https://git.example/team/", "GITHUB.com"])
        assert row.hosts == ["github.com", "https://git.example/team"]
        with pytest.raises(Invalid, match="host binding"):
            store.allow_hosts(s, "bot", ["https://user:pw@git.example/"])
        auth = store.auth_of(BOX, row, "https://git.example/team/repo.git", loopback_http=False)
        assert auth is not None
        with pytest.raises(store.CredentialRefused):
            store.auth_of(BOX, row, "https://git.example/teamster/repo.git", loopback_http=False)


def test_a_registry_credential_is_not_a_git_credential(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        store.create_credential(s, BOX, "charts", "helm", "pw-123456", "robot", hosts=["github.com"])
        with pytest.raises(store.CredentialRefused, match="chart registry"):
            connect(s, make_cluster(s, "web"), source(credential_name="charts"))
        with pytest.raises(Invalid, match="needs a username"):
            store.create_credential(s, BOX, "oci", "oci", "pw-123456", hosts=["ghcr.io"])
