"""GitOps commands against `moorage server`: `moorage credentials …` (Git credentials, stored encrypted
on the server) and `moorage cluster connect|disconnect|gitops|sync|history|rotate-webhook-secret`.
Tables by default; `-o json|yaml` prints the API's JSON as it came.

A secret (a token, an SSH private key, a webhook secret) is never a plain argument, which would land
in the shell's history: it comes from a file, an environment variable or stdin."""

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from moorage.cli.client import DEFAULT_TIMEOUT_SECONDS, ApiError, Remote, api_path, handled
from moorage.cli.output import (
    STATE_STYLE,
    Output,
    OutputOpt,
    dump,
    err,
    esc,
    format_issue,
    out,
    styled,
    when,
)
from moorage.cli.remote_commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    MAX_FILE_BYTES,
    MAX_WAIT_SECONDS,
    ServerOpt,
    TokenOpt,
    cluster_app,
)

# connecting with --allow-repoint asks the agent whether the cluster holds PVCs (up to 30 s)
REPOINT_CHECK_SECONDS = 30.0
SHORT_SHA = 12
MESSAGE_CHARS = 80
NOT_CONFIGURED = "not_configured"
SYNC_STATUS_STYLE = {"synced": "green", "syncing": "cyan", "error": "red", NOT_CONFIGURED: "dim"}
VALIDATION_ERRORS = "multiple_validation_errors"

ClusterArg = Annotated[str, typer.Argument(help="The cluster's name.")]


def _usage(message: str) -> NoReturn:
    err.print(f"error: {message}", style="red", markup=False)
    raise typer.Exit(EXIT_USAGE)


# --------------------------------------------------------------------------- secrets


def _read_secret_file(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            _usage(f"{path} is larger than 1 MiB; it cannot be a token or a private key")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _usage(f"{path} is not UTF-8 text")
    except OSError as e:
        _usage(f"cannot read the secret from {path}: {e.strerror or e}")


def _read_secret_stdin(prompt: str) -> str:
    if sys.stdin.isatty():
        # typed at a terminal: hidden, one line (pipe a private key in, or use --secret-file)
        text: str = typer.prompt(prompt, hide_input=True, err=True)
        return text
    return sys.stdin.read()


def _read_secret(file: Path | None, env: str | None, *, what: str) -> str:
    """The secret, from --secret-file, --secret-env or stdin (exactly one of them)."""
    if file is not None and env is not None:
        _usage("give --secret-file or --secret-env, not both")
    if file is not None:
        secret = _read_secret_file(file)
    elif env is not None:
        value = os.environ.get(env)
        if value is None:
            _usage(f"the environment variable {env} is not set")
        secret = value
    else:
        secret = _read_secret_stdin(what)
    if not secret.strip():
        _usage(f"the {what} is empty; pass it on stdin, with --secret-file or with --secret-env")
    return secret


SecretFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--secret-file",
        help="Read the secret (a token, or an SSH private key) from this file.",
        show_default=False,
        dir_okay=False,
    ),
]
SecretEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--secret-env",
        metavar="VAR",
        help="Read the secret from this environment variable. Without either option: from stdin.",
        show_default=False,
    ),
]
UsernameOpt = Annotated[
    str | None,
    typer.Option(
        "--username", help="The HTTP user sent with a token (e.g. x-token-auth).", show_default=False
    ),
]


# --------------------------------------------------------------------------- credentials

credentials_app = typer.Typer(
    name="credentials",
    help="Credentials of a Moorage server (Git tokens and SSH keys, Helm and OCI registry logins): "
    "stored encrypted, referenced by name, each sent only to the hosts it is bound to.",
    no_args_is_help=True,
)


class CredentialKind(StrEnum):
    token = "token"  # noqa: S105 (a credential kind)
    ssh_key = "ssh-key"
    helm = "helm"
    oci = "oci"


HostOpt = Annotated[
    list[str],
    typer.Option(
        "--host",
        help="A host (github.com, registry:5000) or URL prefix (https://charts.example.com/team, "
        "oci://ghcr.io/acme) the credential may be sent to; repeat for more. Nowhere else.",
        show_default=False,
    ),
]


