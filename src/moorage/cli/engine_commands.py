"""Standalone commands, no server needed: `moorage sync | diff | status | sweep PATH --kubeconfig K`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from moorage.cli.spec_commands import EXIT_INVALID, EXIT_USAGE, NoDecryptOpt, PathArg, VarOpt, _load

# The engine, helm and the Kubernetes client are imported inside each command, never up here:
# `moorage --help` and the client commands load this module too, and must not pay for them.
if TYPE_CHECKING:
    from moorage.engine.context import EngineContext, Options
    from moorage.engine.outcome import EntryOutcome
    from moorage.spec.content import ResolvedCluster
    from moorage.spec.graph import Plan

T = TypeVar("T")
out = Console()
err = Console(stderr=True, soft_wrap=True)

KubeconfigOpt = Annotated[
    Path | None,
    typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)."),
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context (default: current).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TimeoutOpt = Annotated[
    int | None, typer.Option("--timeout", help="Seconds per helm operation (default: job_configuration).")
]

_STYLE = {  # by moorage.engine.outcome.EntryStatus (a StrEnum)
    "applied": "green",
    "unchanged": "dim",
    "planned": "cyan",
    "failed": "red",
    "blocked": "yellow",
    "cancelled": "yellow",
}


def _definition(path: Path, var: list[str] | None, no_decrypt: bool) -> tuple[ResolvedCluster, Plan]:
    result = _load(path, var, no_decrypt, strict=False)
    if not result.ok or result.resolved is None or result.plan is None:
        err.print(result.report.to_text(), highlight=False, markup=False)
        err.print("the definition is invalid; nothing was changed", style="red")
        raise typer.Exit(EXIT_INVALID)
    return result.resolved, result.plan


def _run(
    kubeconfig: Path | None,
    context: str | None,
    options: Options,
    body: Callable[[EngineContext], Awaitable[T]],
) -> T:
    import asyncio

    from moorage.engine.context import EngineContext
    from moorage.helm.cli import Helm, HelmError
    from moorage.kube import config as kube_config
    from moorage.kube.client import KubeClient
    from moorage.kube.errors import KubeError

    async def main() -> T:
        try:
            cluster = kube_config.load(kubeconfig, context)
        except KubeError as e:
            err.print(f"error: {e}", style="red", highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
        async with KubeClient(cluster) as kube:
            ctx = EngineContext(kube, Helm(kubeconfig=kubeconfig, context=context), options)
            return await body(ctx)

    try:
        return asyncio.run(main())
    except (KubeError, HelmError) as e:
        err.print(f"error: {e}", style="red", highlight=False)
        raise typer.Exit(1) from None


def sync_command(
    path: PathArg,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=50)] = 5,
    no_prune: Annotated[
        bool, typer.Option("--no-prune", help="Never delete objects of raw manifests.")
    ] = False,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
    var: VarOpt = None,
    no_decrypt: NoDecryptOpt = False,
) -> None:
    """Deploy a definition to a cluster: waves, parents, Helm add-ons and manifests."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from moorage.engine.context import Options
    from moorage.engine.executor import sync

    cluster, plan = _definition(path, var, no_decrypt)
    options = Options(
        concurrency=concurrency,
        dry_run=dry_run,
        prune_manifests=not no_prune,
        prune_addons=not no_prune,
        timeout_seconds=timeout,
    )

    async def body(ctx: EngineContext) -> list[EntryOutcome]:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=as_json,
            transient=True,
        ) as bar:
            task = bar.add_task("sync", total=len(plan.order))

            def advance(o: EntryOutcome) -> None:
                bar.update(task, advance=1, description=f"{o.ref}: {o.status}")

            result = await sync(ctx, cluster, plan, progress=advance)
        return list(result.outcomes.values())

    outcomes = _run(kubeconfig, context, options, body)
    if as_json:
        typer.echo(json.dumps([o.to_dict() for o in outcomes], indent=2))
    else:
        table = Table("entry", "result", "health", "attempts", "seconds", "message")
        for o in outcomes:
            table.add_row(
                o.ref,
                f"[{_STYLE[o.status]}]{o.status}[/]",
                o.health or "",
                str(o.attempts or ""),
                f"{o.seconds:.1f}",
                _message(o),
            )
        out.print(table)
    raise typer.Exit(0 if all(o.ok for o in outcomes) else 1)


