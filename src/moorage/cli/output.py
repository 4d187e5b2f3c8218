"""What the remote commands print: the consoles, `-o table|json|yaml`, state colours, escaping and
time formatting for rich tables, and compiler-style validation items.

Light on purpose (typer and rich only; yaml is imported when YAML is printed): every command module
imports this, and `moorage --help` must start at once (see tests/unit/cli/test_startup_imports.py)."""

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

out = Console(highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")]

STATE_STYLE = {
    "online": "green",
    "success": "green",
    "applied": "green",
    "unchanged": "dim",
    "Healthy": "green",
    "offline": "red",
    "never_connected": "yellow",
    "failed": "red",
    "critical": "red",
    "timeout": "red",
    "Degraded": "red",
    "Missing": "red",
    "running": "cyan",
    "stopping": "yellow",
    "cleanup": "yellow",
    "pending": "yellow",
    "blocked": "yellow",
    "cancelling": "yellow",
    "cancelled": "dim",
    "Progressing": "yellow",
}


def esc(text: Any) -> str:
    """A value as text for rich markup: its square brackets escaped; None is ''."""
    return "" if text is None else escape(str(text))


def styled(value: Any, styles: Mapping[str, str] = STATE_STYLE) -> str:
    """A state (online, failed, Healthy, …) escaped and coloured by `styles`."""
    text = "" if value is None else str(value)
    style = styles.get(text)
    return f"[{style}]{esc(text)}[/]" if style else esc(text)


def when(value: Any) -> str:
    """API timestamps (ISO 8601, UTC) shortened to 'YYYY-MM-DD HH:MM:SS'; '-' when absent."""
    if not isinstance(value, str) or not value:
        return "-"
    return value[:19].replace("T", " ")


def dump(data: Any, output: Output) -> None:
    """The API's JSON as it came, as JSON or YAML (`output` is not table)."""
    if output is Output.json:
        typer.echo(json.dumps(data, indent=2))
    else:
        import yaml  # only when YAML is asked for

        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


def _location(item: dict[str, Any], root: str) -> str:
    file = item.get("file") or root
    line = item.get("line") or 0
    column = item.get("column") or 0
    if line <= 0:
        return str(file)
    return f"{file}:{line}:{column}"


def format_issue(item: dict[str, Any], root: str) -> str:
    """One validation item the way compilers print them: `file:line:col: error: message (hint)`."""
    text = f"{_location(item, root)}: {item.get('severity') or 'error'}: {item.get('message', '')}"
    if item.get("path"):
        text += f" [{item['path']}]"
    if item.get("hint"):
        text += f" ({item['hint']})"
    return text