@credentials_app.command("create")
def credentials_create(
    name: Annotated[str, typer.Argument(help="A name for the credential (unique on the server).")],
    host: HostOpt,
    kind: Annotated[
        CredentialKind,
        typer.Option(
            "--kind", help="Git: token (HTTPS) or ssh-key; registries: helm (HTTP repository), oci."
        ),
    ] = CredentialKind.token,
    username: UsernameOpt = None,
    secret_file: SecretFileOpt = None,
    secret_env: SecretEnvOpt = None,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="PEM CA bundle of the registry (helm, oci).", dir_okay=False),
    ] = None,
    cert_file: Annotated[
        Path | None, typer.Option("--cert-file", help="PEM client certificate (helm, oci).", dir_okay=False)
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="PEM key of the client certificate.", dir_okay=False)
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Store a credential (Git: token or ssh-key; chart registries: helm or oci), bound to the hosts
    given with --host; the secret goes in once and is never shown again."""
    remote = Remote.from_options(server, token)
    # sent as read: the server strips a token's surrounding whitespace and keeps a key byte for byte
    secret = _read_secret(secret_file, secret_env, what="secret")
    body: dict[str, Any] = {"name": name, "kind": kind.name, "secret": secret, "hosts": host}
    if username is not None:
        body["username"] = username
    for field, path in (("ca_bundle", ca_file), ("client_cert", cert_file), ("client_key", key_file)):
        if path is not None:
            body[field] = _read_secret_file(path)
    with handled(remote):
        _, data = remote.call("POST", "/credentials", body=body)
    if output is not Output.table:
        dump(data, output)
        return
    out.print(
        f"created credential [bold]{esc(data['name'])}[/] ({esc(data['kind'])}) for "
        f"{esc(', '.join(data.get('hosts') or []))}"
    )
    if data["kind"] in ("helm", "oci"):
        hint = f"name it in spec.helm_registries[].credential_name: {esc(data['name'])}"
    else:
        hint = f"use it with `moorage cluster connect CLUSTER --url URL --credential {esc(data['name'])}`"
    out.print(hint, style="dim")


@credentials_app.command("allow-host")
def credentials_allow_host(
    name: Annotated[str, typer.Argument(help="The credential's name.")],
    hosts: Annotated[list[str], typer.Argument(help="Hosts or URL prefixes to send it to as well.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Bind a credential to more hosts (admin): the server will send it there too."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("POST", api_path("credentials", name) + "/hosts", body={"hosts": hosts})
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"credential [bold]{esc(data['name'])}[/] is bound to {esc(', '.join(data['hosts']))}")


@credentials_app.command("list")
def credentials_list(
    server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """Every credential with the number of clusters using it (never the secret)."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get("/credentials")
    if output is not Output.table:
        dump(data, output)
        return
    if not data:
        out.print("no credentials yet; add one with `moorage credentials create NAME`")
        return
    table = Table("name", "kind", "username", "hosts", "used by", "created", "updated", "id")
    for c in data:
        used = int(c.get("used_by") or 0)
        table.add_row(
            esc(c["name"]),
            esc(c.get("kind")),
            esc(c.get("username") or "-"),
            esc(", ".join(c.get("hosts") or []) or "-"),
            f"{used} cluster{'s' if used != 1 else ''}",
            when(c.get("created_at")),
            when(c.get("updated_at")),
            esc(c.get("id")),
        )
    out.print(table)


