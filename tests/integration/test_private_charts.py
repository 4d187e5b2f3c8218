"""Private chart sources through server and agent (issue 16, acceptance): the devcluster's Helm
repository (basic auth) and OCI registry (htpasswd) with authentication on; add-ons deploy with their
credentials, a wrong or missing one fails naming the registry and "authentication failed" with
nothing installed, and the secret shows up in no log, API answer, process argument list or file."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from moorage.devcluster import DevCluster, chartsources
from tests.integration.conftest import Helm
from tests.integration.control_plane_support import (
    ADMIN,
    Agents,
    Server,
    free_port,
    register,
    wait_operation,
    wait_state,
)

USER = "robot"
EVERY_STATE = ("--deployed", "--failed", "--pending", "--superseded", "--uninstalling")
REPO_PASSWORD = "repo-" + secrets.token_hex(12)
OCI_PASSWORD = "oci-" + secrets.token_hex(12)


@dataclass
class Private:
    repo: chartsources.ChartRepo
    registry: chartsources.Registry


@pytest.fixture(scope="module")
def private(chart_archives: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    directory = tmp_path_factory.mktemp("private-repo")
    for archive in chart_archives:
        shutil.copy(archive, directory / archive.name)
    helm_home = tmp_path_factory.mktemp("private-helm")
    htpasswd = f"{USER}:{bcrypt.hashpw(OCI_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
    with (
        chartsources.serve_chart_repo(directory, auth=(USER, REPO_PASSWORD)) as repo,
        chartsources.run_registry(tmp_path_factory.mktemp("private-oci"), htpasswd=htpasswd) as registry,
    ):
        chartsources.index_repo(directory, repo.url, helm_home)
        chartsources.push_charts(chart_archives, registry, helm_home, login=(USER, OCI_PASSWORD))
        shutil.rmtree(helm_home)  # the pushing side's registry login: gone before the test looks
        yield Private(repo, registry)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, private: Private) -> Iterator[Server]:
    port = free_port()
    data = tmp_path_factory.mktemp("server")
    registries = data.parent / "global-registries.yaml"
    registries.write_text(
        "registries:\n"
        f"  - name: private-http\n    url: {private.repo.url}\n    credential_name: repo-bot\n"
        f"  - name: private-oci\n    url: {private.registry.url}\n    credential_name: oci-bot\n"
    )
    srv = Server(f"http://127.0.0.1:{port}", data, port, env={"MOORAGE_GLOBAL_REGISTRIES": str(registries)})
    srv.start()
    bodies: list[dict[str, Any]] = [
        {"name": "repo-bot", "kind": "helm", "hosts": [private.repo.url], "secret": REPO_PASSWORD},
        {"name": "oci-bot", "kind": "oci", "hosts": [private.registry.host], "secret": OCI_PASSWORD},
        {"name": "repo-wrong", "kind": "helm", "hosts": [private.repo.url], "secret": "not-the-password"},
        {"name": "oci-wrong", "kind": "oci", "hosts": [private.registry.host], "secret": "not-the-password"},
    ]
    for body in bodies:
        created = srv.api("POST", "/credentials", json={**body, "username": USER})
        assert created.status_code == 201, created.text
        assert str(body["secret"]) not in created.text
    yield srv
    srv.stop()


def definition(
    private: Private,
    namespaces: dict[str, str],
    credentials: dict[str, str | None],
    chart: str = "webapp",
    values: str = "replicaCount: 1\n",
) -> dict[str, Any]:
    registries = []
    for name, url in (("repo", private.repo.url), ("oci", private.registry.url)):
        entry = {"name": name, "url": url}
        if credentials.get(name):
            entry["credential_name"] = str(credentials[name])
        registries.append(entry)
    addons = [
        {
            "name": f"web-{name}",
            "chart_name": chart,
            "chart_version": "1.0.0",
            "registry_name": name,
            "namespace": namespace,
            "configuration": {"values": values},
            # a refused credential stays refused: fail at once (the retries are the engine's concern)
            "settings": {"retry_policy": {"limit": 0}},
        }
        for name, namespace in namespaces.items()
    ]
    doc = {
        "apiVersion": "v1",
        "kind": "ImportCluster",
        "metadata": {"name": "private"},
        "spec": {"helm_registries": registries, "stacks": [{"name": "apps", "addons": addons}]},
    }
    return {"files": {"import-cluster.yaml": json.dumps(doc)}, "root": "import-cluster.yaml"}


class CmdlineWatch:
    """Reads every process's argument list every 20 ms; `seen` holds those that carried a secret."""

    def __init__(self, needles: list[str]) -> None:
        self.needles = [n.encode() for n in needles]
        self.seen: list[str] = []
        self.helm_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "CmdlineWatch":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = Path(entry.path, "cmdline").read_bytes()
                    environ = Path(entry.path, "environ").read_bytes() if b"helm" in cmdline else b""
                except OSError:
                    continue
                if b"helm" in cmdline.split(b"\0")[0]:
                    self.helm_seen += 1
                if any(n in cmdline or n in environ for n in self.needles):
                    self.seen.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
            time.sleep(0.02)


