"""The remote CLI commands against the real server app, served in-process through httpx's ASGI
transport (a migrated SQLite database and the recording fake bus of the server tests; see conftest.py)."""

import re
import shutil
import socket
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from moorage.cli import client as client_module
from moorage.cli.main import app as main_app
from moorage.cli.output import format_issue
from moorage.cli.remote_commands import bundle_repository
from moorage.server import addon_state, service
from moorage.server.db import SessionFactory, transaction
from moorage.spec.protocol import (
    AddonObservation,
    JobAction,
    JobMessage,
    JobState,
    ResultMessage,
    StateReport,
)
from tests.unit.cli.conftest import SERVER, Cli, as_json, ok
from tests.unit.server.conftest import ADMIN_TOKEN, EXAMPLE_REPO, FakeBus

AGENT_TOKEN = re.compile(r"mrga_[A-Za-z0-9_-]{20,}")


def test_register_prints_the_agent_token_once(cli: Cli, bus: FakeBus) -> None:
    res = ok(cli("cluster", "register", "c1", "--description", "the first"))
    [token] = set(AGENT_TOKEN.findall(res.stdout))
    assert "shown only now" in res.stdout
    assert f"moorage agent --server {SERVER} --token {token}" in res.stdout
    assert ADMIN_TOKEN not in res.output
    assert bus.agents_changed_calls == 1

    # afterwards the token is never shown again
    for args in (("cluster", "list"), ("cluster", "get", "c1"), ("cluster", "get", "c1", "-o", "json")):
        shown = ok(cli(*args))
        assert token not in shown.output
        assert "mrga_" not in shown.output

    again = cli("cluster", "register", "c1")
    assert again.exit_code == 1
    assert "error:" in again.stderr
    assert "c1" in again.stderr


def test_list_get_delete(cli: Cli) -> None:
    assert "no clusters yet" in ok(cli("cluster", "list")).stdout
    ok(cli("cluster", "register", "c1", "-d", "first"))
    ok(cli("cluster", "register", "c2"))

    table = ok(cli("cluster", "list")).stdout
    for text in ("c1", "c2", "never_connected", "first"):
        assert text in table
    data = as_json(cli("cluster", "list", "-o", "json"))
    assert [c["name"] for c in data["result"]] == ["c1", "c2"]
    assert data["pagination"]["total_count"] == 2

    got = yaml.safe_load(ok(cli("cluster", "get", "c1", "-o", "yaml")).stdout)
    assert got["name"] == "c1"
    assert got["state"] == "never_connected"
    assert "description" in ok(cli("cluster", "get", "c1")).stdout

    declined = cli("cluster", "delete", "c1", stdin="n\n")
    assert declined.exit_code == 1
    assert "nothing was deleted" in declined.stderr
    assert "deleted cluster c1" in ok(cli("cluster", "delete", "c1", "--yes")).stdout

    gone = cli("cluster", "get", "c1")
    assert gone.exit_code == 1
    assert gone.stderr.startswith("error: ")
    assert "c1" in gone.stderr
    assert [c["name"] for c in as_json(cli("cluster", "list", "-o", "json"))["result"]] == ["c2"]


def test_revoke_and_rotate_agent_token(cli: Cli) -> None:
    first = AGENT_TOKEN.findall(ok(cli("cluster", "register", "c1")).stdout)[0]
    res = ok(cli("cluster", "revoke-agent-token", "c1"))
    assert "revoked" in res.stdout
    assert as_json(cli("cluster", "get", "c1", "-o", "json"))["agent_token_revoked"] is True

    rotated = ok(cli("cluster", "rotate-agent-token", "c1"))
    [second] = set(AGENT_TOKEN.findall(rotated.stdout))
    assert second != first
    assert "shown only now" in rotated.stdout
    assert as_json(cli("cluster", "get", "c1", "-o", "json"))["agent_token_revoked"] is False


def test_apply_example_queues_one_job(cli: Cli, bus: FakeBus) -> None:
    ok(cli("cluster", "register", "c1"))
    res = ok(cli("cluster", "apply", "-f", str(EXAMPLE_REPO), "--cluster", "c1"))

    [job] = bus.jobs
    assert job.action is JobAction.SYNC
    assert job.payload["root"] == "import-cluster.yaml"
    files = job.payload["files"]
    assert "addons/webapp.yaml" in files
    assert ".sops.yaml" in files
    assert "keys/test-only.agekey" not in files  # a private key never leaves the machine
    assert "skipped keys/test-only.agekey" in res.stderr

    assert job.operation_id in res.stdout
    assert "running" in res.stdout
    assert f"moorage operations show {job.operation_id}" in res.stdout

    ops = as_json(cli("operations", "list", "--cluster", "c1", "-o", "json"))
    assert [o["id"] for o in ops["result"]] == [job.operation_id]
    assert (
        as_json(cli("operations", "list", "--cluster", "c1", "--state", "success", "-o", "json"))["result"]
        == []
    )
    assert job.operation_id in ok(cli("operations", "list", "--cluster", "c1")).stdout
    bad_state = cli("operations", "list", "--cluster", "c1", "--state", "done")
    assert bad_state.exit_code == 1
    assert "unknown state 'done'" in bad_state.stderr

    shown = ok(cli("operations", "show", job.operation_id)).stdout
    assert job.job_id in shown
    assert "pending" in shown
    assert "sync" in shown


