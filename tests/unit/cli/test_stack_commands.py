"""`moorage stacks …` against the real server app (in-process) with a real Git server and chart
repository, and `moorage values encrypt` with the real sops binary."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from moorage.cli import client as client_module
from moorage.devcluster.gitserver import GitServer, WorkTree
from moorage.server.app import create_app
from moorage.server.db import SessionFactory
from moorage.server.settings import ServerSettings
from moorage.spec.report import Location
from moorage.spec.sops import decrypt_yaml
from tests.unit.cli.conftest import SERVER, Cli, InProcess, as_json, ok
from tests.unit.server.conftest import ADMIN_TOKEN, EXAMPLE_REPO, Clock, FakeBus
from tests.unit.server.stacks.test_stacks_api import PATH, chart_url, definition

__all__ = ["chart_url"]  # a fixture

KEY = EXAMPLE_REPO / "keys" / "test-only.agekey"
SECRET = "Cli-Plaintext-Needle-42"


@pytest.fixture
def origin(tmp_path: Path, chart_url: str) -> Iterator[WorkTree]:
    with GitServer(tmp_path / "git") as server:
        work = WorkTree(tmp_path / "work", server.create_repo("org/defs.git"))
        work.commit_and_push(
            {PATH: definition("c1", chart_url), ".sops.yaml": (EXAMPLE_REPO / ".sops.yaml").read_text()},
            "first",
        )
        yield work


@pytest.fixture
def server_app(
    tmp_path: Path,
    factory: SessionFactory,
    bus: FakeBus,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    origin: WorkTree,
) -> FastAPI:
    settings = ServerSettings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'moorage.db'}",
        bootstrap_token=ADMIN_TOKEN,
        nats_url="nats://127.0.0.1:4222",
        public_url=SERVER,
        egress_allow="loopback",
    )
    app = create_app(settings, factory, bus, clock=clock, expire_jobs=False, run_gitops=False)
    monkeypatch.setattr(client_module, "transport_factory", lambda: InProcess(app))
    return app


def test_stacks_add_an_addon_preview_then_save_then_set_secret_values(
    cli: Cli, origin: WorkTree, tmp_path: Path
) -> None:
    ok(cli("cluster", "register", "c1"))
    ok(cli("cluster", "connect", "c1", "--url", origin.remote_url))
    values = tmp_path / "values.yaml"
    values.write_text("replicas: 2\nlogLevel: info\n")
    args = ["stacks", "add-addon", "c1", "base", "--name", "strict", "--chart", "strict"]
    args += ["--version", "1.0.0", "--registry", "local", "-n", "strict", "--values", str(values)]
    preview = ok(cli(*args, "--preview"))
    assert "+        - name: strict\n" in preview.stdout
    assert "nothing was committed" in preview.stdout
    assert "release strict strict 1.0.0 in strict: created" in preview.stdout
    # no agent: the charts' objects are not rendered, and the preview says why
    assert (
        "  objects not rendered: the agent of cluster c1 is not connected (last heartbeat: never)"
        in preview.stdout
    )

    saved = ok(cli(*args))
    assert "committed " in saved.stdout
    assert "c1: 2 stack changes" in saved.stdout
    listed = as_json(cli("stacks", "list", "c1", "-o", "json"))
    assert [a["name"] for a in listed["stacks"][0]["addons"]] == ["strict"]

    values.write_text("replicas: 50\nlogLevel: info\n")
    refused = cli("stacks", "set-values", "c1", "base", "strict", "--values", str(values))
    assert refused.exit_code == 1
    assert f"{PATH}:" in refused.output
    assert "replicas" in refused.output
    assert "nothing was committed" in refused.output

    values.write_text(f"replicas: 2\nlogLevel: {SECRET}\n")
    secret = ok(
        cli("stacks", "set-values", "c1", "base", "strict", "--values", "-", "--secret", "logLevel",
            stdin=values.read_text())
    )  # fmt: skip
    assert SECRET not in secret.output
    origin.git("pull", "--quiet")
    encrypted = (origin.path / "clusters/c1/values/strict.enc.yaml").read_text()
    assert "logLevel: ENC[" in encrypted
    back = decrypt_yaml(encrypted, Location("x"), env={"SOPS_AGE_KEY_FILE": str(KEY), "PATH": "/usr/bin"})
    assert f"logLevel: {SECRET}" in back

    same = cli("stacks", "set-version", "c1", "base", "strict", "1.0.0")
    assert same.exit_code == 1
    assert "the edit changes nothing" in same.output


def test_values_encrypt_uses_the_nearest_sops_yaml_and_keeps_keys_readable(cli: Cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "values").mkdir(parents=True)
    (repo / ".sops.yaml").write_text((EXAMPLE_REPO / ".sops.yaml").read_text())
    file = repo / "values" / "db.enc.yaml"
    file.write_text(f"user: app\ndb:\n  password: {SECRET}\n")
    printed = ok(cli("values", "encrypt", str(file), "--key", "db.password"))
    assert SECRET not in printed.stdout
    assert "user: app\n" in printed.stdout
    assert "password: ENC[AES256_GCM," in printed.stdout
    assert file.read_text().endswith(f"{SECRET}\n")  # printed only

    ok(cli("values", "encrypt", str(file), "--key", "password", "-i"))
    env = {"SOPS_AGE_KEY_FILE": str(KEY), "PATH": "/usr/bin"}
    back = decrypt_yaml(file.read_text(), Location("x"), env=env)
    assert f"password: {SECRET}" in back

    other = tmp_path / "plain.yaml"
    other.write_text("a: 1\n")
    missing = cli("values", "encrypt", str(other), "--key", "nope")
    assert missing.exit_code == 2
    assert "no key of" in missing.output
    no_rule = cli("values", "encrypt", str(other), "--key", "a")
    assert no_rule.exit_code == 2
    assert "give --recipient AGE" in no_rule.output


def test_stacks_save_and_use_a_template(cli: Cli, origin: WorkTree) -> None:
    ok(cli("cluster", "register", "c1"))
    ok(cli("cluster", "connect", "c1", "--url", origin.remote_url))
    saved = ok(cli("stacks", "save-template", "c1", "base", "stacks/base.yaml"))
    assert "stacks/base.yaml" in saved.stdout
    listed = as_json(cli("stacks", "list", "c1", "-o", "json"))
    assert listed["stacks"][0]["file"] == "stacks/base.yaml"
    again = cli("stacks", "use-template", "c1", "stacks/base.yaml", "--set", "TEAM=one")
    assert again.exit_code == 1
    assert "already has a stack named 'base'" in again.output
    bad = cli("stacks", "use-template", "c1", "stacks/base.yaml", "--set", "TEAM")
    assert bad.exit_code == 2
    assert "--set takes NAME=VALUE" in bad.output


def test_stacks_add_addon_to_a_new_branch_prints_the_pull_request_link(
    cli: Cli, origin: WorkTree, tmp_path: Path
) -> None:
    ok(cli("cluster", "register", "c1"))
    ok(cli("cluster", "connect", "c1", "--url", origin.remote_url))
    values = tmp_path / "values.yaml"
    values.write_text("replicas: 2\nlogLevel: info\n")
    args = [
        "stacks",
        "add-addon",
        "c1",
        "base",
        "--name",
        "strict",
        "--chart",
        "strict",
        "--version",
        "1.0.0",
    ]
    args += ["--registry", "local", "-n", "strict", "--values", str(values), "--branch", "try/strict"]
    saved = ok(cli(*args))
    assert "on the new branch try/strict; open its pull request: " in saved.stdout
    assert "/compare/main...try/strict?expand=1" in saved.stdout
    assert "not opened by Moorage: the connection has no credential" in saved.stdout
    assert "nothing syncs until it is merged into main" in saved.stdout
    assert origin.git("ls-remote", "origin", "refs/heads/try/strict").strip()