def files_holding(roots: list[Path], needles: list[str], since: float) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if not path.is_file() or path.stat().st_mtime < since or path.stat().st_size > 50 << 20:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if any(n.encode() in data for n in needles):
                found.append(str(path))
    return found


def test_private_charts_deploy_with_their_credentials_and_the_secret_leaks_nowhere(
    server: Server, agents: Agents, cluster: DevCluster, helm: Helm, private: Private, tmp_path: Path
) -> None:
    started = time.time()
    token = register(server, "private")
    agents.start(server, token, cluster.kubeconfig)
    wait_state(server, "private", "online")
    namespaces = {"repo": f"p-{secrets.token_hex(4)}", "oci": f"p-{secrets.token_hex(4)}"}
    bundle = definition(private, namespaces, {"repo": "repo-bot", "oci": "oci-bot"})
    needles = [REPO_PASSWORD, OCI_PASSWORD]
    with CmdlineWatch(needles) as watch:
        applied = server.api("POST", "/clusters/private/apply", json=bundle)
        assert applied.status_code in (200, 202), applied.text
        op = wait_operation(server, applied.json()["id"], timeout=240)
    assert op["state"] == "success", json.dumps(op, indent=2)[-3000:]
    for name, namespace in namespaces.items():
        release = helm.releases(namespace)[f"web-{name}"]
        assert release["status"] == "deployed"
        assert release["chart"] == "webapp-1.0.0"
    assert watch.helm_seen > 0  # the watch saw helm run
    assert watch.seen == []  # and no process carried a secret in its arguments or environment

    answers = [
        applied.text,
        server.api("GET", f"/operations/{op['id']}").text,
        server.api("GET", "/clusters/private/operations").text,
        server.api("GET", "/credentials").text,
        server.api("GET", "/clusters/private/addons").text,
    ]
    for text in answers:
        assert not any(n in text for n in needles)
    # logs, the server's data directory (database, NATS), the agent's files, temporary files
    roots = [server.data_dir, tmp_path, Path(os.environ.get("TMPDIR", "/tmp"))]
    assert files_holding(roots, needles, started) == []


def test_a_wrong_or_missing_credential_fails_naming_the_registry_and_installs_nothing(
    server: Server, agents: Agents, cluster: DevCluster, helm: Helm, private: Private
) -> None:
    token = register(server, "refused")
    agents.start(server, token, cluster.kubeconfig)
    wait_state(server, "refused", "online")

    unknown = definition(private, {"repo": "x-unknown"}, {"repo": "no-such-credential"})
    r = server.api("POST", "/clusters/refused/apply", json=unknown)
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert "credential 'no-such-credential'" in error["message"]
    assert private.repo.url in error["message"]

    cases: list[dict[str, str | None]] = [
        {"repo": "repo-wrong"},
        {"oci": "oci-wrong"},
        {"repo": None},
        {"oci": None},
    ]
    for credentials in cases:
        name = next(iter(credentials))
        namespace = f"r-{secrets.token_hex(4)}"
        bundle = definition(private, {name: namespace}, credentials)
        applied = server.api("POST", "/clusters/refused/apply", json=bundle)
        if applied.status_code == 422:
            # the server's values check fetched the chart with that credential and was refused
            text = applied.text
            assert "chart-auth" in text
        else:
            # the server knew the chart version already (cached), so the agent was refused
            assert applied.status_code in (200, 202), applied.text
            op = wait_operation(server, applied.json()["id"], timeout=240)
            assert op["state"] == "failed", json.dumps(op, indent=2)[-3000:]
            text = json.dumps(op)
        url = private.repo.url if name == "repo" else private.registry.url
        assert f"registry {url}" in text, text[-2000:]
        assert "authentication failed" in text, text[-2000:]
        assert REPO_PASSWORD not in text
        listed = json.loads(helm.run("list", *EVERY_STATE, "-n", namespace, "-o", "json").stdout)
        assert listed == []  # nothing half-installed


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "moorage.cli.main", *args, "--server", server.url]
    return subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "MOORAGE_TOKEN": ADMIN}, check=False
    )


