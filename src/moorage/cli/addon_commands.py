"""`moorage addons list | get | drift | values | manifest | history | events | transitions |
rollback | resume | sync | releases`: the live state of a cluster's add-ons, from the server.
Tables by default; `-o json|yaml` prints the API's JSON as it came. Light imports only (see main.py)."""

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from moorage.cli.client import Remote, api_path, handled
from moorage.cli.output import Output, OutputOpt, dump, err, esc, out, styled, when
from moorage.cli.remote_commands import ClusterOpt, ServerOpt, TokenOpt, cluster_app

addons_app = typer.Typer(
    name="addons",
    help="Add-ons of a cluster: live state, drift, history, rollback.",
    no_args_is_help=True,
)

AddonArg = Annotated[str, typer.Argument(help="The add-on's name.")]
WaitOpt = Annotated[float, typer.Option("--wait", min=0, max=600, help="Seconds to wait for the job.")]
LIFECYCLE_STYLE = {
    "Synced": "green",
    "OutOfSync": "yellow",
    "Degraded": "red",
    "Deploying": "cyan",
    "Pending": "yellow",
    "Unknown": "dim",
}


def _state(value: Any) -> str:
    return styled(value, LIFECYCLE_STYLE)


def _table(data: dict[str, Any]) -> Table:
    table = Table("add-on", "namespace", "state", "chart", "revision", "updated", "reason")
    for a in data["result"]:
        version = a.get("deployed_version") or a.get("version") or ""
        table.add_row(
            esc(a["name"]),
            esc(a["namespace"]),
            _state(a["state"]),
            esc(f"{a.get('chart', '')} {version}".strip()),
            esc(a.get("revision") if a.get("revision") is not None else "-"),
            when(a.get("last_deployed")),
            esc(a.get("reason")),
        )
    return table


def _tabulate(
    data: Any, output: Output, columns: tuple[str, ...], items: list[Any], row: Callable[[Any], list[str]]
) -> None:
    """The API's answer as it came (`-o json|yaml`), or a table with one row per item."""
    if output is not Output.table:
        dump(data, output)
        return
    table = Table(*columns)
    for item in items:
        table.add_row(*row(item))
    out.print(table)


