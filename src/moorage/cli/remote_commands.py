"""Commands that talk to `moorage server` over HTTP: `moorage cluster …`, `moorage operations …`,
`moorage fleet status`,
(add-ons: cli/addon_commands.py). Tables by default; `-o json|yaml` prints the API's JSON as it came."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from moorage.cli.client import (
    DEFAULT_TIMEOUT_SECONDS,
    SERVER_ENV,
    TOKEN_ENV,
    ApiError,
    Remote,
    api_path,
    handled,
)
from moorage.cli.output import Output, OutputOpt, dump, err, esc, format_issue, out, styled, when

# Only light imports up here (typer, rich, the CLI's own client and output): `moorage --help` and every
# client command import this module. moorage.spec (pydantic) is imported where a bundle is built.

EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_FILE_BYTES = 1024 * 1024
MAX_WAIT_SECONDS = 600
SECRET_KEY_MARKERS = ("AGE-SECRET-KEY-", "-----BEGIN PGP PRIVATE KEY BLOCK-----")

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help=f"The control plane's URL (default: ${SERVER_ENV}, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help=f"An API token (default: ${TOKEN_ENV}).", show_default=False),
]
ClusterOpt = Annotated[str, typer.Option("--cluster", "-c", help="The cluster's name.")]
FAILED_OPERATION_STATES = frozenset({"failed", "critical", "cancelled"})


# --------------------------------------------------------------------------- cluster

cluster_app = typer.Typer(
    name="cluster",
    help="Clusters of a Moorage server: register, list, apply a definition.",
    no_args_is_help=True,
)


def _agent_instructions(remote: Remote, name: str, token: str) -> None:
    out.print(f"Agent token of cluster {esc(name)} (shown only now; it cannot be read again):", style="bold")
    out.print(token, markup=False, soft_wrap=True)
    out.print("Run the agent with access to the cluster:")
    ca = f" --ca {_shell(str(remote.ca))}" if remote.ca is not None else ""
    out.print(f"  moorage agent --server {remote.server} --token {token}{ca}", markup=False, soft_wrap=True)


AGENT_CHART_ENV = "MOORAGE_AGENT_CHART"
AGENT_RELEASE = "moorage-agent"
AGENT_NAMESPACE = "moorage"
AGENT_SECRET_NAME = "moorage-agent-token"  # noqa: S105 - the name of a Secret


def _shell(value: str) -> str:
    import shlex

    return shlex.quote(value)


def _helm_value(value: str) -> str:
    # helm --set splits on commas; the shell must see one word
    import shlex

    return shlex.quote(value.replace("\\", "\\\\").replace(",", "\\,"))


def _chart_args(chart: str) -> str:
    """The chart reference, with --plain-http for an OCI registry on loopback (a local registry)."""
    import ipaddress
    import shlex
    from urllib.parse import urlparse

    args = shlex.quote(chart)
    if chart.startswith("oci://"):
        host = urlparse(chart).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            args += " --plain-http"
    return args


def _install_commands(remote: Remote, token: str, chart: str) -> None:
    """The Helm install of the agent chart for this cluster, and the variant with an existing Secret."""
    head = f"helm upgrade --install {AGENT_RELEASE} {_chart_args(chart)}"
    head += f" --namespace {AGENT_NAMESPACE} --create-namespace"
    server_url = f"--set config.server_url={_helm_value(remote.server)}"
    if remote.ca is not None:  # the server's private CA, as this CLI trusts it (chart: MOORAGE_CA)
        server_url += f" --set-file config.ca={_helm_value(str(remote.ca.resolve()))}"
    out.print("Or install the agent in the cluster with Helm:")
    out.print(f"  {head} --set config.token={_helm_value(token)} {server_url}", markup=False, soft_wrap=True)
    out.print("With the token in a Secret of your own instead:")
    out.print(f"  kubectl create namespace {AGENT_NAMESPACE}", markup=False, soft_wrap=True)
    out.print(
        f"  kubectl create secret generic {AGENT_SECRET_NAME} --namespace {AGENT_NAMESPACE}"
        f" --from-literal=token={token}",
        markup=False,
        soft_wrap=True,
    )
    out.print(
        f"  {head} --set config.existing_secret_name={AGENT_SECRET_NAME} --set config.secret_key=token"
        f" {server_url}",
        markup=False,
        soft_wrap=True,
    )


@cluster_app.command("register")
def cluster_register(
    name: Annotated[str, typer.Argument(help="A name for the cluster (unique on the server).")],
    description: Annotated[str, typer.Option("--description", "-d", help="Free text.")] = "",
    chart: Annotated[
        str,
        typer.Option(
            "--chart",
            envvar=AGENT_CHART_ENV,
            help="The agent chart in the printed install command: a path or oci://REGISTRY/…/moorage-agent.",
        ),
    ] = "charts/moorage-agent",
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Register a cluster and print its agent token (shown once), the agent command to run and the
    Helm command that installs the agent in the cluster."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("POST", "/clusters", body={"name": name, "description": description})
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"registered cluster [bold]{esc(data['name'])}[/] (id {esc(data['id'])})")
    _agent_instructions(remote, data["name"], data["agent_token"])
    _install_commands(remote, data["agent_token"], chart)


@cluster_app.command("list")
def cluster_list(server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table) -> None:
    """Every cluster with its agent's state."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.pages("/clusters")
    if output is not Output.table:
        dump(data, output)
        return
    if not data["result"]:
        out.print("no clusters yet; add one with `moorage cluster register NAME`")
        return
    table = Table("name", "state", "last heartbeat", "agent", "public IP", "agent token", "description", "id")
    for c in data["result"]:
        table.add_row(
            esc(c["name"]),
            styled(c["state"]),
            when(c.get("last_heartbeat_at")),
            esc(c.get("agent_version") or "-"),
            esc(c.get("public_ip") or "-"),
            "[red]revoked[/]" if c.get("agent_token_revoked") else "active",
            esc(c.get("description")),
            esc(c["id"]),
        )
    out.print(table)


