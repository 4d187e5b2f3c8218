"""`moorage health test`: what Moorage's health rules (and a user check) say about an object."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Health rules and user health checks (Lua, CEL).", no_args_is_help=True)

EXIT_USAGE = 2


def _objects(path: Path, kind: str, api_version: str | None) -> list[dict[str, Any]]:
    """The objects in a YAML or JSON file (several documents, or a List), of ``kind`` only."""
    import json

    import yaml

    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        typer.echo(f"error: cannot read {path}: {e}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        docs = [json.loads(raw)] if raw.lstrip().startswith("{") else list(yaml.safe_load_all(raw))
    except (ValueError, yaml.YAMLError) as e:
        typer.echo(f"error: {path} is not YAML or JSON: {e}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    found: list[dict[str, Any]] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and isinstance(doc.get("items"), list)
            and str(doc.get("kind", "")).endswith("List")
        ):
            found.extend(item for item in doc["items"] if isinstance(item, dict))
        elif isinstance(doc, dict):
            found.append(doc)
    chosen = []
    for obj in found:
        if obj.get("kind") not in (None, kind):
            continue
        obj = {**obj, "kind": kind}
        if api_version is not None:
            obj["apiVersion"] = api_version
        elif "apiVersion" not in obj:
            typer.echo(f"error: the object in {path} has no apiVersion; pass --api-version", err=True)
            raise typer.Exit(EXIT_USAGE)
        chosen.append(obj)
    if not chosen:
        typer.echo(f"error: {path} holds no object of kind {kind}", err=True)
        raise typer.Exit(EXIT_USAGE)
    return chosen


def health_test_command(
    kind: Annotated[str, typer.Option("--kind", help="The object's kind, e.g. Certificate.")],
    object_file: Annotated[
        Path, typer.Option("--object", help="The object as YAML or JSON (kubectl get -o yaml), or a List.")
    ],
    api_version: Annotated[
        str | None,
        typer.Option("--api-version", help="group/version, when the file lacks it or to override it."),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            help="A user check to try: one entry of spec.health_checks, or a list of them (YAML).",
        ),
    ] = None,
) -> None:
    """Print what Moorage's rules, and the given check, say about an object: status and reason."""
    from datetime import UTC, datetime

    from moorage.engine.health import assess, group_kind, has_rule
    from moorage.engine.health.custom import Checks, ChecksFileError, load_file, not_covered

    objects = _objects(object_file, kind, api_version)
    checks: Checks | None = None
    if check is not None:
        try:
            checks = load_file(check)
        except ChecksFileError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
    now = datetime.now(UTC)
    for obj in objects:
        found = obj.get("metadata")
        metadata: dict[str, Any] = found if isinstance(found, dict) else {}
        name = "/".join(str(p) for p in (metadata.get("namespace"), metadata.get("name")) if p) or "(no name)"
        group, k = group_kind(obj)
        typer.echo(f"{obj.get('apiVersion')} {k} {name}")
        user = checks.for_object(obj) if checks is not None else None
        if checks is not None:
            if user is None:
                typer.echo(f"  check:          none of {check} is for {group + '/' if group else ''}{k}")
            else:
                typer.echo(f"  check:          {assess(obj, now, checks=checks)}")
        rule = "dedicated rule" if has_rule(group, k) else "generic rule (kstatus conventions)"
        typer.echo(f"  moorage rules:  {assess(obj, now)}  [{rule}]")
        if user is None:
            for gap in not_covered([obj], now, checks):
                typer.echo(f"  not covered: judged by the generic rule: {gap.answer}")
                typer.echo(
                    "    (no dedicated rule, no user check, no status conditions to read: add a check)"
                )


def register(root: typer.Typer) -> None:
    app.command("test")(health_test_command)
    root.add_typer(app, name="health")
