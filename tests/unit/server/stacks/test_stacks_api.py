"""The Stack Builder API against a real Git server (git http-backend) and a real chart repository
(the `strict` test chart with its values.schema.json), with a fake bus: a save is one commit on the
branch authored by the caller touching only the stack's file, a preview commits nothing, an edit the
chart's schema refuses is refused with its field path and no commit, a race is applied again or
refused without losing the other commit, and a secret value is nowhere on the server in plaintext."""

import hashlib
import io
import logging
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from moorage.devcluster.chartsources import serve_chart_repo
from moorage.devcluster.gitserver import GitServer, WorkTree
from moorage.server.app import create_app
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import GitRepository
from moorage.server.settings import ServerSettings
from moorage.server.stacks import gitwrite
from tests.unit.server.conftest import ADMIN_TOKEN, EXAMPLE_REPO, Clock, FakeBus

CHARTS = Path(__file__).resolve().parents[3] / "charts"
PATH = "clusters/c1/import-cluster.yaml"
RECIPIENT = "age1xc9s44auavrgsep532mql7v0hgz2mgsxmk5q627aa2raffyfk9es8yrkjl"
SECRET = "Plaintext-Needle-7f3a9c21"


def definition(name: str, chart_url: str) -> str:
    return (
        f"# The cluster {name} of the Stack Builder tests.\n"
        "apiVersion: v1\n"
        "kind: ImportCluster\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        "  helm_registries:\n"
        "    - name: local\n"
        f"      url: {chart_url}\n"
        "  stacks:\n"
        "    # the platform's pieces\n"
        "    - name: base\n"
        "      manifests:\n"
        "        - name: ns-strict  # where the add-on lives\n"
        "          manifest: |\n"
        "            apiVersion: v1\n"
        "            kind: Namespace\n"
        "            metadata:\n"
        "              name: strict\n"
    )


def chart_archive(name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in sorted((CHARTS / name).rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{name}/{path.relative_to(CHARTS / name)}")
    return out.getvalue()


@pytest.fixture
def chart_url(tmp_path: Path) -> Iterator[str]:
    repo = tmp_path / "charts"
    repo.mkdir()
    data = chart_archive("strict")
    (repo / "strict-1.0.0.tgz").write_bytes(data)
    (repo / "index.yaml").write_text(
        "apiVersion: v1\nentries:\n  strict:\n    - name: strict\n      version: 1.0.0\n"
        f"      digest: {hashlib.sha256(data).hexdigest()}\n      urls: [strict-1.0.0.tgz]\n"
    )
    with serve_chart_repo(repo) as served:
        yield served.url


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "git") as server:
        yield server


@pytest.fixture
def origin(git_server: GitServer, tmp_path: Path, chart_url: str) -> WorkTree:
    url = git_server.create_repo("org/defs.git")
    work = WorkTree(tmp_path / "work", url)
    work.commit_and_push(
        {
            PATH: definition("c1", chart_url),
            "clusters/c2/import-cluster.yaml": definition("c2", chart_url)
            .replace("      manifests:\n", "")
            .split("        - name: ns-strict")[0]
            .replace("    - name: base\n", "    - name: other\n      manifests: []\n"),
            ".sops.yaml": (EXAMPLE_REPO / ".sops.yaml").read_text().replace("values/", ""),
        },
        "first",
    )
    return work


@pytest.fixture
def client(tmp_path: Path, db_url: str, factory: SessionFactory, origin: WorkTree) -> TestClient:
    settings = ServerSettings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        bootstrap_token=ADMIN_TOKEN,
        nats_url="nats://127.0.0.1:4222",
        egress_allow="loopback",
    )
    app = create_app(settings, factory, FakeBus(), clock=Clock(), expire_jobs=False)
    c = TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    for name in ("c1", "c2"):
        assert c.post("/api/v1/clusters", json={"name": name}).status_code == 201
        r = c.put(f"/api/v1/clusters/{name}/gitops", json={"url": origin.remote_url})
        assert r.status_code == 200, r.text
    with transaction(factory) as s:  # connecting asks for a sync: as if it had run
        for repo in s.scalars(select(GitRepository)):
            repo.requested_at = None
    return c


