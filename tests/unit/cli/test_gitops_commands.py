"""The GitOps CLI commands (`moorage credentials …`, `moorage cluster connect|gitops|sync|history …`)
against the real server app in-process (see conftest.py), without the GitOps loop: sync rows and
repository states a sync would leave are written straight to the database."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from moorage.cli.main import app as main_app
from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import GitRepository, GitSync
from moorage.server.gitops import store
from moorage.server.secretbox import SecretBox
from tests.unit.cli.conftest import SERVER, Cli, as_json, ok
from tests.unit.server.conftest import Clock

URL = "https://github.com/acme/platform.git"
ROOT = "clusters/c1/import-cluster.yaml"
TOKEN_SECRET = "ghp_0123456789abcdefSECRETtoken"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAAsecretkeybody\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
SHA = "0123456789abcdef0123456789abcdef01234567"


def failed(result: Result, code: int = 1) -> Result:
    assert result.exit_code == code, result.output
    return result


def stored_secret(factory: SessionFactory, data_dir: Path, name: str) -> str:
    box = SecretBox.load_or_create(data_dir)
    with transaction(factory) as session:
        auth = store.auth_of(
            box, store.get_credential(session, name), "https://github.com/a/b", loopback_http=False
        )
        assert auth is not None
        return auth.secret.reveal()


def connect(cli: Cli, cluster: str = "c1", *args: str) -> Result:
    ok(cli("cluster", "register", cluster))
    return ok(cli("cluster", "connect", cluster, "--url", URL, *args))


def shown_webhook_secret(result: Result) -> str:
    lines = result.stdout.splitlines()
    [at] = [i for i, line in enumerate(lines) if "shown only now" in line]
    return lines[at + 1].strip()


def update_repo(factory: SessionFactory, cluster: str, **fields: Any) -> None:
    with transaction(factory) as session:
        repo = store.get_repository(session, service.get_cluster(session, cluster))
        assert repo is not None
        for key, value in fields.items():
            setattr(repo, key, value)


def add_sync(factory: SessionFactory, clock: Clock, cluster: str = "c1", **fields: Any) -> None:
    status = fields.get("status", "success")
    row: dict[str, Any] = {
        "status": status,
        "source": "poll",
        "triggered_by": "poller",
        "phase": "completed" if status == "success" else "validating",
        "message": "applied 1 added",
        "url": URL,
        "branch": "main",
        "path": ROOT,
        "commit_sha": SHA,
        "started_at": clock.now,
        "requested_at": clock.now,
        "finished_at": None if status == "running" else clock.now + timedelta(seconds=2),
        "duration_ms": None if status == "running" else 1500,
        **fields,
    }
    with transaction(factory) as session:
        session.add(GitSync(cluster_id=service.get_cluster(session, cluster).id, **row))


# --------------------------------------------------------------------------- credentials


def test_credentials_are_created_from_file_env_or_stdin_and_never_shown(
    cli: Cli, factory: SessionFactory, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN_SECRET + "\n")
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(SSH_KEY)
    secrets = (TOKEN_SECRET, "from-env-secret-0123", "from-stdin-secret-4567", "secretkeybody")

    runs = [
        cli("credentials", "create", "from-file", "--host", "github.com", "--secret-file", str(token_file)),
        cli(
            "credentials",
            "create",
            "from-env",
            "--host",
            "github.com",
            "--secret-env",
            "GIT_TOKEN",
            "--username",
            "x-token-auth",
            env={"GIT_TOKEN": "from-env-secret-0123"},
        ),
        cli("credentials", "create", "from-stdin", "--host", "github.com", stdin="from-stdin-secret-4567\n"),
        cli(
            "credentials",
            "create",
            "deploy-key",
            "--host",
            "github.com",
            "--kind",
            "ssh-key",
            "--secret-file",
            str(key_file),
        ),
        cli("credentials", "list"),
        cli("credentials", "list", "-o", "json"),
        cli("credentials", "list", "-o", "yaml"),
    ]
    for res in runs:
        ok(res)
        for secret in secrets:
            assert secret not in res.stdout
            assert secret not in res.stderr
    assert "created credential from-file (token)" in runs[0].stdout
    assert "--credential from-file" in runs[0].stdout

    table = runs[4].stdout
    for text in (
        "from-file",
        "from-env",
        "x-token-auth",
        "from-stdin",
        "deploy-key",
        "ssh_key",
        "0 clusters",
    ):
        assert text in table
    listed = json.loads(runs[5].stdout)
    assert [c["name"] for c in listed] == ["deploy-key", "from-env", "from-file", "from-stdin"]
    assert all("secret" not in c for c in listed)
    assert yaml.safe_load(runs[6].stdout) == listed

    # the server strips a token's trailing newline; a private key is kept byte for byte
    assert stored_secret(factory, tmp_path, "from-file") == TOKEN_SECRET
    assert stored_secret(factory, tmp_path, "from-stdin") == "from-stdin-secret-4567"
    assert stored_secret(factory, tmp_path, "deploy-key") == SSH_KEY

    again = failed(
        cli(
            "credentials",
            "create",
            "from-file",
            "--host",
            "github.com",
            "--secret-env",
            "X",
            env={"X": "other"},
        )
    )
    assert "already exists" in again.stderr
    not_a_key = failed(
        cli("credentials", "create", "k2", "--host", "github.com", "--kind", "ssh-key", stdin="just-a-token")
    )
    assert "private key" in not_a_key.stderr
    assert "just-a-token" not in not_a_key.output


def test_credential_secret_usage_errors(cli: Cli, tmp_path: Path) -> None:
    both = failed(
        cli("credentials", "create", "c", "--host", "github.com", "--secret-file", "f", "--secret-env", "V"),
        2,
    )
    assert "not both" in both.stderr
    unset = failed(
        cli(
            "credentials",
            "create",
            "c",
            "--host",
            "github.com",
            "--secret-env",
            "MOORAGE_TEST_UNSET_VARIABLE",
        ),
        2,
    )
    assert "MOORAGE_TEST_UNSET_VARIABLE is not set" in unset.stderr
    empty = failed(cli("credentials", "create", "c", "--host", "github.com", stdin="\n"), 2)
    assert "the secret is empty" in empty.stderr
    missing = failed(
        cli("credentials", "create", "c", "--host", "github.com", "--secret-file", str(tmp_path / "nope")), 2
    )
    assert "cannot read the secret" in missing.stderr
    assert "no credentials yet" in ok(cli("credentials", "list")).stdout
    # the secret is never an argument
    assert (
        failed(cli("credentials", "create", "c", "--host", "github.com", "--secret", "s3cret"), 2).exit_code
        == 2
    )


def test_credential_rotate_and_delete(cli: Cli, factory: SessionFactory, tmp_path: Path) -> None:
    ok(cli("credentials", "create", "git", "--host", "github.com", stdin=TOKEN_SECRET))
    rotated = ok(cli("credentials", "rotate", "git", "--username", "bot", stdin="rotated-secret-0123\n"))
    assert "rotated credential git" in rotated.stdout
    assert "rotated-secret-0123" not in rotated.output
    assert stored_secret(factory, tmp_path, "git") == "rotated-secret-0123"
    as_yaml = yaml.safe_load(ok(cli("credentials", "rotate", "git", "-o", "yaml", stdin="third-0123")).stdout)
    assert as_yaml["username"] == "bot"
    assert "third-0123" not in json.dumps(as_yaml)
    unknown = failed(cli("credentials", "rotate", "nope", stdin="x-0123"))
    assert "no credential named 'nope'" in unknown.stderr

    connect(cli, "c1", "--credential", "git")
    assert "1 cluster" in ok(cli("credentials", "list")).stdout
    in_use = failed(cli("credentials", "delete", "git"))
    assert "credential 'git' is used by cluster(s) c1" in in_use.stderr
    assert "disconnect them" in in_use.stderr

    assert "disconnected cluster c1" in ok(cli("cluster", "disconnect", "c1")).stdout
    assert "deleted credential git" in ok(cli("credentials", "delete", "git")).stdout
    assert as_json(cli("credentials", "list", "-o", "json")) == []
    assert "no credential named 'git'" in failed(cli("credentials", "delete", "git")).stderr
    no_credential = failed(cli("cluster", "connect", "c1", "--url", URL, "--credential", "git"))
    assert "no credential named 'git'" in no_credential.stderr


# --------------------------------------------------------------------------- connection and status


def test_connect_shows_the_webhook_secret_once(cli: Cli) -> None:
    ok(cli("cluster", "register", "c1"))
    before = ok(cli("cluster", "gitops", "c1")).stdout
    assert "not_configured" in before
    assert "moorage cluster connect c1 --url URL" in before
    assert as_json(cli("cluster", "gitops", "c1", "-o", "json"))["sync_status"] == "not_configured"

    res = ok(cli("cluster", "connect", "c1", "--url", URL, "--poll-interval", "60"))
    secret = shown_webhook_secret(res)
    assert len(secret) >= 32
    assert f"Webhook URL (a push webhook of the repository): {SERVER}/api/v1/webhooks/github" in res.stdout
    for text in ("connected cluster c1", "syncing", ROOT, "60 s", "moorage cluster gitops c1"):
        assert text in res.stdout

    status = ok(cli("cluster", "gitops", "c1"))
    for text in ("syncing", URL, "main", ROOT, "webhooks/github", "https://github.com/acme/platform"):
        assert text in status.stdout
    data = as_json(cli("cluster", "gitops", "c1", "-o", "json"))
    assert data["sync_status"] == "syncing"
    assert data["git_repo"]["branch"] == "main"
    for shown in (status.output, json.dumps(data)):
        assert secret not in shown
        assert "webhook_secret" not in shown

    # connecting again to the same source keeps the secret and does not show it
    same = ok(cli("cluster", "connect", "c1", "--url", URL))
    assert secret not in same.stdout
    assert "shown only now" not in same.stdout
    assert "Webhook secret: unchanged" in same.stdout

    rotated = ok(cli("cluster", "rotate-webhook-secret", "c1"))
    assert shown_webhook_secret(rotated) != secret
    assert "no longer works" in rotated.stdout

    ok(cli("cluster", "register", "c2"))
    shared = ok(
        cli(
            "cluster",
            "connect",
            "c2",
            "--url",
            URL,
            "--path",
            "clusters/c1/import-cluster.yaml",
            "--webhook-secret-env",
            "HOOK",
            env={"HOOK": "shared-hook-secret-0123"},
        )
    )
    assert "shared-hook-secret-0123" not in shared.output
    assert "the one from $HOOK" in shared.stdout
    unset = failed(
        cli("cluster", "connect", "c2", "--url", URL, "--webhook-secret-env", "MOORAGE_TEST_UNSET"), 2
    )
    assert "MOORAGE_TEST_UNSET is not set" in unset.stderr

    disconnected = ok(cli("cluster", "disconnect", "c1"))
    assert "history" in disconnected.stdout
    assert "not_configured" in ok(cli("cluster", "gitops", "c1")).stdout
    assert "not connected" in failed(cli("cluster", "disconnect", "c1")).stderr


def test_connect_to_another_branch_needs_allow_repoint(cli: Cli, factory: SessionFactory) -> None:
    connect(cli)
    update_repo(
        factory,
        "c1",
        last_commit_sha=SHA,
        observed_source={"url": URL, "branch": "main", "path": ROOT},
        sync_status="synced",
    )
    res = failed(cli("cluster", "connect", "c1", "--url", URL, "--branch", "release"))
    assert "repoints cluster 'c1' (branch 'main' → 'release')" in res.stderr
    assert "--allow-repoint" in res.stderr
    assert as_json(cli("cluster", "gitops", "c1", "-o", "json"))["git_repo"]["branch"] == "main"

    bad_url = failed(cli("cluster", "connect", "c1", "--url", "https://user:pw@github.com/acme/platform.git"))
    assert "password or token" in bad_url.stderr
    assert "pw@" not in bad_url.output
    assert failed(cli("cluster", "connect", "c1", "--url", URL, "--provider", "gitlab"), 2).exit_code == 2
    assert "nope" in failed(cli("cluster", "connect", "nope", "--url", URL)).stderr


def test_gitops_status_prints_errors_compiler_style(cli: Cli, factory: SessionFactory, clock: Clock) -> None:
    connect(cli)
    items: list[dict[str, Any]] = [
        {
            "file": "addons/webapp.yaml",
            "line": 3,
            "column": 5,
            "path": "spec.chart_versoin",
            "message": "unknown",
        },
        {"file": None, "line": None, "message": "no stacks", "hint": "add one"},
    ]
    update_repo(
        factory,
        "c1",
        sync_status="error",
        sync_phase="validating",
        sync_progress_message="the definition has 2 errors; nothing was applied",
        error=store.validation_error(items, [{"file": "a.yaml", "line": 1, "column": 1, "message": "old"}]),
        retry_count=2,
        next_retry_at=clock.now + timedelta(seconds=40),
        last_commit_sha=SHA,
        last_synced_at=clock.now,
        last_synced_from="webhook",
    )
    out = ok(cli("cluster", "gitops", "c1")).stdout
    assert "addons/webapp.yaml:3:5: error: unknown [spec.chart_versoin]" in out
    assert f"{ROOT}: error: no stacks (add one)" in out
    assert "a.yaml:1:1: warning: old" in out
    assert "error: the definition has 2 errors; nothing was applied" in out
    assert f"https://github.com/acme/platform/commit/{SHA}" in out
    for text in (
        "validating",
        SHA[:12],
        "2026-05-20 12:00:00 from webhook",
        "next retry at 2026-05-20 12:00:40",
    ):
        assert text in out

    update_repo(factory, "c1", error=store.general_error("git fetch failed: authentication refused"))
    general = ok(cli("cluster", "gitops", "c1")).stdout
    assert "error: git fetch failed: authentication refused" in general
    assert "error: unknown" not in general


# --------------------------------------------------------------------------- sync and history


def test_sync_now_errors_and_request(cli: Cli, factory: SessionFactory) -> None:
    ok(cli("cluster", "register", "c1"))
    res = failed(cli("cluster", "sync", "c1"))
    assert "not connected to a Git repository" in res.stderr
    assert "moorage cluster connect" in res.stderr
    assert "nope" in failed(cli("cluster", "sync", "nope")).stderr
    bad = failed(cli("cluster", "sync", "c1", "--revision", "nothex"))
    assert "give a commit SHA" in bad.stderr
    assert failed(cli("cluster", "sync", "c1", "--wait", "601"), 2).exit_code == 2

    ok(cli("cluster", "connect", "c1", "--url", URL))
    requested = ok(cli("cluster", "sync", "c1", "--revision", "ABCDEF1"))
    assert "requested a sync of cluster c1 at abcdef1" in requested.stdout
    assert "moorage cluster history c1" in requested.stdout
    data = as_json(cli("cluster", "sync", "c1", "-o", "json"))
    assert data["revision"] is None
    assert data["sync"] is None
    with transaction(factory) as session:
        repo = session.query(GitRepository).one()
        assert (repo.requested_source, repo.requested_by) == ("manual", "bootstrap")


def test_sync_wait_shows_the_finished_sync(cli: Cli, factory: SessionFactory, clock: Clock) -> None:
    connect(cli)
    add_sync(
        factory,
        clock,
        source="manual",
        triggered_by="bootstrap",
        message="applied 2 added, 1 changed",
        changes={"added": ["addon/webapp", "stack/base"], "changed": ["addon/db"], "removed": []},
    )
    res = ok(cli("cluster", "sync", "c1", "--wait", "5"))
    for text in ("Success", SHA[:12], "1.5 s", "2 added, 1 changed", "addon/webapp, stack/base", "manual"):
        assert text in res.stdout

    clock.advance(60)
    items = [{"file": "addons/webapp.yaml", "line": 7, "column": 3, "message": "bad chart"}]
    add_sync(factory, clock, status="failed", error=store.validation_error(items), message="2 errors")
    res = failed(cli("cluster", "sync", "c1", "--wait", "5"))
    assert "Failed" in res.stdout
    assert "addons/webapp.yaml:7:3: error: bad chart" in res.stdout
    assert "nothing was applied" in res.stdout
    as_data = json.loads(failed(cli("cluster", "sync", "c1", "--wait", "5", "-o", "json")).stdout)
    assert as_data["sync"]["status"] == "failed"

    clock.advance(60)
    timed_out = failed(cli("cluster", "sync", "c1", "--wait", "0.3"))
    assert "did not finish within 0.3 s" in timed_out.stderr


def test_history_table_paging_sorting_and_json(cli: Cli, factory: SessionFactory, clock: Clock) -> None:
    ok(cli("cluster", "register", "c1"))
    assert "no syncs yet for cluster c1" in ok(cli("cluster", "history", "c1")).stdout
    ok(cli("cluster", "connect", "c1", "--url", URL))
    sources = ["poll", "webhook", "manual"]
    for i in range(12):
        clock.advance(60)
        status = "failed" if i % 4 == 1 else "success"
        add_sync(
            factory,
            clock,
            status=status,
            source=sources[i % 3],
            triggered_by=f"user{i}",
            commit_sha=f"{i:02d}" + SHA[2:],
            retry_count=i % 3,
            message=f"applied change {i}",
            error=store.general_error(f"fetch {i} refused") if status == "failed" else None,
        )
    clock.advance(60)
    add_sync(factory, clock, status="running", source="webhook", message="fetching", commit_sha=None)

    first = ok(cli("cluster", "history", "c1")).stdout
    assert "page 1 of 2 (13 syncs)" in first
    for header in ("Status", "Source", "Commit", "Started", "Duration", "Triggered by", "Retries", "Message"):
        assert header in first
    assert "Running" in first
    assert "Success" in first
    assert "fetch 9 refused" in first  # a failed row shows its error
    assert "fetch 1 refused" not in first  # on page 2
    assert ("11" + SHA[2:])[:12] in first
    assert "11" + SHA[2:] not in first  # short SHAs only

    second = ok(cli("cluster", "history", "c1", "--page", "2")).stdout
    assert "page 2 of 2 (13 syncs)" in second
    assert "fetch 1 refused" in second
    assert "Failed" in second

    sort_args = ("--sort", "source", "--order", "asc", "--page-size", "20")
    by_source = as_json(cli("cluster", "history", "c1", *sort_args, "-o", "json"))
    got = [s["source"] for s in by_source["result"]]
    assert got == sorted(got)
    assert by_source["pagination"] == {"page": 1, "page_size": 20, "total_pages": 1, "total_count": 13}
    commit_urls = [s["commit_url"] for s in by_source["result"] if s["commit_sha"]]
    assert f"https://github.com/acme/platform/commit/00{SHA[2:]}" in commit_urls

    table = ok(cli("cluster", "history", "c1", *sort_args)).stdout
    rows = [[cell.strip() for cell in line.split("│")] for line in table.splitlines() if "│" in line]
    assert [row[2] for row in rows] == got

    by_retries = as_json(cli("cluster", "history", "c1", "--sort", "retry_count", "-o", "json"))
    assert [s["retry_count"] for s in by_retries["result"]][:4] == [2, 2, 2, 2]
    assert failed(cli("cluster", "history", "c1", "--sort", "bogus"), 2).exit_code == 2
    assert failed(cli("cluster", "history", "c1", "--page-size", "101"), 2).exit_code == 2


def test_gitops_commands_are_registered() -> None:
    names = [g.name for g in main_app.registered_groups]
    assert "credentials" in names
    assert len(names) == len(set(names))
    from moorage.cli.remote_commands import cluster_app

    commands = [c.name for c in cluster_app.registered_commands]
    assert {
        "connect",
        "disconnect",
        "gitops",
        "sync",
        "history",
        "rotate-webhook-secret",
        "edit-mode",
    } <= set(commands)
    assert len(commands) == len(set(commands))


def test_the_edit_mode_is_chosen_at_connect_or_later_and_shown(cli: Cli, factory: SessionFactory) -> None:
    shown = connect(cli)
    assert "pushed to the branch" in shown.stdout
    assert as_json(cli("cluster", "gitops", "c1", "-o", "json"))["git_repo"]["edit_mode"] == "push"
    changed = ok(cli("cluster", "edit-mode", "c1", "pull_request"))
    assert "now go to a new branch each, with a pull request into main" in changed.stdout
    status = ok(cli("cluster", "gitops", "c1"))
    assert "a new branch and a pull request per save" in status.stdout
    again = ok(cli("cluster", "connect", "c1", "--url", URL))  # left out: unchanged
    assert "a new branch and a pull request per save" in again.stdout
    ok(cli("cluster", "connect", "c1", "--url", URL, "--edit-mode", "push"))
    with transaction(factory) as session:
        repo = store.get_repository(session, service.get_cluster(session, "c1"))
        assert repo is not None
        assert repo.edit_mode == "push"
    failed(cli("cluster", "edit-mode", "c1", "merge"), code=2)
    ok(cli("cluster", "register", "c2"))
    refused = failed(cli("cluster", "edit-mode", "c2", "push"))
    assert "not connected to a Git repository" in refused.output


# --------------------------------------------------------------------------- defaults from the definition

DECLARED = """\
apiVersion: v1
kind: ImportCluster
metadata: {name: c1}
spec:
  git_repository:
    provider: github
    credential_name: git
    repository: acme/platform
    branch: release
  stacks: []
