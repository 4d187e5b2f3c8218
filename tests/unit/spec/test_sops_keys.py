"""validate without an age key: SOPS files for age recipients are reported as not checked; with a
key configured (or --require-key), every decryption failure is still an error (issue 16, item 7)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
from pyrage import x25519
from typer.testing import CliRunner

from moorage.cli.spec_commands import register
from moorage.spec.loader import LoadOptions, load
from tests.unit.spec.helpers import EXAMPLE, EXAMPLE_KEY

SECRET = "s3cr3t-Example-Passw0rd"


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return tmp_path


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_validate_without_a_key_warns_and_passes(cli: typer.Typer, no_key: Path) -> None:
    res = CliRunner().invoke(cli, ["validate", str(EXAMPLE)])
    assert res.exit_code == 0, res.output
    assert "values/stateful.enc.yaml:1:1: warning: not decrypted: no age key is available" in res.output
    assert "0 error(s), 1 warning(s)" in res.output


def test_render_without_a_key_masks(cli: typer.Typer, no_key: Path) -> None:
    res = CliRunner().invoke(cli, ["render", str(EXAMPLE)])
    assert res.exit_code == 0, res.output
    assert "password: '********'" in res.output


def test_require_key_makes_it_an_error(cli: typer.Typer, no_key: Path) -> None:
    res = CliRunner().invoke(cli, ["validate", "--require-key", str(EXAMPLE)])
    assert res.exit_code == 1
    assert "error: no age key is available to decrypt this SOPS file" in res.output


def test_a_named_key_file_that_is_missing_is_an_error(
    cli: typer.Typer, no_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(no_key / "absent.agekey"))
    res = CliRunner().invoke(cli, ["validate", str(EXAMPLE)])
    assert res.exit_code == 1
    assert "no age key is available to decrypt this SOPS file" in res.output


def test_a_wrong_key_is_an_error(cli: typer.Typer, no_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = no_key / "wrong.agekey"
    wrong.write_text(str(x25519.Identity.generate()) + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(wrong))
    res = CliRunner().invoke(cli, ["validate", str(EXAMPLE)])
    assert res.exit_code == 1
    assert "cannot decrypt this file" in res.output


def test_sops_default_keys_file_is_used(cli: typer.Typer, no_key: Path) -> None:
    keys = no_key / ".config" / "sops" / "age" / "keys.txt"
    keys.parent.mkdir(parents=True)
    shutil.copy(EXAMPLE_KEY, keys)
    res = CliRunner().invoke(cli, ["validate", str(EXAMPLE)])
    assert res.exit_code == 0, res.output
    assert "0 error(s), 0 warning(s)" in res.output
    assert SECRET not in res.output


def test_non_age_recipients_are_always_tried(no_key: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    enc = repo / "values" / "stateful.enc.yaml"
    # a PGP recipient besides age: a key may come from a keyring, so the failure is an error
    enc.write_text(enc.read_text().replace("\nsops:\n", "\nsops:\n    pgp:\n        - fp: ABCDEF\n", 1))
    result = load(repo, LoadOptions(key_optional=True))
    assert [i.code for i in result.report.errors] == ["sops-decrypt"]


def test_engine_loads_still_need_the_key(no_key: Path) -> None:
    result = load(EXAMPLE)  # what `moorage sync` and the agent do
    assert [i.code for i in result.report.errors] == ["sops-decrypt"]
