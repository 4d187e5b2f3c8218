"""The `moorage` command.

Every command module is imported here, so each must be cheap to import: at its top only the standard
library, typer, rich and the CLI's own light modules (`client`, `output`). Whatever a command needs
beyond that (moorage.server, moorage.agent, the engine, helm, kube, moorage.spec, moorage.devcluster,
httpx, yaml, asyncio) is imported inside the function that runs it, so `moorage --help` and the
client commands start at once. tests/unit/cli/test_startup_imports.py checks this in a fresh process.
"""

from pathlib import Path
from typing import Annotated

import typer

from moorage.cli import (
    addon_commands,
    agent_commands,
    argocd_plugin_commands,
    chart_commands,
    client,
    devcluster,
    engine_commands,
    gitops_commands,
    health_commands,
    kube_commands,
    remote_commands,
    server_commands,
    spec_commands,
    stack_commands,
    user_commands,
)

app = typer.Typer(
    name="moorage",
    help="Moorage: GitOps for Kubernetes add-ons with real Helm releases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            help=f"Trust only this CA (PEM) for an https:// server (default: ${client.CA_ENV}, else the "
            "system's CAs).",
            show_default=False,
        ),
    ] = None,
) -> None:
    client.ca_option = ca


app.add_typer(devcluster.app, name="devcluster")
spec_commands.register(app)
engine_commands.register(app)
agent_commands.register(app)
server_commands.register(app)
remote_commands.register(app)
addon_commands.register(app)
gitops_commands.register(app)
user_commands.register(app)
health_commands.register(app)
chart_commands.register(app)
kube_commands.register(app)
argocd_plugin_commands.register(app)
stack_commands.register(app)


if __name__ == "__main__":
    app()
