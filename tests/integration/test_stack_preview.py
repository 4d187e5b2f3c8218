"""The Stack Builder's preview of chart objects end to end: `moorage server` with its embedded NATS,
a real agent running helm against the devcluster, a Git server. A preview asks the agent to render
the edited add-ons' charts (read job render_objects) and lists the objects created, changed (field
paths) and removed; nothing is committed, no plaintext secret reaches the server, and without an
agent the preview still answers, saying why the objects are missing."""

import json
import time
from pathlib import Path
from typing import Any

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.devcluster.gitserver import GitServer
from tests.integration.control_plane_support import Agents, Server, register
from tests.integration.gitops_support import wait_synced, work_tree
from tests.integration.test_stack_builder import (  # the Stack Builder's fixtures and helpers
    REPO,
    Browserless,
    connect,
    git,
    online,
    server,
    tip,
    user,
    wait_addon,
    webapp,
)

__all__ = ["git", "server", "user"]  # fixtures, used by name

SECRET = "Preview-Plaintext-5be0c2"


def release(answer: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in answer["cluster_changes"]["releases"] if r["release"] == name]
    assert len(found) == 1, answer
    return found[0]


def objects(found: dict[str, Any], change: str) -> dict[tuple[str, str], list[str]]:
    assert found["rendered"] is True, found
    return {(o["kind"], o["name"]): o.get("paths", []) for o in found["objects"][change]}


def test_a_preview_lists_the_objects_the_charts_render_and_commits_nothing(
    server: Server,
    git: GitServer,
    agents: Agents,
    cluster: DevCluster,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
    user: Browserless,
) -> None:
    name = "sbp-one"
    online(server, agents, cluster, name)
    tree = work_tree(git, REPO, tmp_path / "work")
    wait_synced(server, name, connect(server, git, tree, name, namespace, chart_repo))
    saved = user.edit(name, webapp("web", namespace, {"replicaCount": 1, "greeting": "hello"}))
    assert saved.status_code == 201, saved.text
    wait_synced(server, name, saved.json()["commit"])
    wait_addon(server, name, "web", "Synced")
    before = tip(tree)

    # a value change: the Deployment's changed field, the ConfigMap's, nothing created or removed
    change = {
        "op": "set_values",
        "stack": "apps",
        "addon": "web",
        "values": {"replicaCount": 3, "greeting": "hi"},
    }
    started = time.monotonic()
    answer = user.edit(name, change, preview=True)
    seconds = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert answer.json()["commit"] is None
    assert answer.json()["cluster_changes"]["render"]["state"] == "rendered", answer.text
    web = release(answer.json(), "web")
    assert (web["change"], web["what"]) == ("changed", ["values"])
    changed = objects(web, "changed")
    assert "spec.replicas" in changed[("Deployment", "web")]
    assert 'spec.template.metadata.annotations["checksum/config"]' in changed[("Deployment", "web")]
    assert changed[("ConfigMap", "web-config")] == ["data.greeting"]
    assert objects(web, "created") == objects(web, "removed") == {}
    assert web["objects"]["unchanged"] == 1  # the Service
    started = time.monotonic()
    plain = user.http.post(
        f"/clusters/{name}/stacks/edits", json={"edits": [change], "preview": True, "render_objects": False}
    )
    alone = time.monotonic() - started
    assert "render" not in plain.json()["cluster_changes"]
    assert "objects" not in release(plain.json(), "web")
    rendering, agent = (answer.json()["cluster_changes"]["render"][k] for k in ("seconds", "agent_seconds"))
    print(f"preview of a value change: {seconds:.2f} s, without the render {alone:.2f} s")
    print(f"the render: {rendering:.2f} s, of which the agent's work {agent:.2f} s")

    # a new add-on: each object its chart renders, created, in its namespace
    added = user.edit(name, webapp("web2", namespace, {"replicaCount": 1}), preview=True)
    assert added.status_code == 200, added.text
    web2 = release(added.json(), "web2")
    assert web2["change"] == "created"
    assert sorted(objects(web2, "created")) == [
        ("ConfigMap", "web2-config"),
        ("Deployment", "web2"),
        ("Service", "web2"),
    ]
    assert {o["namespace"] for o in web2["objects"]["created"]} == {namespace}

    # a value marked secret goes to the agent encrypted; the answer names the field, never the value
    secret = {**change, "values": {"replicaCount": 1, "greeting": SECRET}, "secret": ["greeting"]}
    hidden = user.edit(name, secret, preview=True)
    assert hidden.status_code == 200, hidden.text
    assert objects(release(hidden.json(), "web"), "changed")[("ConfigMap", "web-config")] == ["data.greeting"]
    assert SECRET not in hidden.text

    # removing the add-on: its objects are removed (auto_prune is on by default)
    removed = user.edit(name, {"op": "remove_addon", "stack": "apps", "name": "web"}, preview=True)
    assert removed.status_code == 200, removed.text
    gone = objects(release(removed.json(), "web"), "removed")
    assert sorted(gone) == [("ConfigMap", "web-config"), ("Deployment", "web"), ("Service", "web")]

    assert tip(tree) == before  # nothing was committed
    needle = SECRET.encode()
    assert [p for p in server.data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()] == []
    operations = server.api("GET", f"/clusters/{name}/operations", params={"page_size": 100}).json()
    assert "read:render_objects" in json.dumps(operations)  # the renders ran as read jobs


def test_without_an_agent_the_preview_lists_the_releases_and_says_why_objects_are_missing(
    server: Server,
    git: GitServer,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
    user: Browserless,
) -> None:
    name = "sbp-two"
    register(server, name)  # no agent
    tree = work_tree(git, REPO, tmp_path / "work")
    connect(server, git, tree, name, namespace, chart_repo)
    started = time.monotonic()
    answer = user.edit(name, webapp("web", namespace, {"replicaCount": 1}), preview=True)
    assert time.monotonic() - started < 20  # not a wait for the agent
    assert answer.status_code == 200, answer.text
    changes = answer.json()["cluster_changes"]
    web = release(answer.json(), "web")
    assert (web["change"], web["rendered"]) == ("created", False)
    assert f"the agent of cluster {name} is not connected" in web["reason"]
    assert changes["render"]["state"] == "not_rendered"
    assert changes["render"]["message"].startswith(
        "the objects of the charts were not rendered: the agent of"
    )
