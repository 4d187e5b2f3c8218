"""`moorage devcluster up | down | status`: a real local Kubernetes for the demo and the tests."""

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

# moorage.devcluster (http.client, ssl, …) is imported in each command: `moorage --help` needs none of it

app = typer.Typer(help="A real local Kubernetes (etcd, API server, controllers, kwok nodes) as processes.")
err = Console(stderr=True, soft_wrap=True)

NameOption = Annotated[str, typer.Option("--name", help="Cluster name (lowercase letters, digits, '-').")]


@app.command()
def up(
    name: NameOption = "dev",
    nodes: Annotated[int, typer.Option("--nodes", help="Number of fake (kwok) nodes.")] = 3,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for readiness.")] = 90.0,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Also run: argocd (Argo CD's application-controller, repo-server and Redis; "
            "`make tools-argocd` builds them), argo-rollouts (Argo Rollouts' controller and CRDs; "
            "`make tools-rollouts`).",
        ),
    ] = None,
    with_charts: Annotated[
        bool,
        typer.Option(
            "--with-charts",
            help="Also serve the example's charts (the checkout's tests/charts, or --charts) as a Helm "
            "repository at http://127.0.0.1:8879, where examples/gitops-repo expects them.",
        ),
    ] = False,
    charts: Annotated[
        Path | None,
        typer.Option("--charts", help="With --with-charts: the folder of chart folders.", show_default=False),
    ] = None,
    charts_port: Annotated[int, typer.Option("--charts-port", help="With --with-charts: the port.")] = 8879,
) -> None:
    """Start a devcluster; the last line printed is its kubeconfig path."""
    from moorage import devcluster

    if with_charts:
        from moorage.devcluster import chartserver

        charts = charts or chartserver.default_charts_dir()
        if charts is None:
            err.print("[red]error:[/red] --with-charts: no tests/charts here; give --charts DIR", markup=True)
            raise typer.Exit(2)

    extras = set(with_ or ())
    if unknown := extras - {"argocd", "argo-rollouts"}:
        err.print(
            f"[red]error:[/red] --with {sorted(unknown)[0]}: unknown; the choices are: argocd, argo-rollouts",
            markup=True,
        )
        raise typer.Exit(2)
    started = time.monotonic()
    try:
        cluster = devcluster.up(name, nodes=nodes, timeout=timeout)
        if "argocd" in extras:
            from moorage.devcluster import argocd

            try:
                argocd.start(cluster)
            except BaseException:
                devcluster.down(name)  # all or nothing: no half-started devcluster stays behind
                raise
            err.print(f"Argo CD running (namespace {argocd.NAMESPACE}, destination {argocd.IN_CLUSTER})")
        if "argo-rollouts" in extras:
            from moorage.devcluster import rollouts

            try:
                rollouts.start(cluster)
            except BaseException:
                devcluster.down(name)  # all or nothing
                raise
            err.print(
                "Argo Rollouts running (its CRDs installed; `kubectl argo rollouts` is kubectl-argo-rollouts)"
            )
        if with_charts and charts is not None:
            try:
                url = chartserver.start(cluster, charts, charts_port)
            except BaseException:
                devcluster.down(name)  # all or nothing
                raise
            err.print(f"charts of {charts} served at {url}", highlight=False)
    except devcluster.DevclusterError as e:
        err.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    err.print(
        f"devcluster {name!r} ready in {time.monotonic() - started:.1f}s: API {cluster.server}, "
        f"{nodes} nodes, logs in {cluster.dir / 'logs'}",
        highlight=False,
    )
    print(cluster.kubeconfig)


@app.command()
def down(name: NameOption = "dev") -> None:
    """Stop every process of the devcluster and remove its state."""
    from moorage import devcluster

    try:
        existed = devcluster.down(name)
    except devcluster.DevclusterError as e:
        err.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    err.print(f"devcluster {name!r} {'stopped and removed' if existed else 'was not running'}")


@app.command()
def status() -> None:
    """List devclusters and their health."""
    from moorage import devcluster

    clusters = devcluster.list_clusters()
    if not clusters:
        err.print("no devclusters (start one with `moorage devcluster up --name NAME`)")
        return
    table = Table("name", "health", "API", "nodes ready", "components down", "kubeconfig")
    unhealthy = False
    for cluster in clusters:
        s = devcluster.status(cluster)
        unhealthy |= not s.healthy
        down_components = ", ".join(c for c, ok in s.components.items() if not ok) or "-"
        table.add_row(
            s.name,
            "[green]healthy[/green]" if s.healthy else "[red]unhealthy[/red]",
            s.server,
            f"{s.nodes_ready}/{s.nodes_wanted}",
            down_components,
            str(s.kubeconfig),
        )
    out = Console()
    if not out.is_terminal:
        out = Console(width=250)  # piped: never truncate paths and URLs
    out.print(table)
    if unhealthy:
        raise typer.Exit(1)