def _message(o: EntryOutcome) -> str:
    parts = [o.message]
    if o.pruned:
        parts.append("pruned: " + ", ".join(o.pruned))
    if o.kept:
        parts.append("kept: " + "; ".join(o.kept))
    if o.adopted:
        parts.append("adopted: " + "; ".join(o.adopted))
    return "\n".join(parts)


def diff_command(
    path: PathArg,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_json: JsonOpt = False,
    var: VarOpt = None,
    no_decrypt: NoDecryptOpt = False,
) -> None:
    """Show drift of every add-on: each resource and field that differs from its release (exit 1 if any)."""
    from moorage.engine.context import Options
    from moorage.engine.sweep import detect_drift
    from moorage.helm.storage import latest, read_releases

    cluster, _ = _definition(path, var, no_decrypt)

    async def body(ctx: EngineContext) -> dict[str, Any]:
        stored, _ = await read_releases(ctx.kube)
        found = await detect_drift(ctx, cluster, latest(stored))
        return {name: drift for name, (_, drift) in found.items()}

    drifts = _run(kubeconfig, context, Options(), body)
    if as_json:
        typer.echo(json.dumps({n: [d.to_dict() for d in ds] for n, ds in drifts.items()}, indent=2))
    else:
        for name, ds in drifts.items():
            if not ds:
                out.print(f"[green]addon/{name}[/]: in sync")
                continue
            out.print(f"[yellow]addon/{name}[/]: {len(ds)} resource(s) drifted")
            for d in ds:
                where = f"{d.namespace}/{d.name}" if d.namespace else d.name
                out.print(f"  {d.kind} {where} ({d.drift_type})", highlight=False)
                for change in d.changes:
                    out.print(
                        f"    {change.path}: want {change.desired!r}, live {change.live!r}", highlight=False
                    )
    raise typer.Exit(1 if any(drifts.values()) else 0)


def status_command(
    path: PathArg,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    as_json: JsonOpt = False,
    var: VarOpt = None,
    no_decrypt: NoDecryptOpt = False,
) -> None:
    """Health of every add-on, from its live resources, with the reason."""
    from moorage.engine.addons import release_health
    from moorage.engine.context import Options
    from moorage.engine.executor import current_release
    from moorage.helm.storage import latest, read_releases

    cluster, _ = _definition(path, var, no_decrypt)

    async def body(ctx: EngineContext) -> list[dict[str, Any]]:
        stored, _ = await read_releases(ctx.kube)
        releases = latest(stored)
        rows = []
        for name, addon in cluster.addons.items():
            release = current_release(releases, addon, cluster.name)
            if release is None:
                rows.append({"addon": name, "release": None, "health": "Missing", "reason": "not installed"})
                continue
            health = await release_health(ctx, release, addon.settings.strict_health_check)
            rows.append(
                {
                    "addon": name,
                    "release": f"{release.namespace}/{release.name} rev {release.revision} {release.status}",
                    "health": str(health.status),
                    "reason": health.reason,
                }
            )
        return rows

    rows = _run(kubeconfig, context, Options(), body)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        table = Table("add-on", "release", "health", "reason")
        for row in rows:
            style = (
                "green"
                if row["health"] == "Healthy"
                else "yellow"
                if row["health"] == "Progressing"
                else "red"
            )
            table.add_row(row["addon"], row["release"] or "-", f"[{style}]{row['health']}[/]", row["reason"])
        out.print(table)
    raise typer.Exit(0 if all(r["health"] == "Healthy" for r in rows) else 1)


def sweep_command(
    path: PathArg,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    var: VarOpt = None,
    no_decrypt: NoDecryptOpt = False,
) -> None:
    """Run one reconcile sweep (recover, drift, self-heal, prune) and print its heartbeat record."""
    from moorage.engine.context import Options
    from moorage.engine.sweep import sweep

    cluster, _ = _definition(path, var, no_decrypt)

    async def body(ctx: EngineContext) -> dict[str, Any]:
        beat, _ = await sweep(ctx, cluster)
        return beat.to_dict()

    typer.echo(json.dumps(_run(kubeconfig, context, Options(), body), indent=2))


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_command)
    app.command("diff")(diff_command)
    app.command("status")(status_command)
    app.command("sweep")(sweep_command)