def add_strict(values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "edits": [
            {
                "op": "add_addon",
                "stack": "base",
                "addon": {
                    "name": "strict",
                    "chart_name": "strict",
                    "chart_version": "1.0.0",
                    "registry_name": "local",
                    "namespace": "strict",
                    "configuration": {"values": values},
                },
            }
        ],
        **extra,
    }


def tip(work: WorkTree) -> str:
    return work.git("ls-remote", "origin", "refs/heads/main").split()[0]


def requested(factory: SessionFactory) -> list[str]:
    with transaction(factory) as s:
        return sorted(r.cluster.name for r in s.scalars(select(GitRepository)) if r.requested_at is not None)


def test_a_saved_addon_is_one_commit_by_the_user_touching_only_the_stack_file(
    client: TestClient, origin: WorkTree, factory: SessionFactory
) -> None:
    before = tip(origin)
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=add_strict({"replicas": 2, "logLevel": "info"}))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["files"] == [PATH]
    assert out["changes"]["added"] == ["addon/strict", "manifest/ns-strict"]  # nothing was synced yet
    assert out["cluster_changes"] == {
        "releases": [
            {"release": "strict", "namespace": "strict", "change": "created", "chart": "strict 1.0.0"}
        ],
        "objects": [],
    }
    assert tip(origin) == out["commit"]
    origin.git("pull", "--quiet")
    log = origin.git("log", "-1", "--format=%an|%cn|%P|%s").strip()
    assert log == f"bootstrap|Moorage|{before}|c1: add add-on strict to stack base"
    changed = origin.git("diff", "--name-only", before, out["commit"]).split()
    assert changed == [PATH]
    text = (origin.path / PATH).read_text()
    assert "# the platform's pieces\n" in text
    assert "        - name: ns-strict  # where the add-on lives\n" in text
    removed = [ln for ln in origin.git("diff", before, out["commit"]).splitlines() if ln.startswith("-")]
    assert removed == [f"--- a/{PATH}"]  # only lines added
    assert requested(factory) == ["c1"]  # the sync of the new commit is asked for

    listed = client.get("/api/v1/clusters/c1/stacks").json()
    assert listed["commit"] == out["commit"]
    assert [(a["name"], a["file"]) for a in listed["stacks"][0]["addons"]] == [("strict", PATH)]


def test_a_preview_answers_the_diff_and_commits_nothing(client: TestClient, origin: WorkTree) -> None:
    before = tip(origin)
    r = client.post(
        "/api/v1/clusters/c1/stacks/edits", json=add_strict({"replicas": 2, "logLevel": "info"}, preview=True)
    )
    assert r.status_code == 200, r.text
    assert r.json()["commit"] is None
    assert "+        - name: strict\n" in r.json()["diff"]
    assert tip(origin) == before


def test_an_edit_the_charts_schema_refuses_is_refused_with_the_field_path_and_no_commit(
    client: TestClient, origin: WorkTree
) -> None:
    before = tip(origin)
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=add_strict({"replicas": 50, "logLevel": "info"}))
    assert r.status_code == 422, r.text
    body = r.json()
    assert "nothing was committed" in body["detail"]
    errors = body["errors"]
    assert any("replicas" in str(e.get("path")) and "50" in e["message"] for e in errors), errors
    assert errors[0]["file"] == PATH
    assert tip(origin) == before


def test_an_edit_that_breaks_the_definition_is_refused_with_the_loaders_message(
    client: TestClient, origin: WorkTree
) -> None:
    before = tip(origin)
    body = add_strict({"replicas": 2, "logLevel": "info"})
    body["edits"][0]["addon"]["namespace"] = 7
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"].endswith("namespace")
    assert tip(origin) == before