def _summary(data: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {_state(s)}" for s, n in data["counts"].items() if n)
    counts = counts or "no add-ons reported yet"
    return f"cluster {esc(data['cluster'])} (agent {styled(data['agent'])}): {counts}"


@addons_app.command("list")
def addons_list(
    cluster: ClusterOpt,
    state: Annotated[str | None, typer.Option("--state", help="Synced, OutOfSync, Degraded, …")] = None,
    search: Annotated[str | None, typer.Option("--search", "-s", help="Part of a name or namespace.")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Print each state change as it happens.")
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The cluster's add-ons with their lifecycle state and the reason for it."""
    remote = Remote.from_options(server, token)
    params: dict[str, str | int] = {}
    if state:
        params["state"] = state
    if search:
        params["search"] = search
    with handled(remote):
        data = remote.pages(api_path("clusters", cluster, "addons"), params)
    if output is not Output.table:
        dump(data, output)
    else:
        out.print(_summary(data))
        if data["result"]:
            out.print(_table(data))
    if not watch:
        return
    with handled(remote):
        for event, payload in remote.events("/events", {"cluster": cluster}):
            if event == "overflow":
                err.print("missed changes (this terminal read too slowly); run the command again")
                raise typer.Exit(1)
            if event != "addon":
                continue
            change = json.loads(payload)
            if state and change.get("state") != state and change.get("previous") != state:
                continue
            if output is not Output.table:
                print(json.dumps(change), flush=True)
                continue
            out.print(
                f"{when(change.get('at'))}  {esc(change['addon'])}: "
                f"{_state(change.get('previous') or '-')} → "
                f"{_state(change['state'])} ({esc(change.get('cause'))}): {esc(change.get('reason'))}"
            )


@addons_app.command("get")
def addons_get(
    addon: AddonArg,
    cluster: ClusterOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """One add-on: chart, version, revision, state with its reason, health, drift count, hold."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        a = remote.get(api_path("clusters", cluster, "addons", addon))
    if output is not Output.table:
        dump(a, output)
        return
    rows = [
        ("state", f"{_state(a['state'])} since {when(a['state_since'])}"),
        ("reason", esc(a["reason"])),
        ("namespace", esc(a["namespace"])),
        ("chart", esc(f"{a['chart']} {a['version']} (deployed: {a['deployed_version'] or '-'})")),
        ("source", esc(a["registry_url"] or "-")),
        ("revision", esc(f"{a['revision']} ({a['helm_status']})" if a["revision"] else "not installed")),
        ("health", f"{styled(a['health'] or '-')} {esc(a['health_reason'])}"),
        ("last deployed", when(a["last_deployed"])),
        ("drifted fields", esc(a["drifted_fields"])),
        (
            "sync policy",
            esc(f"automated={a['automated']} self_heal={a['self_heal']} strict={a['strict_health']}"),
        ),
        ("commit", esc(a["commit"] or "-")),
    ]
    if a.get("held_revision"):
        rows.append(
            ("held", esc(f"at revision {a['held_revision']} since {a['held_at']} (moorage addons resume)"))
        )
    if a.get("last_error"):
        rows.append(("last error", esc(a["last_error"])))
    for c in a.get("conflicts") or []:
        rows.append(
            ("conflict", esc(f"{c.get('manager')} keeps changing {c.get('path')} on {c.get('resource')}"))
        )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.print(f"{key.ljust(width)}  {value}")


@addons_app.command("drift")
def addons_drift(
    addon: AddonArg,
    cluster: ClusterOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Each drifted resource and field, want vs live; conflicts with the ignore entry that ends them."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        d = remote.get(api_path("clusters", cluster, "addons", addon, "drift"))
    if output is not Output.table:
        dump(d, output)
        return
    if not d["resources"] and not d["definition_diff"]:
        out.print(f"{esc(addon)}: no drift")
    if d["definition_diff"]:
        out.print("definition differs from the release: " + esc("; ".join(d["definition_diff"])))
    table = Table("resource", "field", "want", "live")
    for r in d["resources"]:
        what = f"{r.get('kind')} {r.get('namespace') + '/' if r.get('namespace') else ''}{r.get('name')}"
        if r.get("drift_type") == "missing":
            table.add_row(esc(what), "(the whole object)", "present", "missing")
        for c in r.get("changes") or []:
            table.add_row(
                esc(what), esc(c.get("path")), esc(json.dumps(c.get("want"))), esc(json.dumps(c.get("live")))
            )
    if d["resources"]:
        out.print(table)
    if d["omitted"]:
        out.print(f"… and {d['omitted']} more field(s) the agent left out of its report")
    for c in d["conflicts"]:
        out.print(
            f"conflict: {esc(c.get('manager'))} keeps changing {esc(c.get('path'))}; to stop healing it, add:"
        )
        out.print(esc(c.get("ignore_entry") or ""))


def _read(cluster: str, addon: str, what: str, server: str | None, token: str | None, **params: Any) -> Any:
    remote = Remote.from_options(server, token)
    with handled(remote):
        return remote.get(
            api_path("clusters", cluster, "addons", addon, what),
            **{k: v for k, v in params.items() if v is not None},
        )


@addons_app.command("values")
def addons_values(
    addon: AddonArg,
    cluster: ClusterOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.yaml,
) -> None:
    """The deployed values; secrets are masked by the agent."""
    data = _read(cluster, addon, "values", server, token)
    dump(
        data if output is Output.json else data["values"],
        Output.json if output is Output.json else Output.yaml,
    )


@addons_app.command("manifest")
def addons_manifest(
    addon: AddonArg,
    cluster: ClusterOpt,
    revision: Annotated[int | None, typer.Option("--revision", min=1)] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """The rendered manifest of a revision (default: the current one), Secret data masked."""
    print(_read(cluster, addon, "manifest", server, token, revision=revision)["manifest"])


@addons_app.command("history")
def addons_history(
    addon: AddonArg,
    cluster: ClusterOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Helm revisions, newest first (the counterpart of `helm history`)."""
    data = _read(cluster, addon, "history", server, token)
    _tabulate(
        data, output, ("revision", "updated", "status", "chart", "description"), data["revisions"],
        lambda r: [
            esc(r["revision"]), when(r["updated"]), styled(r["status"]),
            esc(f"{r['chart']}-{r['chart_version']}"), esc(r["description"]),
        ],
    )  # fmt: skip


@addons_app.command("events")
def addons_events(
    addon: AddonArg,
    cluster: ClusterOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Kubernetes events of the add-on's resources, oldest first."""
    data = _read(cluster, addon, "events", server, token)
    _tabulate(
        data, output, ("last seen", "type", "object", "reason", "message"), data["events"],
        lambda e: [
            when(e["last_seen"]), esc(e["type"]), esc(e["object"]), esc(e["reason"]), esc(e["message"])
        ],
    )  # fmt: skip


@addons_app.command("transitions")
def addons_transitions(
    addon: AddonArg,
    cluster: ClusterOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """When the add-on changed state, to what and why, newest first."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.pages(api_path("clusters", cluster, "addons", addon, "transitions"), limit=200)
    _tabulate(
        data, output, ("at", "from", "to", "cause", "reason"), data["result"],
        lambda t: [
            when(t["at"]), _state(t["from_state"] or "-"), _state(t["to_state"]),
            esc(t["cause"]), esc(t["reason"]),
        ],
    )  # fmt: skip


def _act(
    cluster: str,
    addon: str,
    verb: str,
    body: Any,
    wait: float,
    server: str | None,
    token: str | None,
    output: Output,
) -> None:
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call(
            "POST",
            api_path("clusters", cluster, "addons", addon, verb),
            params={"wait": wait},
            body=body,
            timeout=wait + 30,
        )
    if output is not Output.table:
        dump(data, output)
    else:
        state = data["operation_state"]
        out.print(f"operation {esc(data['operation_id'])}: {styled(state)}")
        for line in data["messages"][-20:]:
            out.print(f"  {esc(line)}")
        if data.get("addon"):
            out.print(f"{esc(addon)}: {_state(data['addon']['state'])}: {esc(data['addon']['reason'])}")
    if data["operation_state"] in ("failed", "critical", "cancelled"):
        raise typer.Exit(1)


@addons_app.command("rollback")
def addons_rollback(
    addon: AddonArg,
    revision: Annotated[int, typer.Argument(min=1, help="The Helm revision to go back to (see `history`).")],
    cluster: ClusterOpt,
    wait: WaitOpt = 300,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """`helm rollback` through the agent; the add-on is held there until `resume` or a commit changes it."""
    _act(cluster, addon, "rollback", {"revision": revision}, wait, server, token, output)


@addons_app.command("resume")
def addons_resume(
    addon: AddonArg,
    cluster: ClusterOpt,
    wait: WaitOpt = 300,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """End a rollback hold: deploy what the definition says for this add-on."""
    _act(cluster, addon, "resume", None, wait, server, token, output)


@addons_app.command("sync")
def addons_sync(
    addon: AddonArg,
    cluster: ClusterOpt,
    wait: WaitOpt = 300,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Deploy this add-on as the definition says, now (a manual sync of `automated: false`)."""
    _act(cluster, addon, "sync", None, wait, server, token, output)


@addons_app.command("releases")
def addons_releases(
    cluster: ClusterOpt, server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """Every Helm release in the cluster, managed by Moorage or not (like `helm list -A`)."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(api_path("clusters", cluster, "releases"))
    _tabulate(
        data, output, ("release", "namespace", "chart", "revision", "status", "updated", "managed"),
        data["releases"],
        lambda r: [
            esc(r["name"]), esc(r["namespace"]), esc(f"{r['chart']}-{r['chart_version']}"),
            esc(r["revision"]),
            styled(r["status"]), when(r["updated"]), "yes" if r.get("managed") else "no (read-only)",
        ],
    )  # fmt: skip


def cluster_migrate(
    name: Annotated[str, typer.Argument(help="The cluster.")],
    _preview: Annotated[bool, typer.Option("--preview", help="Show the report (the default).")] = True,
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm",
            help="Migrate: apply the cluster's last definition again with engine ankra_native (a cluster "
            "synced from Git is changed in Git instead).",
        ),
    ] = False,
    wait: WaitOpt = 0,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Which Argo CD Applications can move to the native engine, and why not; with --confirm, migrate.
    Migrating is declarative: the definition's engine becomes ankra_native and each eligible add-on
    migrates at the next sync, keeping every object and Pod."""
    remote = Remote.from_options(server, token)
    if confirm:
        with handled(remote):
            _, data = remote.call(
                "POST",
                api_path("clusters", name, "argocd", "migration"),
                params={"wait": wait},
                timeout=wait + 30,
            )
        if output is not Output.table:
            dump(data, output)
            return
        for change in data.get("changes") or []:
            out.print(f"  {esc(change)}")
        op = esc(data["id"])
        out.print(f"operation {op}: {styled(data['state'])} (`moorage operations show {op}`)")
        if data["state"] in ("failed", "critical", "cancelled"):
            raise typer.Exit(1)
        return
    with handled(remote):
        data = remote.get(api_path("clusters", name, "argocd", "migration"))
    _tabulate(
        data, output, ("application", "add-on", "eligible", "sync", "health", "why not", "no health rule"),
        data["applications"],
        lambda a: [
            esc(a["application"]), esc(a["addon"] or "-"), "yes" if a["eligible"] else "no",
            esc(a["sync"]), styled(a["health"]) if a["health"] else "-", esc("; ".join(a["reasons"]) or "-"),
            esc(", ".join(a.get("no_health_rule") or []) or "-"),
        ],
    )  # fmt: skip
    if output is Output.table:
        err.print(
            f"{data['eligible']} of {data['moorage_applications']} Moorage Application(s) can migrate; "
            f"to migrate: {esc(data['how'])}",
            highlight=False,
        )
        if any(a.get("no_health_rule") for a in data["applications"]):
            err.print(
                "kinds under 'no health rule' are judged after migration only by their status.conditions; "
                "add a spec.health_checks entry for each to keep a real health check",
                highlight=False,
            )


def cluster_decommission_argocd(
    name: Annotated[str, typer.Argument(help="The cluster.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (it is one-way).")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Decommission Argo CD on a cluster, one way: refused while an add-on still runs on Argo CD;
    afterwards definitions that use engine argo_cd are refused. Argo CD itself and every Application
    Moorage does not own are left untouched."""
    if not yes and not typer.confirm(f"Decommission Argo CD on cluster {name}? This cannot be undone"):
        raise typer.Exit(1)
    remote = Remote.from_options(server, token)
    with handled(remote):
        _, data = remote.call("POST", api_path("clusters", name, "argocd", "decommission"))
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"Argo CD decommissioned on {esc(name)} at {when(data['decommissioned_at'])}", highlight=False)
    if data["not_synced"]:
        err.print(f"not Synced yet: {esc(', '.join(data['not_synced']))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(addons_app, name="addons")
    cluster_app.command("migrate")(cluster_migrate)
    cluster_app.command("decommission-argocd")(cluster_decommission_argocd)
