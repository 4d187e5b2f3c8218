"""`moorage agent`: the per-cluster agent (outbound connections only).

Every setting is a flag and an environment variable (the agent chart, charts/moorage-agent, sets the
variables); a flag wins over its variable."""

import logging
from pathlib import Path
from typing import Annotated

import typer


def agent_command(
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="MOORAGE_SERVER",
            help="The control plane's URL, e.g. https://moorage.example.com",
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="MOORAGE_AGENT_TOKEN",
            help="The cluster's agent token.",
            show_default=False,
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)."),
    ] = None,
    read_workers: Annotated[
        int,
        typer.Option(
            "--read-workers", envvar="MOORAGE_AGENT_READ_WORKERS", min=1, max=50, help="Read jobs at once."
        ),
    ] = 5,
    write_workers: Annotated[
        int,
        typer.Option(
            "--write-workers",
            envvar="MOORAGE_AGENT_WRITE_WORKERS",
            min=1,
            max=50,
            help="Write jobs held at once (run one at a time).",
        ),
    ] = 5,
    health_port: Annotated[
        int,
        typer.Option(
            "--health-port", envvar="MOORAGE_AGENT_HEALTH_PORT", help="Port of /livez, /readyz and /metrics."
        ),
    ] = 8080,
    sweep_interval: Annotated[
        float,
        typer.Option(
            "--sweep-interval",
            envvar="MOORAGE_AGENT_SWEEP_INTERVAL",
            help="Seconds between reconcile sweeps.",
        ),
    ] = 60.0,
    heartbeat_interval: Annotated[
        float,
        typer.Option(
            "--heartbeat-interval",
            envvar="MOORAGE_AGENT_HEARTBEAT_INTERVAL",
            help="Seconds between heartbeats.",
        ),
    ] = 15.0,
    health_checks_file: Annotated[
        Path | None,
        typer.Option(
            "--health-checks-file",
            envvar="MOORAGE_HEALTH_CHECKS_FILE",
            help="Server-wide user health checks (Lua or CEL, a YAML list like spec.health_checks), "
            "read at start; a definition's own checks override them per kind.",
        ),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            envvar="MOORAGE_CA",
            help="Trust only this CA (PEM) for the server's HTTPS certificate (default: the system's CAs).",
        ),
    ] = None,
    nats_ca: Annotated[
        Path | None,
        typer.Option(
            "--nats-ca",
            envvar="MOORAGE_NATS_CA",
            help="Trust only this CA (PEM) for NATS (default: the CA the server hands out at registration).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            envvar="MOORAGE_AGENT_INSECURE",
            help="Allow plain http:// and nats:// beyond loopback: the agent token then crosses the "
            "network in the clear. Only on a network you trust.",
        ),
    ] = False,
) -> None:
    """Run the agent of one cluster: connects out to the server and NATS, runs jobs, sweeps, heartbeats."""
    # here, not at the top: nats, the engine and the Kubernetes client load only when the agent runs
    import asyncio

    from moorage.agent.runner import Agent, AgentSettings, RegistrationError
    from moorage.agent.transport import TransportRefused, check_url

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not token:
        typer.echo("error: an agent token is needed: --token or $MOORAGE_AGENT_TOKEN", err=True)
        raise typer.Exit(2)
    settings = AgentSettings(
        server=server,
        token=token,
        kubeconfig=kubeconfig,
        read_workers=read_workers,
        write_workers=write_workers,
        health_port=health_port,
        sweep_interval=sweep_interval,
        heartbeat_interval=heartbeat_interval,
        health_checks_file=health_checks_file,
        ca=ca,
        nats_ca=nats_ca,
        insecure=insecure,
    )
    for path, flag in ((ca, "--ca"), (nats_ca, "--nats-ca")):
        if path is not None and not path.is_file():
            typer.echo(f"error: {flag} {path}: no such file", err=True)
            raise typer.Exit(2)
    try:
        check_url(server, what="server", insecure=insecure)
    except TransportRefused as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    from moorage.engine.health.custom import ChecksFileError

    try:
        agent = Agent(settings)
    except ChecksFileError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(agent.run())
    except RegistrationError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except TransportRefused as e:  # the NATS URL the server handed out
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_command)