def test_a_push_that_loses_a_race_is_applied_again_on_the_new_tip(
    client: TestClient, origin: WorkTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_push = gitwrite.push
    calls = []

    async def racing_push(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:  # someone else pushes to the same file just before us
            text = (origin.path / PATH).read_text().replace("# the platform's pieces", "# edited by hand")
            origin.commit_and_push({PATH: text}, "by hand")
        await real_push(*args)

    monkeypatch.setattr(gitwrite, "push", racing_push)
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=add_strict({"replicas": 2, "logLevel": "info"}))
    assert r.status_code == 201, r.text
    assert r.json()["attempts"] == 2
    origin.git("pull", "--quiet")
    text = (origin.path / PATH).read_text()
    assert "# edited by hand\n" in text  # theirs kept
    assert "        - name: strict\n" in text  # ours on top
    assert origin.git("log", "-2", "--format=%s").split("\n")[1] == "by hand"


def test_a_push_that_loses_every_race_is_refused_and_the_other_commits_stay(
    client: TestClient, origin: WorkTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_push = gitwrite.push
    others: list[str] = []

    async def always_racing(*args: Any) -> None:
        others.append(origin.commit_and_push({f"other-{len(others)}.yaml": "x: 1\n"}, f"other {len(others)}"))
        await real_push(*args)

    monkeypatch.setattr(gitwrite, "push", always_racing)
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=add_strict({"replicas": 2, "logLevel": "info"}))
    assert r.status_code == 409, r.text
    assert "kept moving" in r.json()["detail"]
    assert "nothing was committed" in r.json()["detail"]
    assert tip(origin) == others[-1]
    assert len(others) == 2


def test_a_secret_value_is_committed_encrypted_and_is_nowhere_on_the_server(
    client: TestClient, origin: WorkTree, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=add_strict({"replicas": 2, "logLevel": "info"}))
    assert r.status_code == 201, r.text
    # logLevel is not a secret in real life; the schema allows any of its enum values only, so the
    # secret goes in a key of its own under a chart without a schema check: use the values file
    r = client.post(
        "/api/v1/clusters/c1/stacks/edits",
        json={
            "edits": [
                {
                    "op": "set_values",
                    "stack": "base",
                    "addon": "strict",
                    "values": {"replicas": 2, "logLevel": SECRET},
                    "secret": ["logLevel"],
                }
            ],
            "preview": True,
        },
    )
    # undecrypted SOPS values are not judged against the schema, so the encrypted value passes
    assert r.status_code == 200, r.text
    assert SECRET not in r.text
    r = client.post(
        "/api/v1/clusters/c1/stacks/edits",
        json={
            "edits": [
                {
                    "op": "set_values",
                    "stack": "base",
                    "addon": "strict",
                    "values": {"replicas": 2, "logLevel": SECRET},
                    "secret": ["logLevel"],
                }
            ]
        },
    )
    assert r.status_code == 201, r.text
    assert SECRET not in r.text
    assert r.json()["files"] == [PATH, "clusters/c1/values/strict.enc.yaml"]
    origin.git("pull", "--quiet")
    committed = (origin.path / "clusters/c1/values/strict.enc.yaml").read_text()
    assert "logLevel: ENC[AES256_GCM," in committed
    assert "replicas: 2\n" in committed
    assert f"recipient: {RECIPIENT}" in committed
    assert "encrypted_paths:\n              - logLevel\n" in (origin.path / PATH).read_text()
    # nowhere on the server: its data directory (database, git cache and objects), temp files, logs
    needle = SECRET.encode()
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    for path in tmp_path.glob("moorage.db*"):
        assert needle not in path.read_bytes(), path
    for cache in (tmp_path / "data").rglob("*.git"):
        objects = subprocess.run(
            ["git", "-C", str(cache), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True,
            check=True,
        ).stdout
        assert objects  # the commit's objects are there, encrypted
        assert needle not in objects
    assert SECRET not in caplog.text


def test_a_stack_copied_to_another_cluster_is_committed_to_its_definition(
    client: TestClient, origin: WorkTree
) -> None:
    r = client.post("/api/v1/clusters/c1/stacks/base/copy", json={"to_cluster": "c2"})
    assert r.status_code == 201, r.text
    assert r.json()["files"] == ["clusters/c2/import-cluster.yaml"]
    assert r.json()["message"].startswith("c2: add stack base")
    listed = client.get("/api/v1/clusters/c2/stacks").json()
    assert [s["name"] for s in listed["stacks"]] == ["other", "base"]
    assert [m["name"] for m in listed["stacks"][1]["manifests"]] == ["ns-strict"]
    r = client.post("/api/v1/clusters/c1/stacks/base/copy", json={"to_cluster": "c2"})
    assert r.status_code == 422
    assert "already has a stack named 'base'" in r.json()["detail"]


def test_an_unknown_stack_or_cluster_is_a_clear_error(client: TestClient) -> None:
    r = client.post(
        "/api/v1/clusters/c1/stacks/edits",
        json={"edits": [{"op": "remove_addon", "stack": "nope", "name": "x"}]},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "stack 'nope' is not in the definition (its stacks: base)"
    assert client.get("/api/v1/clusters/zz/stacks").status_code == 404


def test_values_given_as_yaml_text_are_parsed_and_bad_yaml_is_refused_without_echoing_it(
    client: TestClient, origin: WorkTree
) -> None:
    assert client.post(
        "/api/v1/clusters/c1/stacks/edits", json=add_strict({"replicas": 2, "logLevel": "info"})
    ).is_success
    edit = {"op": "set_values", "stack": "base", "addon": "strict", "values": "replicas: 3\nlogLevel: warn\n"}
    r = client.post("/api/v1/clusters/c1/stacks/edits", json={"edits": [edit], "preview": True})
    assert r.status_code == 200, r.text
    assert "+              replicas: 3\n" in r.json()["diff"]
    bad = {**edit, "values": f"replicas: [\n  {SECRET}"}
    r = client.post("/api/v1/clusters/c1/stacks/edits", json={"edits": [bad]})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("the values are not valid YAML at line")
    assert SECRET not in r.text
    r = client.post("/api/v1/clusters/c1/stacks/edits", json={"edits": [{**edit, "values": "- a list"}]})
    assert r.json()["detail"] == "the values must be a YAML mapping (key: value lines)"


def test_a_template_change_names_every_cluster_that_uses_it(client: TestClient, origin: WorkTree) -> None:
    edits = {"edits": [{"op": "save_template", "stack": "base", "path": "stacks/base.yaml"}]}
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=edits)
    assert r.status_code == 201, r.text
    assert r.json()["files"] == [PATH, "stacks/base.yaml"]
    assert r.json()["also_affects"] == []
    use = {"op": "use_template", "path": "stacks/base.yaml", "variables": {"TEAM": "two"}}
    r = client.post("/api/v1/clusters/c2/stacks/edits", json={"edits": [use]})
    assert r.status_code == 201, r.text
    assert r.json()["message"].startswith("c2: use the stack template stacks/base.yaml with TEAM")
    change = {"op": "change_manifest", "stack": "base", "name": "ns-strict", "fields": {"namespace": "x"}}
    r = client.post("/api/v1/clusters/c1/stacks/edits", json={"edits": [change], "preview": True})
    assert r.status_code == 200, r.text
    assert r.json()["files"] == ["stacks/base.yaml"]
    assert r.json()["also_affects"] == ["c2"]


def test_an_edit_can_go_to_a_new_branch_for_a_pull_request_and_nothing_syncs(
    client: TestClient, origin: WorkTree, factory: SessionFactory
) -> None:
    before = tip(origin)
    body = add_strict({"replicas": 2, "logLevel": "info"}, branch="moorage/add-strict")
    r = client.post("/api/v1/clusters/c1/stacks/edits", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["branch"] == "moorage/add-strict"
    assert out["pull_request_url"].endswith("/org/defs/compare/main...moorage/add-strict?expand=1")
    assert tip(origin) == before  # the tracked branch is untouched
    remote = origin.git("ls-remote", "origin", "refs/heads/moorage/add-strict").split()[0]
    assert remote == out["commit"]
    assert requested(factory) == []
    again = client.post("/api/v1/clusters/c1/stacks/edits", json=body)
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    tracked = client.post("/api/v1/clusters/c1/stacks/edits", json={**body, "branch": "main"})
    assert tracked.status_code == 422
    assert "is the tracked branch" in tracked.json()["detail"]