"""


def test_connect_from_a_definition_uses_its_git_repository(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "clusters" / "c1").mkdir(parents=True)
    (checkout / "clusters" / "c1" / "import-cluster.yaml").write_text(DECLARED)
    ok(cli("cluster", "register", "c1"))
    ok(cli("credentials", "create", "git", "--host", "github.com", stdin=TOKEN_SECRET + "\n"))
    res = ok(cli("cluster", "connect", "c1", "--from", str(checkout / "clusters" / "c1"), "-o", "json"))
    repo = as_json(res)["git_repo"]
    assert repo["url"] == "https://github.com/acme/platform.git"
    assert repo["branch"] == "release"
    assert repo["path"] == "clusters/c1/import-cluster.yaml"
    assert repo["credential_name"] == "git"
    # an option given explicitly wins over the definition's
    other = ok(
        cli(
            "cluster",
            "connect",
            "c1",
            "--from",
            str(checkout / "clusters" / "c1"),
            "--branch",
            "release",
            "--path",
            "clusters/c1/import-cluster.yaml",
            "--url",
            "https://github.com/acme/platform.git",
            "--poll-interval",
            "60",
            "-o",
            "json",
        )
    )
    assert as_json(other)["git_repo"]["poll_interval_seconds"] == 60
    # inside the checkout, without --url, its definition is offered as well
    monkeypatch.chdir(checkout / "clusters" / "c1")
    here = ok(cli("cluster", "connect", "c1", "-o", "json"))
    assert as_json(here)["git_repo"]["url"] == "https://github.com/acme/platform.git"


def test_connect_without_url_or_definition_is_a_usage_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok(cli("cluster", "register", "c1"))
    assert "give --url" in failed(cli("cluster", "connect", "c1"), 2).stderr
    plain = tmp_path / "import-cluster.yaml"
    plain.write_text(
        DECLARED.replace("  git_repository:", "  unused:").split("  unused:")[0] + "  stacks: []\n"
    )
    assert (
        "no valid spec.git_repository"
        in failed(cli("cluster", "connect", "c1", "--from", str(plain)), 2).stderr
    )
