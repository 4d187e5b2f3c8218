"""Reordering through the API and the CLI, against the real Git server of the Stack Builder API
tests: the listing says which entries share a list (`moves_in`), a move is one commit touching only
the moved lines, and a refused move commits nothing."""

from fastapi.testclient import TestClient

from moorage.devcluster.gitserver import WorkTree
from tests.unit.server.stacks.test_stacks_api import PATH, chart_url, client, git_server, origin, tip

__all__ = ["chart_url", "client", "git_server", "origin"]  # fixtures

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: strict\n"


def edit(client: TestClient, *edits: dict[str, object], preview: bool = False) -> dict[str, object]:
    r = client.post("/api/v1/clusters/c1/stacks/edits", json={"edits": list(edits), "preview": preview})
    assert r.status_code == (200 if preview else 201), r.text
    body: dict[str, object] = r.json()
    return body


def test_a_manifest_moved_before_another_is_one_commit_of_the_moved_lines(
    client: TestClient, origin: WorkTree
) -> None:
    edit(
        client,
        {"op": "add_manifest", "stack": "base", "manifest": {"name": "settings", "manifest": CONFIGMAP}},
        {"op": "add_stack", "stack": {"name": "extra", "manifests": []}},
    )
    listed = client.get("/api/v1/clusters/c1/stacks").json()
    base, extra = listed["stacks"]
    assert [m["name"] for m in base["manifests"]] == ["ns-strict", "settings"]
    assert base["manifests"][0]["moves_in"] == base["manifests"][1]["moves_in"] == f"{PATH}:14"
    assert base["moves_in"] == extra["moves_in"] == f"{PATH}:12"

    before = tip(origin)
    saved = edit(client, {"op": "move_manifest", "stack": "base", "name": "settings", "before": "ns-strict"})
    assert saved["files"] == [PATH]
    assert str(saved["message"]).startswith("c1: move manifest settings before ns-strict in stack base")
    origin.git("pull", "--quiet")
    shown = origin.git("show", "--format=%P", str(saved["commit"]))
    assert shown.splitlines()[0] == before
    changed = [ln for ln in shown.splitlines() if ln[:1] in ("+", "-") and ln[:3] not in ("+++", "---")]
    assert sorted(ln[1:] for ln in changed if ln[0] == "+") == sorted(
        ln[1:] for ln in changed if ln[0] == "-"
    )
    text = (origin.path / PATH).read_text()
    assert text.index("- name: settings") < text.index("- name: ns-strict  # where the add-on lives")
    listed = client.get("/api/v1/clusters/c1/stacks").json()
    assert [m["name"] for m in listed["stacks"][0]["manifests"]] == ["settings", "ns-strict"]

    saved = edit(client, {"op": "move_stack", "name": "extra", "before": "base"}, preview=True)
    assert "+    - name: extra\n" in str(saved["diff"])
    assert saved["commit"] is None


def test_a_refused_move_says_why_and_commits_nothing(client: TestClient, origin: WorkTree) -> None:
    before = tip(origin)
    r = client.post(
        "/api/v1/clusters/c1/stacks/edits",
        json={"edits": [{"op": "move_manifest", "stack": "base", "name": "ns-strict", "after": "nope"}]},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "stack 'base' has no manifest named 'nope'"
    r = client.post(
        "/api/v1/clusters/c1/stacks/edits",
        json={"edits": [{"op": "move_stack", "name": "base", "before": "x", "after": "y"}]},
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("a move names exactly one of before and after")
    assert tip(origin) == before