@credentials_app.command("rotate")
def credentials_rotate(
    name: Annotated[str, typer.Argument(help="The credential's name.")],
    username: UsernameOpt = None,
    secret_file: SecretFileOpt = None,
    secret_env: SecretEnvOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Replace a credential's secret in place; clusters using it pick it up at their next sync."""
    remote = Remote.from_options(server, token)
    secret = _read_secret(secret_file, secret_env, what="secret")
    body: dict[str, Any] = {}
    if username is not None:
        body["username"] = username
    with handled(remote):
        _, data = remote.call("PUT", api_path("credentials", name), body={"secret": secret, **body})
    if output is not Output.table:
        dump(data, output)
        return
    out.print(
        f"rotated credential [bold]{esc(data['name'])}[/]; the previous secret is gone. Clusters in "
        "retry because of it try again now."
    )


@credentials_app.command("delete")
def credentials_delete(
    name: Annotated[str, typer.Argument(help="The credential's name.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Delete a credential no cluster uses."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        try:
            _, data = remote.call("DELETE", api_path("credentials", name))
        except ApiError as e:
            if e.status_code == 409:
                err.print(
                    f"error: {e.detail}; connect those clusters with another --credential, or "
                    "disconnect them, first",
                    style="red",
                    markup=False,
                )
                raise typer.Exit(EXIT_FAILED) from None
            raise
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"deleted credential {esc(data['name'])}")


# --------------------------------------------------------------------------- cluster: connection


class Provider(StrEnum):
    github = "github"
    bitbucket_cloud = "bitbucket_cloud"
    bitbucket_data_center = "bitbucket_data_center"


class EditMode(StrEnum):
    """Where the Stack Builder's saves go (`moorage stacks …`, the UI's Save)."""

    push = "push"
    pull_request = "pull_request"


EDIT_MODE_HELP = (
    "Where Stack Builder saves go: push (commit to the tracked branch) or pull_request (a new branch per "
    "save with a pull request opened through the provider's API; nothing syncs until it is merged)."
)


def _sync_status(status: Any) -> str:
    return styled(status, SYNC_STATUS_STYLE)


def _run_status(status: Any) -> str:
    """A history row's status as a label: Success, Failed, Running."""
    text = "" if status is None else str(status)
    style = STATE_STYLE.get(text)
    label = esc(text.capitalize())
    return f"[{style}]{label}[/]" if style else label


def _short(sha: Any) -> str:
    return esc(str(sha)[:SHORT_SHA]) if sha else "-"


def _error_lines(error: dict[str, Any], root: str) -> list[str]:
    """A sync error as text: validation items compiler-style, then the error's message."""
    lines: list[str] = []
    if error.get("error_type") == VALIDATION_ERRORS:
        for severity, key in (("error", "errors"), ("warning", "warnings")):
            for item in error.get(key) or []:
                if isinstance(item, dict):
                    lines.append(format_issue({"severity": severity, **item}, root))
    lines.append(f"error: {error.get('message') or 'the sync failed'}")
    return lines


def _print_error(error: Any, root: str) -> None:
    if isinstance(error, dict) and error:
        for line in _error_lines(error, root):
            out.print(line, style="red" if line.startswith("error: ") else None, markup=False)


def _show_status(data: dict[str, Any]) -> None:
    name = str(data.get("cluster_name"))
    repo = data.get("git_repo")
    if data.get("sync_status") == NOT_CONFIGURED or not isinstance(repo, dict):
        out.print(
            f"cluster {esc(name)} is {_sync_status(NOT_CONFIGURED)}: not connected to a Git repository; "
            f"connect it with `moorage cluster connect {esc(name)} --url URL`"
        )
        return
    table = Table("field", "value", show_header=False)
    table.add_row("cluster", esc(name))
    table.add_row("status", _sync_status(data.get("sync_status")))
    table.add_row("phase", esc(data.get("sync_phase") or "-"))
    if data.get("sync_progress_message"):
        table.add_row("progress", esc(data["sync_progress_message"]))
    table.add_row("repository", esc(repo.get("url")) + (f" ({esc(repo['provider'])})"))
    if repo.get("web_url"):
        table.add_row("web", esc(repo["web_url"]))
    table.add_row("branch", esc(repo.get("branch")))
    table.add_row("path", esc(repo.get("path")))
    table.add_row("credential", esc(repo.get("credential_name") or "-"))
    mode = repo.get("edit_mode") or "push"
    table.add_row(
        "stack edits",
        "a new branch and a pull request per save" if mode == "pull_request" else "pushed to the branch",
    )
    table.add_row("poll interval", f"{esc(repo.get('poll_interval_seconds'))} s")
    table.add_row("webhook URL", esc(repo.get("webhook_url")))
    commit = _short(data.get("last_commit_sha"))
    if data.get("last_commit_timestamp"):
        commit += f" (committed {when(data['last_commit_timestamp'])})"
    table.add_row("last commit", commit)
    if data.get("last_commit_url"):
        table.add_row("commit URL", esc(data["last_commit_url"]))
    synced = when(data.get("last_synced_at"))
    if data.get("last_synced_from"):
        synced += f" from {esc(data['last_synced_from'])}"
    table.add_row("last synced", synced)
    if data.get("pending_commit_sha"):
        table.add_row("pending commit", _short(data["pending_commit_sha"]))
    retries = esc(data.get("retry_count") or 0)
    if data.get("next_retry_at"):
        retries += f", next retry at {when(data['next_retry_at'])}"
    table.add_row("retries", retries)
    if data.get("source_mismatch"):
        table.add_row(
            "source",
            "[yellow]changed since the last successful sync: the next sync prunes what the new source "
            "does not define[/]",
        )
    if data.get("applied_with_failed_members"):
        table.add_row("members", "[yellow]the last applied sync had failed add-ons[/]")
    out.print(table)
    _print_error(data.get("error"), str(repo.get("path") or ""))


def _print_webhook(data: dict[str, Any], secret_env: str | None) -> None:
    repo = data.get("git_repo")
    if isinstance(repo, dict) and repo.get("webhook_url"):
        out.print(f"Webhook URL (a push webhook of the repository): {esc(repo['webhook_url'])}")
    secret = data.get("webhook_secret")
    if secret:
        out.print(
            f"Webhook secret of cluster {esc(data.get('cluster_name'))} (shown only now; it cannot be "
            "read again):",
            style="bold",
        )
        out.print(secret, markup=False, soft_wrap=True)
    elif secret_env:
        out.print(f"Webhook secret: the one from ${esc(secret_env)}")
    else:
        out.print("Webhook secret: unchanged (`moorage cluster rotate-webhook-secret` issues a new one)")


@cluster_app.command("connect")
def cluster_connect(
    name: ClusterArg,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The repository's clone URL (https or ssh); with --from, the definition's by default.",
            show_default=False,
        ),
    ] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", help="The branch to follow (default: main).", show_default=False)
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            help="The ImportCluster file in the repository (default: clusters/NAME/import-cluster.yaml).",
            show_default=False,
        ),
    ] = None,
    provider: Annotated[
        Provider | None,
        typer.Option("--provider", help="Where the repository lives (default: github).", show_default=False),
    ] = None,
    from_definition: Annotated[
        Path | None,
        typer.Option(
            "--from",
            metavar="PATH",
            help="A local checkout's ImportCluster file (or its folder; without --url, the current "
            "folder when it holds one): its spec.git_repository gives the defaults of --url, --branch, "
            "--provider, --credential and the Bitbucket options, and its place in the checkout the "
            "default of --path.",
            show_default=False,
        ),
    ] = None,
    credential: Annotated[
        str | None,
        typer.Option(
            "--credential", help="A credential's name (`moorage credentials create`).", show_default=False
        ),
    ] = None,
    poll_interval: Annotated[
        int | None,
        typer.Option(
            "--poll-interval",
            min=5,
            max=86_400,
            metavar="SECONDS",
            help="How often to look for new commits (default: the server's).",
            show_default=False,
        ),
    ] = None,
    repository: Annotated[
        str | None, typer.Option("--repository", help="github: owner/name.", show_default=False)
    ] = None,
    workspace: Annotated[
        str | None, typer.Option("--workspace", help="bitbucket_cloud: the workspace.", show_default=False)
    ] = None,
    repo_slug: Annotated[
        str | None, typer.Option("--repo-slug", help="bitbucket: the repository slug.", show_default=False)
    ] = None,
    project_key: Annotated[
        str | None,
        typer.Option("--project-key", help="bitbucket_data_center: the project key.", show_default=False),
    ] = None,
    instance_url: Annotated[
        str | None,
        typer.Option("--instance-url", help="bitbucket_data_center: the server's URL.", show_default=False),
    ] = None,
    webhook_secret_env: Annotated[
        str | None,
        typer.Option(
            "--webhook-secret-env",
            metavar="VAR",
            help="Use the webhook secret in this environment variable (default: a new one, shown once).",
            show_default=False,
        ),
    ] = None,
    edit_mode: Annotated[
        EditMode | None,
        typer.Option("--edit-mode", help=EDIT_MODE_HELP + " Default: unchanged (push).", show_default=False),
    ] = None,
    allow_repoint: Annotated[
        bool,
        typer.Option(
            "--allow-repoint", help="Allow another URL, branch or path: what the new one lacks is pruned."
        ),
    ] = False,
    allow_repoint_destroying_data: Annotated[
        bool,
        typer.Option(
            "--allow-repoint-destroying-data",
            help="Repoint even when the cluster holds PersistentVolumeClaims.",
        ),
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Connect a cluster to its Git repository (or repoint it) and request a first sync."""
    remote = Remote.from_options(server, token)
    if from_definition is None and url is None and _holds_definition(Path.cwd()):
        from_definition = Path.cwd()  # run inside a checkout: its definition offers the defaults
    declared = _declared_source(from_definition) if from_definition is not None else {}
    url = url or declared.get("url")
    if url is None:
        _usage("give --url, or --from PATH of a definition with spec.git_repository")
    branch = branch or declared.get("branch") or "main"
    provider = provider or Provider(declared.get("provider") or Provider.github.value)
    path = path or declared.get("path")
    credential = credential or declared.get("credential_name")
    repository = repository or declared.get("repository")
    workspace = workspace or declared.get("workspace")
    repo_slug = repo_slug or declared.get("repo_slug")
    project_key = project_key or declared.get("project_key")
    instance_url = instance_url or declared.get("instance_url")
    optional: dict[str, Any] = {
        "path": path,
        "credential_name": credential,
        "poll_interval_seconds": poll_interval,
        "repository": repository,
        "workspace": workspace,
        "repo_slug": repo_slug,
        "project_key": project_key,
        "instance_url": instance_url,
        "edit_mode": edit_mode.value if edit_mode is not None else None,
    }
    if webhook_secret_env is not None:
        secret = os.environ.get(webhook_secret_env)
        if secret is None:
            _usage(f"the environment variable {webhook_secret_env} is not set")
        if not secret.strip():
            _usage(f"the environment variable {webhook_secret_env} is empty")
        optional["webhook_secret"] = secret
    body = {
        "provider": provider.value,
        "url": url,
        "branch": branch,
        **{k: v for k, v in optional.items() if v is not None},
        "allow_repoint": allow_repoint,
        "allow_repoint_destroying_data": allow_repoint_destroying_data,
    }
    with handled(remote):
        _, data = remote.call(
            "PUT",
            api_path("clusters", name, "gitops"),
            body=body,
            timeout=DEFAULT_TIMEOUT_SECONDS + REPOINT_CHECK_SECONDS,
        )
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"connected cluster [bold]{esc(data['cluster_name'])}[/] to {esc(url)}; a sync is requested")
    _show_status(data)
    _print_webhook(data, webhook_secret_env)
    out.print(f"follow the sync with `moorage cluster gitops {esc(data['cluster_name'])}`", style="dim")


def _holds_definition(folder: Path) -> bool:
    from moorage.spec.loader import UsageError, find_root_file

    try:
        find_root_file(folder)
    except (UsageError, OSError):
        return False
    return True


def _declared_source(definition: Path) -> dict[str, str]:
    """The connection a definition's spec.git_repository describes (and the root file's path)."""
    from moorage.spec.gitsource import clone_url
    from moorage.spec.loader import LoadOptions, UsageError, find_root_file, load

    try:
        root, root_file = find_root_file(definition)
        result = load(root_file, LoadOptions(decrypt=False), repo_root=root)
    except UsageError as e:
        _usage(str(e))
    repo = result.cluster.spec.git_repository if result.cluster is not None else None
    if repo is None:
        _usage(f"{definition} has no valid spec.git_repository; give --url (and --branch, --path)")
    fields = {k: v for k, v in repo.model_dump().items() if isinstance(v, str) and v}
    fields["url"] = clone_url(repo)
    # --path is relative to the repository: the checkout's top (where .git is), else the folder given
    top = next((d for d in root_file.resolve().parents if (d / ".git").exists()), root.resolve())
    fields["path"] = root_file.resolve().relative_to(top).as_posix()
    err.print(
        f"from {definition}: {fields['url']} branch {repo.branch}, path {fields['path']}, "
        f"credential {repo.credential_name}",
        markup=False,
        highlight=False,
    )
    return fields


@cluster_app.command("edit-mode")
def cluster_edit_mode(
    name: ClusterArg,
    mode: Annotated[EditMode, typer.Argument(help=EDIT_MODE_HELP, show_default=False)],
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Choose where the cluster's Stack Builder saves go, without repointing or syncing anything."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("PATCH", api_path("clusters", name, "gitops"), body={"edit_mode": mode.value})
    if output is not Output.table:
        dump(data, output)
        return
    branch = esc((data.get("git_repo") or {}).get("branch"))
    if mode is EditMode.pull_request:
        out.print(
            f"Stack Builder saves of cluster {esc(name)} now go to a new branch each, with a pull request "
            f"into {branch} (opened through the provider's API when the connection's token credential is "
            f"bound to its host); nothing syncs until it is merged"
        )
    else:
        out.print(f"Stack Builder saves of cluster {esc(name)} are now committed and pushed to {branch}")


@cluster_app.command("disconnect")
def cluster_disconnect(
    name: ClusterArg, server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """Stop syncing the cluster from Git; what is deployed stays, and so does the sync history."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("DELETE", api_path("clusters", name, "gitops"))
    if output is not Output.table:
        dump(data, output)
        return
    out.print(
        f"disconnected cluster {esc(name)} from Git: nothing in the cluster changed and its sync history "
        "stays. Connecting it again issues a new webhook secret."
    )


