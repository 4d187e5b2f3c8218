"""`moorage kubeconfig CLUSTER` (a kubectl context through the Moorage server's proxy, with a new
kubectl token of the caller) and `moorage audit list` (the proxy's audit trail; admin).

The kubeconfig is merged as `kubectl config` would: the cluster, user and context entries named
`moorage-<cluster>` are added or replaced, everything else in the file is kept; the file is written
0600 in one rename. The token is written only there, never printed."""

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from moorage.cli.client import Remote, api_path, handled
from moorage.cli.output import Output, OutputOpt, dump, err, esc, out, when
from moorage.cli.remote_commands import ServerOpt, TokenOpt

audit_app = typer.Typer(name="audit", help="The kubectl proxy's audit trail (admin).", no_args_is_help=True)


def _default_kubeconfig() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def merge(config: dict[str, Any], name: str, server: str, token: str, ca_data: str | None, use: bool) -> None:
    """Add or replace the entries called `name` in a kubeconfig document (in place)."""
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    entries = {
        "clusters": {"name": name, "cluster": cluster},
        "users": {"name": name, "user": {"token": token}},
        "contexts": {"name": name, "context": {"cluster": name, "user": name}},
    }
    for key, entry in entries.items():
        items = [i for i in (config.get(key) or []) if isinstance(i, dict) and i.get("name") != name]
        config[key] = [*items, entry]
    if use or not config.get("current-context"):
        config["current-context"] = name
    config.setdefault("preferences", {})


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.moorage-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def kubeconfig(
    cluster: Annotated[str, typer.Argument(help="The registered cluster to reach through Moorage.")],
    kubeconfig_file: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig", help="The file to write or merge into (default: $KUBECONFIG, ~/.kube/config)."
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Name of the context (default: moorage-CLUSTER).")
    ] = None,
    ttl: Annotated[
        int | None, typer.Option("--ttl", help="Seconds the token lives (default 7 days, at most 90).")
    ] = None,
    use: Annotated[bool, typer.Option("--use/--no-use", help="Make it the current context.")] = True,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Write a kubectl context whose server is this Moorage server's proxy for CLUSTER, with a new
    kubectl token of yours (expiring, revocable with `moorage kubetokens revoke`). kubectl, helm and
    k9s then reach the cluster through its agent, with your role as the cluster's RBAC groups."""
    import base64

    import yaml

    remote = Remote.from_options(server, token)
    body: dict[str, Any] = {"cluster": cluster}
    if ttl is not None:
        body["ttl_seconds"] = ttl
    with handled(remote):
        _, created = remote.call("POST", "/kube-tokens", body=body)
    path = kubeconfig_file or _default_kubeconfig()
    try:
        existing = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError) as e:
        err.print(f"cannot read {esc(path)}: {esc(e)}")
        raise typer.Exit(1) from None
    config: dict[str, Any] = existing if isinstance(existing, dict) else {}
    ca = getattr(remote, "ca", None)
    ca_data = base64.b64encode(Path(ca).read_bytes()).decode() if ca else None
    name = context or f"moorage-{cluster}"
    url = remote.server + "/api/v1" + api_path("clusters", cluster, "kube")
    merge(config, name, url, created["token"], ca_data, use)
    _write_private(path, yaml.safe_dump(config, sort_keys=False))
    groups = ", ".join(created.get("kube_groups") or [])
    out.print(
        f"context [bold]{esc(name)}[/] written to {esc(path)}: you act in {esc(cluster)} as "
        f"{esc(created['kube_user'])} ({esc(groups)}); the token expires {when(created['expires_at'])}"
    )


kubetokens_app = typer.Typer(
    name="kubetokens", help="Your kubectl tokens (made by `moorage kubeconfig`).", no_args_is_help=True
)


@kubetokens_app.command("list")
def kubetokens_list(
    server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """Your kubectl tokens (an admin sees everyone's)."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get("/kube-tokens")
    if output is not Output.table:
        dump(data, output)
        return
    table = Table("id", "principal", "created", "expires", "last used", "state")
    for t in data:
        table.add_row(
            esc(t["id"]),
            esc(t["principal"]),
            when(t["created_at"]),
            when(t["expires_at"]),
            when(t.get("last_used_at")),
            "[red]revoked[/]" if t.get("revoked_at") else "active",
        )
    out.print(table)


@kubetokens_app.command("revoke")
def kubetokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (`moorage kubetokens list`).")],
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Revoke a kubectl token: its next request is refused."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        remote.call("DELETE", api_path("kube-tokens", token_id))
    out.print(f"revoked kubectl token {esc(token_id)}")


@audit_app.command("list")
def audit_list(
    cluster: Annotated[str | None, typer.Option("--cluster", "-c", help="Only this cluster.")] = None,
    principal: Annotated[str | None, typer.Option("--user", help="Only this principal (user:NAME).")] = None,
    verb: Annotated[str | None, typer.Option("--verb", help="Only this verb (get, list, delete, …).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Proxied Kubernetes API requests, newest first: who, which cluster, verb, resource, status."""
    remote = Remote.from_options(server, token)
    params: dict[str, str | int | float] = {"limit": limit}
    for key, value in (("cluster", cluster), ("principal", principal), ("verb", verb)):
        if value:
            params[key] = value
    with handled(remote):
        data = remote.get("/audit", **params)
    if output is not Output.table:
        dump(data, output)
        return
    table = Table("at", "principal", "cluster", "verb", "resource", "namespace", "name", "status", "ms")
    for a in data:
        table.add_row(
            when(a["at"]),
            esc(a["principal"]),
            esc(a["cluster"]),
            esc(a["verb"]),
            esc(a["resource"] or a["path"]),
            esc(a["namespace"]),
            esc(a["name"]),
            str(a["status"]),
            str(a["duration_ms"]),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add `kubeconfig`, `kubetokens` and `audit` to the main `moorage` app."""
    app.command("kubeconfig")(kubeconfig)
    app.add_typer(kubetokens_app, name="kubetokens")
    app.add_typer(audit_app, name="audit")
