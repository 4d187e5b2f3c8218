"""`moorage credentials create --kind helm`, `allow-host`, and `moorage charts search | versions | show`
against an in-process server whose global registry is a private chart repository on loopback."""

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from moorage.cli import client as client_module
from moorage.devcluster.chartsources import ChartRepo, serve_chart_repo
from moorage.server.app import create_app
from moorage.server.db import SessionFactory
from moorage.server.settings import ServerSettings
from tests.unit.cli.conftest import SERVER, Cli, InProcess, as_json, ok
from tests.unit.server.conftest import ADMIN_TOKEN, Clock, FakeBus

PASSWORD = "repo-password-0123456789"


def chart(version: str, values: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in (
            ("Chart.yaml", f"apiVersion: v2\nname: web\nversion: {version}\ndescription: a web server\n"),
            ("values.yaml", values),
            ("values.schema.json", '{"type": "object"}'),
        ):
            data = text.encode()
            info = tarfile.TarInfo(f"web/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[ChartRepo]:
    directory = tmp_path / "repo"
    directory.mkdir()
    entries = []
    for version, values in (("1.1.0", "replicas: 2\nimage: {tag: '1.1'}\n"), ("1.0.0", "replicas: 1\n")):
        data = chart(version, values)
        (directory / f"web-{version}.tgz").write_bytes(data)
        entries.append(
            {
                "name": "web",
                "version": version,
                "created": f"2026-11-0{version[2]}T10:00:00Z",
                "description": "a web server",
                "keywords": ["http"],
                "digest": hashlib.sha256(data).hexdigest(),
                "urls": [f"web-{version}.tgz"],
            }
        )
    (directory / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": {"web": entries}}))
    with serve_chart_repo(directory, auth=("robot", PASSWORD)) as served:
        yield served


@pytest.fixture
def server_app(
    tmp_path: Path,
    factory: SessionFactory,
    bus: FakeBus,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    repo: ChartRepo,
) -> FastAPI:
    registries = tmp_path / "registries.yaml"
    registries.write_text(
        f"registries:\n  - name: team\n    url: {repo.url}\n    credential_name: team-charts\n"
    )
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'moorage.db'}",
        bootstrap_token=ADMIN_TOKEN,
        nats_url="nats://127.0.0.1:4222",
        public_url=SERVER,
        egress_allow="loopback",
        global_registries_file=registries,
    )
    app = create_app(settings, factory, bus, clock=clock, expire_jobs=False, run_gitops=False)
    monkeypatch.setattr(client_module, "transport_factory", lambda: InProcess(app))
    return app


def test_a_private_repository_through_the_catalog(cli: Cli, repo: ChartRepo) -> None:
    without = as_json(cli("charts", "search", "web", "-o", "json"))
    assert without["charts"] == []
    assert "credential 'team-charts'" in without["errors"][0]["message"]

    created = ok(
        cli(
            "credentials", "create", "team-charts", "--kind", "helm", "--host", "127.0.0.1",
            "--username", "robot", "--secret-env", "PW", env={"PW": PASSWORD},
        )
    )  # fmt: skip
    assert PASSWORD not in created.output
    assert "spec.helm_registries[].credential_name" in created.output
    listed = as_json(cli("credentials", "list", "-o", "json"))
    assert [(c["name"], c["kind"], c["hosts"]) for c in listed] == [("team-charts", "helm", ["127.0.0.1"])]

    found = as_json(cli("charts", "search", "web", "-o", "json"))
    assert found["errors"] == []
    (web,) = found["charts"]
    assert [v["version"] for v in web["versions"]] == ["1.1.0", "1.0.0"]
    table = ok(cli("charts", "versions", "team", "web")).stdout
    assert "1.1.0" in table
    assert "1.0.0" in table

    shown = ok(cli("charts", "show", "team", "web", "1.1.0", "--against", "1.0.0")).stdout
    assert "values schema: yes" in shown
    assert "changed: replicas from 1 to 2" in shown
    assert "added: image" in shown
    archives = [p for p, s in repo.requests.entries if p.endswith(".tgz") and s == 200]
    again = as_json(cli("charts", "show", "team", "web", "1.1.0", "-o", "json"))
    assert again["values"].startswith("replicas: 2")
    assert [p for p, s in repo.requests.entries if p.endswith(".tgz") and s == 200] == archives  # cached
    assert PASSWORD not in json.dumps(again)


def test_binding_another_host_needs_admin(cli: Cli) -> None:
    ok(
        cli(
            "credentials", "create", "team-charts", "--kind", "helm", "--host", "127.0.0.1",
            "--username", "robot", "--secret-env", "PW", env={"PW": PASSWORD},
        )
    )  # fmt: skip
    bound = ok(cli("credentials", "allow-host", "team-charts", "https://charts.example.com/team"))
    assert "127.0.0.1, https://charts.example.com/team" in bound.stdout
