"""`moorage validate` and `moorage render`: offline checks and the resolved plan of a definition."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # imported where a definition is loaded: pydantic models cost more than `moorage --help`
    from moorage.spec.loader import LoadResult

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _parse_vars(items: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--var")
        result[name] = value
    return result


def _load(
    path: Path, variables: list[str] | None, no_decrypt: bool, strict: bool, *, key_optional: bool = False
) -> LoadResult:
    from moorage.spec.loader import LoadOptions, UsageError, load

    options = LoadOptions(
        cluster_variables=_parse_vars(variables),
        decrypt=not no_decrypt,
        strict_secrets=strict,
        strict_variables=strict,
        key_optional=key_optional,
    )
    try:
        return load(path, options)
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


PathArg = Annotated[
    Path, typer.Argument(help="Root ImportCluster file, or the repository folder holding it.")
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("--var", help="Cluster variable NAME=VALUE (repeatable).", show_default=False),
]
NoDecryptOpt = Annotated[
    bool, typer.Option("--no-decrypt", help="Do not decrypt SOPS content (no key needed).")
]
RequireKeyOpt = Annotated[
    bool,
    typer.Option(
        "--require-key",
        help="Fail when SOPS content cannot be decrypted even if no age key is configured "
        "(without it, SOPS files are then reported as not checked).",
    ),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Treat plaintext-looking secrets and unresolved variables as errors.")
]


def validate_command(
    path: PathArg,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")] = OutputFormat.text,
    var: VarOpt = None,
    no_decrypt: NoDecryptOpt = False,
    strict: StrictOpt = False,
    require_key: RequireKeyOpt = False,
    charts: Annotated[
        bool,
        typer.Option(
            "--charts",
            help="Also fetch each add-on's chart (public registries) and check its values against the "
            "chart's values.schema.json.",
        ),
    ] = False,
) -> None:
    """Validate a cluster definition and list every problem (exit 0 valid, 1 invalid, 2 usage error).

    SOPS content is decrypted with the configured age key (SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or sops'
    keys.txt); with no key configured it is reported as not checked (a warning)."""
    result = _load(path, var, no_decrypt, strict, key_optional=not require_key)
    if charts and result.resolved is not None:
        import asyncio

        from moorage.charts.schemacheck import check_charts

        result.report.extend(asyncio.run(check_charts(result.resolved)))
    if output is OutputFormat.json:
        typer.echo(result.report.to_json())
    else:
        typer.echo(result.report.to_text())
    raise typer.Exit(EXIT_VALID if result.ok else EXIT_INVALID)


def render_command(
    path: PathArg,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="text (YAML) or json")
    ] = OutputFormat.text,
    full: Annotated[bool, typer.Option("--full", help="Show whole manifest objects, not a summary.")] = False,
    var: VarOpt = None,
    no_decrypt: NoDecryptOpt = False,
) -> None:
    """Show the resolved plan: waves, order, objects, charts and values (secrets masked)."""
    from moorage.spec.render import render_plan, render_yaml

    result = _load(path, var, no_decrypt, False, key_optional=True)
    if not result.ok or result.plan is None or result.resolved is None:
        typer.echo(result.report.to_text(), err=True)
        raise typer.Exit(EXIT_INVALID)
    if output is OutputFormat.json:
        typer.echo(json.dumps(render_plan(result.plan, result.resolved, full_objects=full), indent=2))
    else:
        typer.echo(render_yaml(result.plan, result.resolved, full_objects=full), nl=False)


def register(app: typer.Typer) -> None:
    """Add `validate` and `render` to the main `moorage` app."""
    app.command("validate")(validate_command)
    app.command("render")(render_command)
