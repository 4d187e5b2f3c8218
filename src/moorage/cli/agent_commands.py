"""`moorage agent`: the per-cluster agent (outbound connections only)."""

import logging
import os
from pathlib import Path
from typing import Annotated

import typer


def agent_command(
    server: Annotated[
        str, typer.Option("--server", help="The control plane's URL, e.g. https://moorage.example.com")
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="The cluster's agent token (or $MOORAGE_AGENT_TOKEN).", show_default=False
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Kubeconfig (default: in-cluster, $KUBECONFIG, ~/.kube/config)."),
    ] = None,
    read_workers: Annotated[int, typer.Option("--read-workers", min=1, max=50)] = 5,
    write_workers: Annotated[int, typer.Option("--write-workers", min=1, max=50)] = 5,
    health_port: Annotated[
        int, typer.Option("--health-port", help="Port of /livez, /readyz and /metrics.")
    ] = 8080,
    sweep_interval: Annotated[
        float, typer.Option("--sweep-interval", help="Seconds between reconcile sweeps.")
    ] = 60.0,
    heartbeat_interval: Annotated[
        float, typer.Option("--heartbeat-interval", help="Seconds between heartbeats.")
    ] = 15.0,
) -> None:
    """Run the agent of one cluster: connects out to the server and NATS, runs jobs, sweeps, heartbeats."""
    # here, not at the top: nats, the engine and the Kubernetes client load only when the agent runs
    import asyncio

    from moorage.agent.runner import Agent, AgentSettings, RegistrationError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = token or os.environ.get("MOORAGE_AGENT_TOKEN")
    if not secret:
        typer.echo("error: an agent token is needed: --token or $MOORAGE_AGENT_TOKEN", err=True)
        raise typer.Exit(2)
    settings = AgentSettings(
        server=server,
        token=secret,
        kubeconfig=kubeconfig,
        read_workers=read_workers,
        write_workers=write_workers,
        health_port=health_port,
        sweep_interval=sweep_interval,
        heartbeat_interval=heartbeat_interval,
    )
    try:
        asyncio.run(Agent(settings).run())
    except RegistrationError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_command)