@cluster_app.command("rotate-webhook-secret")
def cluster_rotate_webhook_secret(
    name: ClusterArg, server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """Issue a new webhook secret (shown once); the previous one stops working."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("POST", api_path("clusters", name, "gitops", "webhook-secret", "rotate"))
    if output is not Output.table:
        dump(data, output)
        return
    out.print(
        f"the previous webhook secret of cluster {esc(name)} no longer works; "
        "give the new one to the repository's webhook"
    )
    _print_webhook(data, None)


@cluster_app.command("gitops")
def cluster_gitops(
    name: ClusterArg, server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """The cluster's GitOps status: sync status and phase, last commit, retries, the last error."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(api_path("clusters", name, "gitops", "status"))
    if output is not Output.table:
        dump(data, output)
        return
    _show_status(data)


# --------------------------------------------------------------------------- cluster: syncs


def _duration(ms: Any) -> str:
    if not isinstance(ms, int):
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


def _changes(changes: Any) -> str:
    if not isinstance(changes, dict):
        return "-"
    parts = [f"{len(v)} {k}" for k, v in changes.items() if isinstance(v, list) and v]
    return ", ".join(parts) if parts else "no changes"


def _show_sync(sync: dict[str, Any]) -> None:
    table = Table("field", "value", show_header=False)
    table.add_row("sync", esc(sync.get("id")))
    table.add_row("status", _run_status(sync.get("status")))
    table.add_row("source", f"{esc(sync.get('source'))} by {esc(sync.get('triggered_by') or '-')}")
    commit = _short(sync.get("commit_sha"))
    if sync.get("revision"):
        commit += f" (asked for {esc(sync['revision'])})"
    table.add_row("commit", commit)
    if sync.get("commit_url"):
        table.add_row("commit URL", esc(sync["commit_url"]))
    table.add_row("from", f"{esc(sync.get('url'))} {esc(sync.get('branch'))}:{esc(sync.get('path'))}")
    table.add_row("started", when(sync.get("started_at")))
    table.add_row("finished", when(sync.get("finished_at")))
    table.add_row("duration", _duration(sync.get("duration_ms")))
    table.add_row("retries", esc(sync.get("retry_count") or 0))
    changes = sync.get("changes")
    table.add_row("changes", _changes(changes))
    if isinstance(changes, dict):
        for kind, entries in changes.items():
            if isinstance(entries, list) and entries:
                table.add_row(f"  {esc(kind)}", esc(", ".join(str(e) for e in entries)))
    if sync.get("operation_id"):
        table.add_row("operation", esc(sync["operation_id"]))
    table.add_row("message", esc(sync.get("message")))
    out.print(table)
    _print_error(sync.get("error"), str(sync.get("path") or ""))


@cluster_app.command("sync")
def cluster_sync(
    name: ClusterArg,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", metavar="SHA", help="A commit of the branch (default: its tip).", show_default=False
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            max=MAX_WAIT_SECONDS,
            metavar="SECONDS",
            help="Seconds to wait for the sync to finish (0: return once it is requested).",
        ),
    ] = 0,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Sync Now: fetch the branch and sync its tip (or --revision); with --wait, exit 1 unless it succeeds."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call(
            "POST",
            api_path("clusters", name, "gitops", "sync"),
            params={"wait": wait} if wait else None,
            body={"revision": revision} if revision is not None else None,
            timeout=DEFAULT_TIMEOUT_SECONDS + wait,
        )
    sync = data.get("sync")
    if output is not Output.table:
        dump(data, output)
    elif not wait:
        at = f" at {esc(data['revision'])}" if data.get("revision") else ""
        out.print(
            f"requested a sync of cluster {esc(name)}{at}; follow it with "
            f"`moorage cluster gitops {esc(name)}` or `moorage cluster history {esc(name)}`"
        )
    elif isinstance(sync, dict):
        _show_sync(sync)
    if not wait:
        return
    if not isinstance(sync, dict):
        err.print(
            f"the sync did not finish within {wait:g} s; it goes on: follow it with "
            f"`moorage cluster gitops {name}`",
            markup=False,
        )
        raise typer.Exit(EXIT_FAILED)
    if sync.get("status") != "success":
        raise typer.Exit(EXIT_FAILED)


