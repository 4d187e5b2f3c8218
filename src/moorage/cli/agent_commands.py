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
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            envvar="MOORAGE_AGENT_CONCURRENCY",
            min=1,
            max=50,
            help="Entries one sync or sweep deploys or heals at once, within a wave (helm processes "
            "at once; Flux's --concurrent, Argo CD's --operation-processors).",
        ),
    ] = 5,
    write_workers: Annotated[
        int,
        typer.Option(
            "--write-workers",
            envvar="MOORAGE_AGENT_WRITE_WORKERS",
            min=1,
            max=50,
            help="Write jobs at once: writes of different add-ons run in parallel, one add-on (and a "
            "sync of the whole definition, or a sweep) never beside another write of it.",
        ),
    ] = 5,
    nats_max_workers: Annotated[
        int,
        typer.Option(
            "--nats-max-workers",
            envvar="MOORAGE_AGENT_NATS_MAX_WORKERS",
            min=1,
            max=500,
            help="Jobs taken from the queue at once (running, or waiting for a slot or for their add-on); "
            "the rest wait in the stream.",
        ),
    ] = 15,
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
    leader_election: Annotated[
        str,
        typer.Option(
            "--leader-election",
            envvar="MOORAGE_AGENT_LEADER_ELECTION",
            help="auto | on | off. Several replicas elect one leader through a Lease: it sweeps and runs "
            "writes, every replica serves reads. auto: on when running in a pod.",
        ),
    ] = "auto",
    lease_namespace: Annotated[
        str | None,
        typer.Option(
            "--lease-namespace",
            envvar="MOORAGE_AGENT_LEASE_NAMESPACE",
            help="Namespace of the Lease (default: the pod's, or the kubeconfig context's).",
            show_default=False,
        ),
    ] = None,
    lease_name: Annotated[
        str | None,
        typer.Option(
            "--lease-name",
            envvar="MOORAGE_AGENT_LEASE_NAME",
            help="Name of the Lease (default: moorage-agent-<cluster id>).",
            show_default=False,
        ),
    ] = None,
    lease_seconds: Annotated[
        float,
        typer.Option(
            "--lease-seconds",
            envvar="MOORAGE_AGENT_LEASE_SECONDS",
            min=3,
            max=600,
            help="Lease duration: a dead leader is replaced within about this long; renewed every "
            "2/15 of it, given up after 2/3 of it without a renewal.",
        ),
    ] = 15.0,
    public_ip_reporting: Annotated[
        bool,
        typer.Option(
            "--public-ip-reporting/--no-public-ip-reporting",
            envvar="MOORAGE_AGENT_PUBLIC_IP_REPORTING",
            help="Look the cluster's public IP up (--public-ip-lookup-url) and report it with the "
            "heartbeat. Off: no lookup request at all.",
        ),
    ] = False,
    public_ip_lookup_url: Annotated[
        str,
        typer.Option(
            "--public-ip-lookup-url",
            envvar="MOORAGE_AGENT_PUBLIC_IP_LOOKUP_URL",
            help="A service that answers the caller's IP address as text.",
        ),
    ] = "https://api.ipify.org",
    kube_request_max_attempts: Annotated[
        int,
        typer.Option(
            "--kube-request-max-attempts",
            envvar=["MOORAGE_AGENT_KUBE_REQUEST_MAX_ATTEMPTS", "KUBERNETES_REQUEST_MAX_ATTEMPTS"],
            min=1,
            max=20,
            help="Tries of a Kubernetes GET or LIST whose connection broke (not a timeout).",
        ),
    ] = 3,
    recover_stuck: Annotated[
        bool,
        typer.Option(
            "--recover-stuck/--no-recover-stuck",
            envvar=["MOORAGE_AGENT_RECOVER_STUCK", "RECONCILE_AUTO_HEAL_ENABLED"],
            help="The sweep unlocks and upgrades (else rolls back) a release stuck in pending-* for "
            "10 minutes. Off: it reports it and leaves it.",
        ),
    ] = True,
    kube_proxy_unary: Annotated[
        int,
        typer.Option(
            "--kube-proxy-unary-concurrency",
            envvar=["MOORAGE_KUBE_PROXY_UNARY_CONCURRENCY", "KUBE_PROXY_UNARY_CONCURRENCY"],
            min=1,
            max=10_000,
            help="kubectl through Moorage: plain requests at once (more answer 503).",
        ),
    ] = 64,
    kube_proxy_stream: Annotated[
        int,
        typer.Option(
            "--kube-proxy-stream-concurrency",
            envvar=["MOORAGE_KUBE_PROXY_STREAM_CONCURRENCY", "KUBE_PROXY_STREAM_CONCURRENCY"],
            min=1,
            max=10_000,
            help="kubectl through Moorage: watches, logs and exec at once (more answer 503).",
        ),
    ] = 128,
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

    from moorage.agent import publicip
    from moorage.agent.kubeproxy import Limits
    from moorage.agent.leader import Timing
    from moorage.agent.runner import Agent, AgentSettings, RegistrationError
    from moorage.agent.transport import TransportRefused, check_url

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not token:
        typer.echo("error: an agent token is needed: --token or $MOORAGE_AGENT_TOKEN", err=True)
        raise typer.Exit(2)
    election = {"auto": None, "on": True, "off": False}.get(leader_election.lower())
    if leader_election.lower() not in ("auto", "on", "off"):
        typer.echo(f"error: --leader-election {leader_election!r}: use auto, on or off", err=True)
        raise typer.Exit(2)
    try:
        publicip.check_url(public_ip_lookup_url)
    except publicip.LookupUrlError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    settings = AgentSettings(
        server=server,
        token=token,
        kubeconfig=kubeconfig,
        read_workers=read_workers,
        write_workers=write_workers,
        concurrency=concurrency,
        nats_max_workers=nats_max_workers,
        leader_election=election,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        lease=Timing.of(lease_seconds),
        public_ip_reporting=public_ip_reporting,
        public_ip_lookup_url=public_ip_lookup_url,
        kube_request_attempts=kube_request_max_attempts,
        recover_stuck=recover_stuck,
        kube_proxy=Limits(unary=kube_proxy_unary, stream=kube_proxy_stream),
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