@cluster_app.command("get")
def cluster_get(
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """One cluster: state, agent, last heartbeat."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(api_path("clusters", name))
    if output is not Output.table:
        dump(data, output)
        return
    table = Table("field", "value", show_header=False)
    table.add_row("name", esc(data["name"]))
    table.add_row("id", esc(data["id"]))
    table.add_row("state", styled(data["state"]))
    table.add_row("description", esc(data.get("description")))
    table.add_row("created", when(data.get("created_at")))
    table.add_row("last heartbeat", when(data.get("last_heartbeat_at")))
    table.add_row("agent version", esc(data.get("agent_version") or "-"))
    table.add_row("agent chart", esc(data.get("chart_version") or "- (not reported)"))
    table.add_row("roll-forward", "opted out" if data.get("agent_roll_forward") is False else "takes part")
    table.add_row("public IP", esc(data.get("public_ip") or "- (not reported)"))
    table.add_row("agent token", "[red]revoked[/]" if data.get("agent_token_revoked") else "active")
    heartbeat = data.get("heartbeat")
    if isinstance(heartbeat, dict):
        for key, value in sorted(heartbeat.items()):
            if not isinstance(value, dict | list):
                table.add_row(f"heartbeat.{esc(key)}", esc(value))
    out.print(table)


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def delete_confirmed(remote: Remote, what: str, path: str, yes: bool) -> Any:
    """Ask (unless `yes`), then DELETE `path`; the server's answer. Refusing exits with EXIT_FAILED."""
    if not yes and not typer.confirm(f"Delete {what} from {remote.server}?", default=False):
        err.print("aborted; nothing was deleted")
        raise typer.Exit(EXIT_FAILED)
    with handled(remote):
        _, data = remote.call("DELETE", path)
    return data


@cluster_app.command("delete")
def cluster_delete(
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
    yes: YesOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Delete a cluster from the server (its agent is disconnected; nothing in the cluster is removed)."""
    remote = Remote.from_options(server, token)
    data = delete_confirmed(remote, f"cluster {name!r}", api_path("clusters", name), yes)
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"deleted cluster {esc(name)}")


@cluster_app.command("set")
def cluster_set(
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
    roll_forward: Annotated[
        bool | None,
        typer.Option(
            "--roll-forward/--no-roll-forward",
            help="Whether the fleet roll-forward upgrades this cluster's agent to a newly published chart.",
            show_default=False,
        ),
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change a cluster's settings (PATCH /clusters/NAME)."""
    if roll_forward is None:
        err.print("nothing to change: give --roll-forward or --no-roll-forward")
        raise typer.Exit(EXIT_USAGE)
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("PATCH", api_path("clusters", name), body={"agent_roll_forward": roll_forward})
    if output is not Output.table:
        dump(data, output)
        return
    part = "takes part in" if data["agent_roll_forward"] else "is opted out of"
    out.print(f"cluster {esc(name)} {part} the fleet roll-forward")


@cluster_app.command("revoke-agent-token")
def cluster_revoke_agent_token(
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Revoke the cluster's agent token: its agent is disconnected until it gets a new one."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("POST", api_path("clusters", name, "agent-token", "revoke"))
    if output is not Output.table:
        dump(data, output)
        return
    out.print(
        f"revoked the agent token of cluster {esc(name)}; its agent is disconnected. "
        f"Issue a new one with `moorage cluster rotate-agent-token {esc(name)}`."
    )


@cluster_app.command("rotate-agent-token")
def cluster_rotate_agent_token(
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Issue a new agent token (shown once); the previous one stops working."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("POST", api_path("clusters", name, "agent-token", "rotate"))
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"the previous agent token of cluster {esc(name)} no longer works")
    _agent_instructions(remote, data["cluster_name"], data["agent_token"])


@cluster_app.command("upgrade-agent")
def cluster_upgrade_agent(
    name: Annotated[str, typer.Argument(help="The cluster's name.")],
    version: Annotated[str, typer.Option("--version", help="The moorage-agent chart version, e.g. 0.2.0.")],
    chart: Annotated[
        str,
        typer.Option(
            "--chart",
            envvar="MOORAGE_AGENT_CHART",
            help="Where the chart is: oci://HOST/PATH/moorage-agent or a Helm repository URL.",
        ),
    ],
    wait: Annotated[float, typer.Option("--wait", min=0, max=600, help="Seconds to wait for the job.")] = 300,
    report_wait: Annotated[
        float,
        typer.Option(
            "--report-wait",
            min=0,
            max=3600,
            help="Then seconds to wait for the new agent to report VERSION (0: do not wait).",
        ),
    ] = 180,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Upgrade the cluster's agent: it runs `helm upgrade --reuse-values` of its own release to VERSION;
    the new agent then reports it (`moorage cluster get NAME`, "agent chart"), which this waits for. A
    failed upgrade leaves the old agent running and says why."""
    import time

    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call(
            "POST",
            api_path("clusters", name, "agent", "upgrade"),
            params={"wait": wait},
            body={"version": version, "chart": chart},
            timeout=wait + 30,
        )
    table = output is Output.table
    if table:
        out.print(f"operation {esc(data['operation_id'])}: {styled(data['operation_state'])}")
        for line in data["messages"][-20:]:
            out.print(f"  {esc(line)}")
    if data["operation_state"] in ("failed", "critical", "cancelled"):
        if not table:
            dump(data, output)
        raise typer.Exit(1)
    wanted, reported = version.removeprefix("v"), None
    if data["operation_state"] == "success" and report_wait > 0:
        deadline = time.monotonic() + report_wait
        with handled(remote):
            while (reported := remote.get(api_path("clusters", name)).get("chart_version")) != wanted:
                if time.monotonic() > deadline:
                    break
                time.sleep(2)
        data = {**data, "reported_chart_version": reported}
    if not table:
        dump(data, output)
    elif reported == wanted:
        out.print(f"the agent of {esc(name)} reports chart {esc(wanted)}")
    if report_wait > 0 and data["operation_state"] == "success" and reported != wanted:
        err.print(
            f"the upgrade was applied, but no agent of {name!r} reported chart {wanted} within "
            f"{report_wait:.0f} s (it reports {reported or 'none'}): check the agent's pods "
            "(`kubectl get pods -n <namespace> -l app.kubernetes.io/name=<release>`)",
            markup=False,
        )
        raise typer.Exit(1)


@dataclass
class Bundle:
    repo_root: Path
    root: str
    files: dict[str, str]
    skipped: list[str] = field(default_factory=list)


def _is_hidden_dir(name: str) -> bool:
    return name.startswith(".")


def bundle_repository(path: Path) -> Bundle:
    """The apply bundle of a repository folder or of a root definition file: every regular text
    file under the repository root (the folder; for a file, the nearest parent holding .git),
    except .git/ and other hidden folders, files over 1 MiB, binary files and private keys.
    A path that names no definition raises moorage.spec.loader.UsageError."""
    from moorage.spec.loader import UsageError, find_root_file

    repo_root, root_file = find_root_file(path)
    repo_root = repo_root.resolve()
    root_file = root_file.resolve()
    try:
        root = root_file.relative_to(repo_root).as_posix()
    except ValueError:
        raise UsageError(f"{root_file} is not inside the repository {repo_root}") from None
    files: dict[str, str] = {}
    skipped: list[str] = []
    for directory, dirs, names in os.walk(repo_root):
        dirs[:] = sorted(d for d in dirs if not _is_hidden_dir(d))
        for name in sorted(names):
            full = Path(directory) / name
            rel = full.relative_to(repo_root).as_posix()
            if full.is_symlink() or not full.is_file():
                skipped.append(f"{rel} (not a regular file)")
                continue
            size = full.stat().st_size
            if size > MAX_FILE_BYTES:
                skipped.append(f"{rel} (larger than 1 MiB)")
                continue
            data = full.read_bytes()
            try:
                if b"\x00" in data:
                    raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                skipped.append(f"{rel} (binary)")
                continue
            if any(marker in text for marker in SECRET_KEY_MARKERS):
                skipped.append(f"{rel} (holds a private key; the server needs none)")
                continue
            files[rel] = text
    if root not in files:
        raise UsageError(
            f"the root file {root} was skipped: {', '.join(s for s in skipped if s.startswith(root))}"
        )
    return Bundle(repo_root, root, files, skipped)


def _print_validation(error: ApiError, root: str) -> None:
    errors = [e for e in error.body.get("errors") or [] if isinstance(e, dict)]
    warnings = [w for w in error.body.get("warnings") or [] if isinstance(w, dict)]
    for item in errors:
        err.print(format_issue({"severity": "error", **item}, root), markup=False)
    for item in warnings:
        err.print(format_issue({"severity": "warning", **item}, root), markup=False)
    err.print(f"error: {error.detail}; nothing was applied", style="red", markup=False)


@cluster_app.command("apply")
def cluster_apply(
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", help="The repository folder, or its root ImportCluster file.", show_default=False
        ),
    ],
    cluster: ClusterOpt,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            max=MAX_WAIT_SECONDS,
            help="Seconds to wait for the operation to end (0: return once it is queued).",
        ),
    ] = 0,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Send a definition to the server: it is validated there and one sync job is queued for the agent."""
    from moorage.spec.loader import UsageError

    remote = Remote.from_options(server, token)
    try:
        bundle = bundle_repository(file)
    except (UsageError, OSError) as e:
        err.print(f"error: {e}", style="red", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    if output is Output.table:
        err.print(
            f"sending {len(bundle.files)} files from {bundle.repo_root} (root {bundle.root})", markup=False
        )
        for skipped in bundle.skipped:
            err.print(f"  skipped {skipped}", style="dim", markup=False)
    with handled(remote):
        try:
            status, data = remote.call(
                "POST",
                api_path("clusters", cluster, "apply"),
                params={"wait": wait} if wait else None,
                body={"files": bundle.files, "root": bundle.root},
                timeout=DEFAULT_TIMEOUT_SECONDS + wait,
            )
        except ApiError as e:
            if e.status_code == 422 and e.body.get("errors"):
                _print_validation(e, bundle.root)
                raise typer.Exit(EXIT_FAILED) from None
            raise
    if output is not Output.table:
        dump(data, output)
    else:
        _show_operation(data)
        if status == 202:
            out.print(
                f"the operation is {styled(data['state'])}; follow it with "
                f"`moorage operations show {esc(data['id'])}`"
            )
    if data.get("state") in FAILED_OPERATION_STATES:
        raise typer.Exit(EXIT_FAILED)


# --------------------------------------------------------------------------- operations

operations_app = typer.Typer(
    name="operations", help="Operations of a cluster and their jobs.", no_args_is_help=True
)


def _steps(op: dict[str, Any]) -> str:
    s = op.get("step_summary") or {}
    text = f"{s.get('succeeded', 0)}/{s.get('total', 0)}"
    if s.get("failed"):
        text += f" [red]{s['failed']} failed[/]"
    return text


def _message_text(message: Any) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        text = message.get("message")
        if isinstance(text, str):
            return text
    return json.dumps(message)


def _show_operation(op: dict[str, Any]) -> None:
    head = Table("field", "value", show_header=False, box=None)
    head.add_row("operation", esc(op["id"]))
    head.add_row("kind", esc(op.get("kind")))
    head.add_row("state", styled(op.get("state")))
    head.add_row("cluster", esc(op.get("cluster_id")))
    head.add_row("created", f"{when(op.get('created_at'))} by {esc(op.get('created_by') or '-')}")
    head.add_row("finished", when(op.get("finished_at")))
    head.add_row("steps", _steps(op))
    out.print(head)
    jobs = op.get("jobs") or []
    if not jobs:
        return
    table = Table("job", "action", "kind", "state", "started", "finished", "messages")
    for job in jobs:
        table.add_row(
            esc(job["id"]),
            esc(job.get("action")),
            esc(job.get("kind")),
            styled(job.get("state")),
            when(job.get("started_at")),
            when(job.get("finished_at")),
            esc("\n".join(_message_text(m) for m in job.get("messages") or [])),
        )
    out.print(table)


@operations_app.command("list")
def operations_list(
    cluster: ClusterOpt,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="Only this state: running, stopping, success, cleanup, failed, critical or cancelled.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many, newest first.")
    ] = 25,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The cluster's operations, newest first."""
    remote = Remote.from_options(server, token)
    params = {"state": state} if state else None
    with handled(remote):
        data = remote.pages(api_path("clusters", cluster, "operations"), params, limit=limit)
    if output is not Output.table:
        dump(data, output)
        return
    if not data["result"]:
        out.print(f"no operations{f' in state {state}' if state else ''} for cluster {esc(cluster)}")
        return
    table = Table("operation", "kind", "state", "steps", "created", "finished", "by")
    for op in data["result"]:
        table.add_row(
            esc(op["id"]),
            esc(op.get("kind")),
            styled(op.get("state")),
            _steps(op),
            when(op.get("created_at")),
            when(op.get("finished_at")),
            esc(op.get("created_by") or "-"),
        )
    out.print(table)
    total = (data.get("pagination") or {}).get("total_count")
    if isinstance(total, int) and total > len(data["result"]):
        out.print(f"showing {len(data['result'])} of {total}; use --limit to see more", style="dim")


@operations_app.command("show")
def operations_show(
    operation_id: Annotated[str, typer.Argument(metavar="ID", help="The operation's id.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """One operation with its jobs, their states and messages."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(api_path("operations", operation_id))
    if output is not Output.table:
        dump(data, output)
        return
    _show_operation(data)


resources_app = typer.Typer(
    name="resources", help="Browse a cluster's resources through its agent.", no_args_is_help=True
)


@resources_app.command("get")
def resources_get(
    kind: Annotated[str, typer.Argument(help="Kind, e.g. Deployment, ConfigMap, Pod.")],
    cluster: ClusterOpt,
    name: Annotated[str | None, typer.Argument(help="One object's name (default: list them).")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    api_version: Annotated[str, typer.Option("--api-version", help="e.g. apps/v1")] = "v1",
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Label selector.")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """List objects of a kind, or get one by name (e.g. `moorage resources get Deployment -n apps -c dev`)."""
    remote = Remote.from_options(server, token)
    params: dict[str, str | int | float] = {"api_version": api_version}
    if namespace:
        params["namespace"] = namespace
    with handled(remote):
        if name:
            data = remote.get(api_path("clusters", cluster, "resources", kind, name), **params)
        else:
            if selector:
                params["label_selector"] = selector
            data = remote.get(api_path("clusters", cluster, "resources"), kind=kind, **params)
    if output is not Output.table or name:
        dump(data.get("object", data) if name else data, Output.yaml if output is Output.table else output)
        return
    table = Table("namespace", "name", "created")
    for item in data["items"]:
        meta = item.get("metadata") or {}
        table.add_row(
            esc(meta.get("namespace", "")), esc(meta.get("name", "")), when(meta.get("creationTimestamp"))
        )
    out.print(table)
    out.print(f"{len(data['items'])} of {data['total']}")


def logs_command(
    pod: Annotated[str, typer.Argument(help="The pod's name.")],
    cluster: ClusterOpt,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    container: Annotated[str | None, typer.Option("--container")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming new lines.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines.")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """A pod's log, streamed from the cluster by its agent (server-sent events)."""
    remote = Remote.from_options(server, token)
    params: dict[str, str | int | float] = {"follow": "true" if follow else "false"}
    if container:
        params["container"] = container
    if tail is not None:
        params["tail"] = tail
    failed = False
    with handled(remote):
        for event, data in remote.events(api_path("clusters", cluster, "logs", namespace, pod), params):
            if event == "error":
                err.print(f"error: {data}", style="red", markup=False)
                failed = True
            elif event == "message":
                print(data, flush=True)
    if failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- fleet

fleet_app = typer.Typer(
    name="fleet", help="The fleet of agents: the chart roll-forward.", no_args_is_help=True
)


@fleet_app.command("status")
def fleet_status(server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table) -> None:
    """The roll-forward of the agents to the newest published moorage-agent chart: target, state, each
    cluster's batch and status, and the failure that stopped it (exit 1 when it stopped)."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(api_path("fleet", "rollout"))
    if output is not Output.table:
        dump(data, output)
    elif not data["enabled"]:
        out.print(f"fleet roll-forward is off: {esc(data.get('how', ''))}")
    else:
        policy = data["policy"]
        out.print(
            f"chart {esc(data['chart'])}: target {esc(data['target'] or '-')}, {styled(data['state'])} "
            f"({data['progress']['upgraded']}/{data['progress']['total']} upgraded; batches of "
            f"{policy['batch_size']}, {policy['pause_seconds']:.0f} s apart)"
        )
        if data.get("source_error"):
            err.print(f"the chart source: {data['source_error']}", markup=False)
        if data.get("next_batch_at"):
            out.print(f"next batch {when(data['next_batch_at'])}")
        table = Table("cluster", "batch", "status", "chart", "why")
        for c in data["clusters"]:
            batch = str(c["batch"]) if c["batch"] else "-"
            row = (c["cluster"], batch, c["status"], c["chart_version"] or "-", c["reason"])
            table.add_row(*(esc(v) for v in row))
        out.print(table)
        if data.get("failure"):
            err.print(f"stopped: {data['failure']}", markup=False)
    if data.get("state") == "failed":
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add `cluster`, `operations`, `addons`, `resources` and `logs` to the main `moorage` app."""
    app.command("logs")(logs_command)
    app.add_typer(cluster_app, name="cluster")
    app.add_typer(operations_app, name="operations")
    app.add_typer(resources_app, name="resources")
    app.add_typer(fleet_app, name="fleet")
