"""`moorage argocd-plugin generate`: the config-management plugin argocd-cmp-server runs for add-ons
with SOPS-encrypted values on the ArgoCD engine (engine/argocd_plugin.py). It reads Argo CD's
plugin environment, renders the chart in the current directory, and prints the manifests."""

import os
import sys
from pathlib import Path

import typer

plugin_app = typer.Typer(
    help="Moorage's Argo CD config-management plugin (run by argocd-cmp-server, not by hand).",
    no_args_is_help=True,
)


@plugin_app.command("generate")
def generate_command() -> None:
    """Decrypt the add-on's SOPS values in memory and print `helm template` of the chart here."""
    import asyncio

    from moorage.engine.argocd_plugin import PluginError, generate
    from moorage.helm.cli import Helm

    try:
        manifests = asyncio.run(generate(os.environ, Path.cwd(), Helm()))
    except PluginError as e:
        print(f"moorage-sops: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    sys.stdout.write(manifests)


def register(app: typer.Typer) -> None:
    app.add_typer(plugin_app, name="argocd-plugin", hidden=True)