class SortColumn(StrEnum):
    started_at = "started_at"
    status = "status"
    source = "source"
    commit_sha = "commit_sha"
    duration_ms = "duration_ms"
    triggered_by = "triggered_by"
    retry_count = "retry_count"


class Order(StrEnum):
    desc = "desc"
    asc = "asc"


def _row_message(sync: dict[str, Any]) -> str:
    error = sync.get("error")
    text = str(error.get("message") or "") if isinstance(error, dict) else ""
    text = " ".join((text or str(sync.get("message") or "")).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


@cluster_app.command("history")
def cluster_history(
    name: ClusterArg,
    page: Annotated[int, typer.Option("--page", min=1, max=100_000)] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=100)] = 10,
    sort: Annotated[
        SortColumn, typer.Option("--sort", help="The column to sort by.")
    ] = SortColumn.started_at,
    order: Annotated[Order, typer.Option("--order")] = Order.desc,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The cluster's sync history, newest first, a page at a time."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(
            api_path("clusters", name, "gitops", "history"),
            page=page,
            page_size=page_size,
            sort=sort.value,
            order=order.value,
        )
    if output is not Output.table:
        dump(data, output)
        return
    pagination = data.get("pagination") or {}
    total = int(pagination.get("total_count") or 0)
    if not total:
        out.print(f"no syncs yet for cluster {esc(name)}")
        return
    table = Table("Status", "Source", "Commit", "Started", "Duration", "Triggered by", "Retries", "Message")
    for sync in data["result"]:
        table.add_row(
            _run_status(sync.get("status")),
            esc(sync.get("source")),
            _short(sync.get("commit_sha")),
            when(sync.get("started_at")),
            _duration(sync.get("duration_ms")),
            esc(sync.get("triggered_by") or "-"),
            esc(sync.get("retry_count") or 0),
            esc(_row_message(sync)),
        )
    out.print(table)
    out.print(
        f"page {pagination.get('page', page)} of {pagination.get('total_pages', '?')} "
        f"({total} sync{'s' if total != 1 else ''})",
        style="dim",
    )


def register(app: typer.Typer) -> None:
    """Add `credentials` to the main `moorage` app (the `cluster` commands of this module are on
    remote_commands' `cluster` group, which remote_commands.register adds)."""
    app.add_typer(credentials_app, name="credentials")
