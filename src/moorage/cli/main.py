"""The `moorage` command."""

import typer

from moorage.cli import (
    agent_commands,
    devcluster,
    engine_commands,
    gitops_commands,
    remote_commands,
    server_commands,
    spec_commands,
)

app = typer.Typer(
    name="moorage",
    help="Moorage: GitOps for Kubernetes add-ons with real Helm releases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(devcluster.app, name="devcluster")
spec_commands.register(app)
engine_commands.register(app)
agent_commands.register(app)
server_commands.register(app)
remote_commands.register(app)
gitops_commands.register(app)


if __name__ == "__main__":
    app()
