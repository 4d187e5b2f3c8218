"""The `moorage` command."""

import typer

from moorage.cli import devcluster

app = typer.Typer(
    name="moorage",
    help="Moorage: GitOps for Kubernetes add-ons with real Helm releases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(devcluster.app, name="devcluster")


if __name__ == "__main__":
    app()
