"""`moorage server`: the control plane."""

import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer


def server_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the API.")] = 8000,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="State: SQLite file, embedded NATS.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="e.g. postgresql+psycopg://… (default: SQLite in --data-dir)"),
    ] = None,
    nats_url: Annotated[
        str | None, typer.Option("--nats-url", help="An existing NATS with JetStream (default: start one).")
    ] = None,
    agent_nats_url: Annotated[
        str | None,
        typer.Option("--agent-nats-url", help="The NATS URL agents should use, if not --nats-url."),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="Serve HTTPS with this certificate (PEM, chain) ($MOORAGE_TLS_CERT); without it plain "
            "HTTP, for loopback or behind TLS termination (set $MOORAGE_PUBLIC_URL to https://…).",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", help="The key of --tls-cert (PEM) ($MOORAGE_TLS_KEY)."),
    ] = None,
    nats_ca: Annotated[
        Path | None,
        typer.Option(
            "--nats-ca",
            help="The CA (PEM) of --nats-url tls://… ($MOORAGE_NATS_CA); handed to agents too.",
        ),
    ] = None,
) -> None:
    """Run the control plane: API, database, NATS (embedded unless --nats-url)."""
    # here, not at the top: FastAPI, SQLAlchemy, Alembic and nats load only when the server runs
    import asyncio

    from moorage.server.main import serve
    from moorage.server.settings import ServerSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings.from_env(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        nats_url=nats_url,
        agent_nats_url=agent_nats_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        nats_ca=nats_ca,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))


def register(app: typer.Typer) -> None:
    app.command("server")(server_command)
