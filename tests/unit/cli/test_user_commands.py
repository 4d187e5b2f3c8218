"""`moorage users create | list | delete | passwd` against the real server app in-process (see conftest.py).
Each password is checked by signing in with it through the API, and never shows up in any output."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import Result

from moorage.cli import user_commands
from moorage.server import sessions
from moorage.server.sessions import Scrypt
from tests.unit.cli.conftest import Cli, as_json, ok
from tests.unit.server.conftest import ADMIN_TOKEN

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another long passphrase 42"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "SCRYPT", Scrypt(log_n=4, r=8, p=1))


def failed(result: Result, code: int = 1) -> Result:
    assert result.exit_code == code, result.output
    return result


def signs_in(app: FastAPI, name: str, password: str) -> bool:
    r = TestClient(app).post("/api/v1/session", json={"username": name, "password": password})
    return r.status_code == 200


def test_create_from_stdin_list_and_sign_in(cli: Cli, server_app: FastAPI) -> None:
    res = ok(cli("users", "create", "alice", "--role", "write", "--password-stdin", stdin=PASSWORD + "\n"))
    assert "created user alice with role write" in res.stdout
    assert PASSWORD not in res.output
    assert signs_in(server_app, "alice", PASSWORD)  # the final newline was not part of it

    table = ok(cli("users", "list")).stdout
    assert "alice" in table
    assert "write" in table
    assert "active" in table
    listing = as_json(cli("users", "list", "-o", "json"))
    assert [u["username"] for u in listing] == ["alice"]
    assert "password_hash" not in listing[0]


def test_create_from_an_environment_variable(cli: Cli, server_app: FastAPI) -> None:
    res = ok(
        cli("users", "create", "bob", "-r", "read", "--password-env", "BOB_PW", env={"BOB_PW": PASSWORD})
    )
    assert PASSWORD not in res.output
    assert signs_in(server_app, "bob", PASSWORD)
    unset = failed(cli("users", "create", "carl", "-r", "read", "--password-env", "NOT_SET_ANYWHERE"), 2)
    assert "the environment variable NOT_SET_ANYWHERE is not set" in unset.stderr


def test_create_asks_twice_at_a_terminal(
    cli: Cli, server_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(user_commands, "_interactive", lambda: True)
    typed = f"{PASSWORD}\nnot the same password\n{PASSWORD}\n{PASSWORD}\n"
    res = ok(cli("users", "create", "alice", "--role", "admin", stdin=typed))
    assert "do not match" in res.output.lower()
    assert PASSWORD not in res.output  # hidden input is not echoed
    assert signs_in(server_app, "alice", PASSWORD)


def test_no_terminal_and_no_option_is_a_usage_error(cli: Cli) -> None:
    res = failed(cli("users", "create", "alice", "--role", "read", stdin=""), 2)
    assert "use --password-stdin or --password-env VAR" in res.stderr
    both = failed(
        cli("users", "create", "a", "-r", "read", "--password-stdin", "--password-env", "X", stdin=PASSWORD),
        2,
    )
    assert "not both" in both.stderr
    empty = failed(cli("users", "create", "alice", "--role", "read", "--password-stdin", stdin="\n"), 2)
    assert "the password is empty" in empty.stderr
    role = failed(cli("users", "create", "alice", "--role", "root", "--password-stdin", stdin=PASSWORD), 2)
    assert "root" in role.stderr


def test_server_rules_are_shown(cli: Cli) -> None:
    short = failed(cli("users", "create", "alice", "--role", "read", "--password-stdin", stdin="tooshort!"))
    assert "a password needs at least 12 characters" in short.stderr
    assert "tooshort!" not in short.output
    ok(cli("users", "create", "alice", "--role", "read", "--password-stdin", stdin=PASSWORD))
    again = failed(cli("users", "create", "alice", "--role", "read", "--password-stdin", stdin=PASSWORD))
    assert "a user named 'alice' already exists" in again.stderr


def test_passwd_sets_a_new_password(cli: Cli, server_app: FastAPI) -> None:
    ok(cli("users", "create", "alice", "--role", "read", "--password-stdin", stdin=PASSWORD))
    res = ok(cli("users", "passwd", "alice", "--password-stdin", stdin=NEW_PASSWORD))
    assert "set the password of alice; their sessions ended" in res.stdout
    assert NEW_PASSWORD not in res.output
    assert signs_in(server_app, "alice", NEW_PASSWORD)
    assert not signs_in(server_app, "alice", PASSWORD)
    missing = failed(cli("users", "passwd", "nobody", "--password-stdin", stdin=NEW_PASSWORD))
    assert "no user named 'nobody'" in missing.stderr


def test_delete(cli: Cli, server_app: FastAPI) -> None:
    ok(cli("users", "create", "alice", "--role", "read", "--password-stdin", stdin=PASSWORD))
    aborted = failed(cli("users", "delete", "alice", stdin="n\n"))
    assert "nothing was deleted" in aborted.stderr
    res = ok(cli("users", "delete", "alice", "--yes"))
    assert "deleted user alice" in res.stdout
    assert not signs_in(server_app, "alice", PASSWORD)
    assert "no users yet" in ok(cli("users", "list")).stdout
    assert "no user named 'alice'" in failed(cli("users", "delete", "alice", "-y")).stderr


def test_needs_an_admin_token(cli: Cli, server_app: FastAPI) -> None:
    admin = TestClient(server_app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    writer = admin.post("/api/v1/tokens", json={"name": "ci", "scopes": ["write"]}).json()["token"]
    res = failed(cli("users", "list", token=writer))
    assert "token lacks scope 'admin'" in res.stderr
    res = failed(
        cli("users", "create", "alice", "-r", "read", "--password-stdin", stdin=PASSWORD, token=writer)
    )
    assert PASSWORD not in res.output