def test_operation_messages_and_addons(cli: Cli, bus: FakeBus, factory: SessionFactory) -> None:
    ok(cli("cluster", "register", "c1"))
    assert "no add-ons reported yet" in ok(cli("addons", "list", "--cluster", "c1")).stdout
    assert (
        as_json(cli("cluster", "apply", "-f", str(EXAMPLE_REPO), "-c", "c1", "-o", "json"))["kind"] == "apply"
    )
    [job] = bus.jobs
    with transaction(factory) as session:
        service.record_result(
            session,
            ResultMessage(
                job_id=job.job_id,
                cluster_id=job.cluster_id,
                state=JobState.SUCCESS,
                messages=["addon/webapp: applied: installed revision 1"],
                result={"outcomes": {"addon/webapp": {"status": "applied", "health": "Healthy"}}},
            ),
        )
        report = StateReport(
            cluster_id=job.cluster_id,
            session="s1",
            seq=1,
            addons=[
                AddonObservation(
                    name="webapp",
                    namespace="apps",
                    chart="webapp",
                    version="1.0.0",
                    installed=True,
                    release_chart="webapp",
                    release_version="1.0.0",
                    revision=1,
                    helm_status="deployed",
                    health="Healthy",
                    drift=[
                        {
                            "kind": "Deployment",
                            "name": "webapp",
                            "namespace": "apps",
                            "drift_type": "modified",
                            "changes": [{"path": "spec.replicas", "want": 2, "live": 5}],
                        }
                    ],
                )
            ],
        )
        addon_state.record_state(session, report)
    shown = ok(cli("operations", "show", job.operation_id)).stdout
    assert "success" in shown
    assert "addon/webapp: applied: installed revision 1" in shown

    addons = ok(cli("addons", "list", "--cluster", "c1")).stdout
    for text in ("webapp", "OutOfSync", "spec.replicas: want 2, live 5"):
        assert text in addons
    data = as_json(cli("addons", "list", "--cluster", "c1", "--state", "OutOfSync", "-o", "json"))
    assert [a["name"] for a in data["result"]] == ["webapp"]
    assert (
        as_json(cli("addons", "list", "--cluster", "c1", "--state", "Synced", "-o", "json"))["result"] == []
    )
    drift = ok(cli("addons", "drift", "webapp", "--cluster", "c1")).stdout
    for text in ("Deployment apps/webapp", "spec.replicas", "2", "5"):
        assert text in drift
    assert "OutOfSync" in ok(cli("addons", "get", "webapp", "--cluster", "c1")).stdout
    assert "Synced" not in ok(cli("addons", "transitions", "webapp", "--cluster", "c1")).stdout
    missing = cli("addons", "get", "nope", "--cluster", "c1")
    assert missing.exit_code == 1
    assert "no add-on 'nope'" in missing.stderr


def test_apply_wait_shows_the_final_operation(cli: Cli, bus: FakeBus, factory: SessionFactory) -> None:
    ok(cli("cluster", "register", "c1"))
    publish = bus.publish_job

    async def publish_and_fail(job: JobMessage) -> None:
        await publish(job)
        with transaction(factory) as session:
            service.record_result(
                session,
                ResultMessage(
                    job_id=job.job_id,
                    cluster_id=job.cluster_id,
                    state=JobState.FAILED,
                    messages=["addon/webapp: failed: chart not found"],
                ),
            )

    bus.publish_job = publish_and_fail  # type: ignore[method-assign]
    res = cli("cluster", "apply", "-f", str(EXAMPLE_REPO), "--cluster", "c1", "--wait", "5")
    assert res.exit_code == 1, res.output
    assert "failed" in res.stdout
    assert "addon/webapp: failed: chart not found" in res.stdout
    assert "follow it with" not in res.stdout

    still_running = cli("cluster", "apply", "-f", str(EXAMPLE_REPO), "-c", "c1", "--wait", "601")
    assert still_running.exit_code == 2  # refused by the CLI before anything is sent
    assert len(bus.jobs) == 1