def test_the_catalog_finds_the_private_charts_and_a_second_look_up_downloads_nothing(
    server: Server, private: Private
) -> None:
    found = cli(server, "charts", "search", "web", "-o", "json")
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert data["errors"] == []
    hits = {(c["registry"], c["name"]): [v["version"] for v in c["versions"]] for c in data["charts"]}
    assert hits[("private-http", "webapp")] == ["1.0.0"]
    assert hits[("private-oci", "webapp")] == ["1.0.0"]
    http_versions = next(c["versions"] for c in data["charts"] if c["registry"] == "private-http")
    assert http_versions[0]["created"]  # a date for each version
    table = cli(server, "charts", "search", "web")
    assert "private-oci" in table.stdout
    assert "webapp" in table.stdout
    oci_versions = server.api("GET", "/charts/private-oci/webapp").json()["versions"]
    assert oci_versions[0]["created"]

    for registry in ("private-http", "private-oci"):
        shown = server.api("GET", f"/charts/{registry}/strict/1.0.0")
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["schema"]["required"] == ["replicas", "logLevel"]
        assert "logLevel: info" in body["values"]
        assert REPO_PASSWORD not in shown.text
        assert OCI_PASSWORD not in shown.text
    archive = "/strict-1.0.0.tgz"
    before = list(private.repo.requests.statuses(archive))
    index_before = list(private.repo.requests.statuses("/index.yaml"))
    again = cli(server, "charts", "show", "private-http", "strict", "1.0.0")
    assert again.returncode == 0, again.stderr
    assert "values schema: yes" in again.stdout
    assert private.repo.requests.statuses(archive) == before  # the archive is not fetched again
    assert private.repo.requests.statuses("/index.yaml")[len(index_before) :] == [304]  # nothing downloaded


def test_values_that_break_the_charts_schema_fail_validation_before_any_helm_command(
    server: Server, private: Private
) -> None:
    register(server, "schema")
    before = server.api("GET", "/clusters/schema/operations").json()["pagination"]["total_count"]
    bundle = definition(
        private,
        {"repo": "s-repo", "oci": "s-oci"},
        {"repo": "repo-bot", "oci": "oci-bot"},
        chart="strict",
        values="replicas: 0\nlogLevel: loud\n",
    )
    r = server.api("POST", "/clusters/schema/apply", json=bundle)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    found = {(e["path"], e["file"]) for e in errors}
    assert found == {
        (f"addons[web-{name}].values.{field}", "import-cluster.yaml")
        for name in ("repo", "oci")
        for field in ("replicas", "logLevel")
    }, errors
    assert all(isinstance(e["line"], int) and e["line"] >= 1 for e in errors)  # exact lines: unit tests
    assert all("values.schema.json of chart strict 1.0.0" in e["message"] for e in errors)
    # refused before a job was queued: no helm command ran
    assert server.api("GET", "/clusters/schema/operations").json()["pagination"]["total_count"] == before


def test_validate_charts_checks_values_against_the_schema_and_names_unfetchable_charts(
    chart_repo: chartsources.ChartRepo, private: Private, tmp_path: Path
) -> None:
    (tmp_path / "values").mkdir()
    (tmp_path / "values/strict.yaml").write_text("# strict's values\nreplicas: 20\nlogLevel: info\n")
    (tmp_path / "import-cluster.yaml").write_text(
        f"""apiVersion: v1
kind: ImportCluster
metadata:
  name: local
spec:
  stacks:
    - name: s
      addons:
        - name: strict
          chart_name: strict
          chart_version: "1.0.0"
          registry_url: {chart_repo.url}
          namespace: a
          configuration:
            from_file: values/strict.yaml
        - name: locked
          chart_name: webapp
          chart_version: "1.0.0"
          registry_url: {private.repo.url}
          namespace: b
"""
    )
    argv = [sys.executable, "-m", "moorage.cli.main", "validate", str(tmp_path / "import-cluster.yaml")]
    plain = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert plain.returncode == 0, plain.stdout  # without --charts nothing is fetched
    checked = subprocess.run([*argv, "--charts"], capture_output=True, text=True, check=False)
    assert checked.returncode == 1, checked.stdout
    lines = checked.stdout.splitlines()
    (schema,) = [line for line in lines if "values.schema.json" in line]
    assert schema.startswith("values/strict.yaml:2:")
    assert "[addons[strict].values.replicas]" in schema
    assert "20 is greater than the maximum of 10" in schema
    (locked,) = [line for line in lines if "addons[locked]" in line]
    assert f"registry {private.repo.url}: authentication failed" in locked
