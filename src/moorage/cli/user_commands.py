"""`moorage users create | list | delete | passwd`: the web UI's users on a Moorage server (the API token
must have the admin scope). Tables by default; `-o json|yaml` prints the API's JSON as it came.

A password is never a command-line argument, which would land in the shell's history and in the
process list: it is typed twice at a hidden prompt, read from stdin with `--password-stdin` (one line;
the final newline is dropped), or taken from the environment variable named by `--password-env`."""

import os
import sys
from enum import StrEnum
from typing import Annotated, NoReturn

import typer
from rich.table import Table

from moorage.cli.client import Remote, api_path, handled
from moorage.cli.output import Output, OutputOpt, dump, err, esc, out, when
from moorage.cli.remote_commands import EXIT_USAGE, ServerOpt, TokenOpt, YesOpt, delete_confirmed


class Role(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


users_app = typer.Typer(
    name="users",
    help="Users of the web UI (username, password, role read|write|admin); needs an admin token.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The username (lowercase letters, digits, '.', '_', '-').")]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from stdin (one line)."),
]
PasswordEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--password-env",
        metavar="VAR",
        help="Read the password from this environment variable. Without either option: ask twice.",
        show_default=False,
    ),
]


def _usage(message: str) -> NoReturn:
    err.print(f"error: {message}", style="red", markup=False)
    raise typer.Exit(EXIT_USAGE)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _read_password(from_stdin: bool, env: str | None) -> str:
    """The new password: from the environment variable `env`, from stdin, or asked twice (hidden)."""
    if from_stdin and env is not None:
        _usage("give --password-stdin or --password-env, not both")
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            _usage(f"the environment variable {env} is not set")
        password = value
    elif from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    elif _interactive():
        typed: str = typer.prompt(
            "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
        )
        password = typed
    else:
        _usage("no terminal to ask for the password; use --password-stdin or --password-env VAR")
    if not password:
        _usage("the password is empty")
    return password


@users_app.command("create")
def users_create(
    name: NameArg,
    role: Annotated[Role, typer.Option("--role", "-r", help="read, write or admin.", show_default=False)],
    password_stdin: PasswordStdinOpt = False,
    password_env: PasswordEnvOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a user who signs in to the web UI with a password (at least 12 characters)."""
    remote = Remote.from_options(server, token)
    password = _read_password(password_stdin, password_env)
    with handled(remote):
        _, data = remote.call(
            "POST", "/users", body={"username": name, "role": role.value, "password": password}
        )
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"created user [bold]{esc(data['username'])}[/] with role {esc(data['role'])}")


@users_app.command("list")
def users_list(server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = Output.table) -> None:
    """Every user with their role and last sign-in."""
    remote = Remote.from_options(server, token)
    with handled(remote):
        data = remote.get("/users")
    if output is not Output.table:
        dump(data, output)
        return
    if not data:
        out.print("no users yet; add one with `moorage users create NAME --role read|write|admin`")
        return
    table = Table("username", "role", "state", "created", "last sign-in")
    for u in data:
        table.add_row(
            esc(u["username"]),
            esc(u["role"]),
            "[red]disabled[/]" if u.get("disabled") else "active",
            when(u.get("created_at")),
            when(u.get("last_login_at")),
        )
    out.print(table)


@users_app.command("delete")
def users_delete(
    name: NameArg,
    yes: YesOpt = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Delete a user; their sessions end at once."""
    remote = Remote.from_options(server, token)
    data = delete_confirmed(remote, f"user {name!r}", api_path("users", name), yes)
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"deleted user {esc(name)}; their sessions ended")


@users_app.command("passwd")
def users_passwd(
    name: NameArg,
    password_stdin: PasswordStdinOpt = False,
    password_env: PasswordEnvOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Set a user's password; they sign in again everywhere."""
    remote = Remote.from_options(server, token)
    password = _read_password(password_stdin, password_env)
    with handled(remote):
        _, data = remote.call("POST", api_path("users", name, "password"), body={"password": password})
    if output is not Output.table:
        dump(data, output)
        return
    out.print(f"set the password of {esc(name)}; their sessions ended")


def register(app: typer.Typer) -> None:
    """Add `users` to the main `moorage` app."""
    app.add_typer(users_app, name="users")