def test_apply_invalid_bundle_prints_compiler_style_items(cli: Cli, bus: FakeBus, tmp_path: Path) -> None:
    ok(cli("cluster", "register", "c1"))
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE_REPO, repo)
    webapp = repo / "addons" / "webapp.yaml"
    webapp.write_text(webapp.read_text().replace("chart_version:", "chart_versoin:"))

    res = cli("cluster", "apply", "-f", str(repo), "--cluster", "c1")
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if "chart_versoin" in line]
    assert lines, res.stderr
    assert re.match(r"addons/webapp\.yaml:\d+:\d+: error: ", lines[0])
    assert "did you mean" in res.stderr.lower()
    assert "nothing was applied" in res.stderr
    assert bus.jobs == []


def test_apply_usage_errors(cli: Cli, tmp_path: Path) -> None:
    res = cli("cluster", "apply", "-f", str(tmp_path / "nope"), "--cluster", "c1")
    assert res.exit_code == 2
    assert "does not exist" in res.stderr
    unknown = cli("cluster", "apply", "-f", str(EXAMPLE_REPO), "--cluster", "nope")
    assert unknown.exit_code == 1
    assert "nope" in unknown.stderr


def test_wrong_or_missing_token(cli: Cli) -> None:
    wrong = "mrg_this-token-is-wrong-and-secret-0123456789"
    res = cli("cluster", "list", token=wrong)
    assert res.exit_code == 1
    assert "unknown or revoked token" in res.stderr
    assert wrong not in res.output
    assert "--token or $MOORAGE_TOKEN" in res.stderr

    res = cli("cluster", "list", "--token", wrong, token=None)
    assert res.exit_code == 1
    assert wrong not in res.output

    missing = cli("cluster", "list", token=None)
    assert missing.exit_code == 1
    assert "missing bearer token" in missing.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_server_exits_2_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "transport_factory", lambda: None)
    url = f"http://127.0.0.1:{_closed_port()}"
    res = CliRunner().invoke(
        main_app, ["cluster", "list", "--server", url, "--token", ADMIN_TOKEN], env={"MOORAGE_SERVER": None}
    )
    assert res.exit_code == 2
    assert f"could not reach the Moorage server at {url}" in res.stderr
    assert ADMIN_TOKEN not in res.output


def test_server_url_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOORAGE_SERVER", raising=False)
    monkeypatch.delenv("MOORAGE_TOKEN", raising=False)
    remote = client_module.Remote.from_options(None, None)
    assert (remote.server, remote.token) == ("http://127.0.0.1:8000", None)
    monkeypatch.setenv("MOORAGE_SERVER", "moorage.example.com:8443/")
    monkeypatch.setenv("MOORAGE_TOKEN", "from-env")
    remote = client_module.Remote.from_options(None, None)
    assert (remote.server, remote.token) == ("http://moorage.example.com:8443", "from-env")
    assert "from-env" not in repr(remote)
    assert client_module.Remote.from_options("https://x", "t").server == "https://x"


def test_bundle_skips_hidden_big_binary_and_key_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE_REPO, repo)
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]\n")
    (repo / ".github").mkdir()
    (repo / ".github" / "ci.yaml").write_text("on: push\n")
    (repo / "big.yaml").write_text("x" * (1024 * 1024 + 1))
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (repo / "latin1.txt").write_bytes(b"caf\xe9")
    (repo / "link.yaml").symlink_to(repo / "import-cluster.yaml")

    from_folder = bundle_repository(repo)
    assert from_folder.root == "import-cluster.yaml"
    assert from_folder.repo_root == repo.resolve()
    assert not any(p.startswith((".git/", ".github/")) for p in from_folder.files)
    for skipped in ("big.yaml", "logo.png", "latin1.txt", "link.yaml", "keys/test-only.agekey"):
        assert skipped not in from_folder.files
        assert any(s.startswith(skipped + " ") for s in from_folder.skipped)
    assert ".sops.yaml" in from_folder.files
    assert from_folder.files["addons/webapp.yaml"] == (repo / "addons" / "webapp.yaml").read_text()

    # a root file: the repository is its nearest parent holding .git
    (repo / "clusters").mkdir()
    shutil.copy(repo / "import-cluster.yaml", repo / "clusters" / "prod.yaml")
    from_file = bundle_repository(repo / "clusters" / "prod.yaml")
    assert from_file.repo_root == repo.resolve()
    assert from_file.root == "clusters/prod.yaml"
    assert set(from_file.files) == set(from_folder.files) | {"clusters/prod.yaml"}


def test_format_issue() -> None:
    item = {"message": "unknown field", "file": "a.yaml", "line": 3, "column": 5, "path": "x", "hint": "h"}
    assert format_issue(item, "root.yaml") == "a.yaml:3:5: error: unknown field [x] (h)"
    assert format_issue({"message": "m", "file": None, "line": None}, "root.yaml") == "root.yaml: error: m"


def test_remote_commands_do_not_clash_with_existing_ones() -> None:
    names = [c.name for c in main_app.registered_commands] + [g.name for g in main_app.registered_groups]
    assert len(names) == len(set(names))
    assert {"cluster", "operations", "addons"} <= set(names)
    assert isinstance(main_app, typer.Typer)
