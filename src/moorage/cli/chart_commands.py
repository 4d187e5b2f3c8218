"""`moorage charts search | versions | show`: the chart catalog of a Moorage server's connected
(global) registries. Tables by default; `-o json|yaml` prints the API's JSON as it came."""

from typing import Annotated

import typer
from rich.table import Table

from moorage.cli.client import Remote, api_path, handled
from moorage.cli.output import Output, OutputOpt, dump, err, esc, out, when
from moorage.cli.remote_commands import ServerOpt, TokenOpt

charts_app = typer.Typer(
    name="charts",
    help="Charts of the registries a Moorage server is connected to: search, versions, values, schema.",
    no_args_is_help=True,
)

RegistryArg = Annotated[str, typer.Argument(help="The registry's name (see `moorage charts search`).")]
ChartArg = Annotated[str, typer.Argument(help="The chart's name.")]


@charts_app.command("search")
def charts_search(
    query: Annotated[str, typer.Argument(help="Part of a chart's name, description or keywords.")] = "",
    registry: Annotated[str | None, typer.Option("--registry", help="Only this registry.")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Charts matching QUERY across the connected registries, with their newest versions."""
    remote = Remote.from_options(server, token)
    params = {"q": query, **({"registry": registry} if registry else {})}
    with handled(remote):
        data = remote.get("/charts", **params)
    if output is not Output.table:
        dump(data, output)
        return
    for problem in data.get("errors") or []:
        err.print(f"warning: {problem['message']}", style="yellow", markup=False)
    if not data["charts"]:
        out.print(f"no chart matches {query!r}")
        return
    table = Table("registry", "chart", "versions", "newest", "description")
    for c in data["charts"]:
        versions = c.get("versions") or []
        newest = versions[0] if versions else {}
        table.add_row(
            esc(c["registry"]),
            esc(c["name"]),
            esc(", ".join(v["version"] for v in versions[:5]) + (" …" if len(versions) > 5 else "")),
            when(newest.get("created")) if newest.get("created") else "-",
            esc((c.get("description") or "")[:60]),
        )
    out.print(table)


@charts_app.command("versions")
def charts_versions(
    registry: RegistryArg,
    chart: ChartArg,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Every version of a chart with its date."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(api_path("charts", registry, chart))
    if output is not Output.table:
        dump(data, output)
        return
    table = Table("version", "created", "app version")
    for v in data["versions"]:
        table.add_row(
            esc(v["version"]),
            when(v.get("created")) if v.get("created") else "-",
            esc(v.get("app_version") or "-"),
        )
    out.print(table)


@charts_app.command("show")
def charts_show(
    registry: RegistryArg,
    chart: ChartArg,
    version: Annotated[str, typer.Argument(help="The chart version.")],
    against: Annotated[
        str | None,
        typer.Option("--against", help="Also show what the default values change from this version."),
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """A chart version's default values, whether it has a values schema, its dependencies; with
    --against, the default values it changes."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get(
            api_path("charts", registry, chart, version), **({"against": against} if against else {})
        )
    if output is not Output.table:
        dump(data, output)
        return
    meta = data.get("chart") or {}
    out.print(
        f"[bold]{esc(data['name'])}[/] {esc(data['version'])} from {esc(data['registry'])} "
        f"({esc(data['digest'])})"
    )
    if meta.get("description"):
        out.print(esc(str(meta["description"])))
    out.print(f"values schema: {'yes (values.schema.json)' if data.get('schema') else 'none'}")
    for dep in data.get("dependencies") or []:
        out.print(
            f"dependency: {esc(dep.get('name'))} {esc(dep.get('version'))} {esc(dep.get('repository') or '')}"
        )
    out.print("[dim]default values:[/]")
    out.print(esc(data.get("values") or "(none)"), highlight=False)
    if "diff" in data:
        out.print(f"[dim]default values changed since {esc(data['diff']['against'])}:[/]")
        for change in data["diff"]["changes"] or []:
            line = f"{change['change']}: {change['path']}"
            if "from" in change:
                line += f" from {change['from']!r}"
            if "to" in change:
                line += f" to {change['to']!r}"
            out.print(esc(line), highlight=False)
        if not data["diff"]["changes"]:
            out.print("(no change)")


def register(app: typer.Typer) -> None:
    app.add_typer(charts_app, name="charts")
