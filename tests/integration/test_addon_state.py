"""Live add-on state in the control plane, end to end: a real server with its embedded NATS, a real
agent and the devcluster with real helm. Drift seen and healed, a failing add-on and its fix, an
agent that stops and comes back, a rollback that is held until resumed, a manual-sync add-on, and
SOPS values that never reach the server in plaintext."""

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from moorage.devcluster import DevCluster, binaries
from moorage.devcluster.chartsources import ChartRepo
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import (
    EXAMPLE,
    Agents,
    Server,
    free_port,
    register,
    wait_operation,
)

AGENT_ARGS = ("--sweep-interval", "2", "--heartbeat-interval", "1")

DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: live
spec:
  helm_registries:
    - name: local
      url: {url}
  stacks:
    - name: apps
      addons:
        - name: web
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: local
          namespace: live-apps
          configuration:
            values:
              replicaCount: 2
              {web_extra}
        - name: manual
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: local
          namespace: live-manual
          configuration:
            values:
              greeting: {greeting}
          settings:
            sync_policy: {{automated: false}}
        - name: vault
          chart_name: stateful
          chart_version: "1.0.0"
          registry_name: local
          namespace: live-vault
          configuration:
            from_file: values/stateful.enc.yaml
            encrypted_paths: [password]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    srv = Server(
        f"http://127.0.0.1:{port}",
        tmp_path_factory.mktemp("state-server"),
        port,
        env={"MOORAGE_AGENT_OFFLINE_SECONDS": "5", "MOORAGE_EXPIRE_INTERVAL_SECONDS": "1"},
    )
    srv.start()
    yield srv
    srv.stop()


def bundle(chart_repo: ChartRepo, greeting: str = "hello", web_extra: str = "") -> dict[str, Any]:
    root = DEFINITION.format(url=chart_repo.url, greeting=greeting, web_extra=web_extra)
    files = {
        "import-cluster.yaml": root,
        "values/stateful.enc.yaml": (EXAMPLE / "values" / "stateful.enc.yaml").read_text(),
    }
    return {"files": files, "root": "import-cluster.yaml"}


def apply(server: Server, chart_repo: ChartRepo, **kw: str) -> dict[str, Any]:
    queued = server.api("POST", "/clusters/live/apply", json=bundle(chart_repo, **kw))
    assert queued.status_code == 202, queued.text
    return wait_operation(server, queued.json()["id"], timeout=240)


def addon(server: Server, name: str) -> dict[str, Any]:
    response = server.api("GET", f"/clusters/live/addons/{name}")
    return response.json() if response.status_code == 200 else {"state": None, "reason": response.text}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: never happened (last: {last})")


def wait_addon(
    server: Server, name: str, state: str, timeout: float = 90, contains: str = ""
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        a = addon(server, name)
        return a if a["state"] == state and contains in a["reason"] else None

    try:
        return wait_for(f"{name} {state}", probe, timeout)  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"{name} never became {state} ({contains!r}): {addon(server, name)}") from None


def transitions(server: Server, name: str) -> list[tuple[str | None, str, str]]:
    rows = server.api("GET", f"/clusters/live/addons/{name}/transitions").json()["result"]
    return [(t["from_state"], t["to_state"], t["cause"]) for t in reversed(rows)]


def helm_history(helm: Helm, namespace: str, release: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        helm.run("history", release, "-n", namespace, "-o", "json").stdout
    )
    return rows


def test_live_state_of_every_addon(
    server: Server, agents: Agents, cluster: DevCluster, helm: Helm, kubectl: Kubectl, chart_repo: ChartRepo
) -> None:
    token = register(server, "live")
    agent = agents.start(server, token, cluster.kubeconfig, *AGENT_ARGS)
    op = apply(server, chart_repo)
    assert op["state"] == "success", json.dumps(op)[-2000:]

    # after the sync: web and vault Synced; the manual add-on waits for its own sync
    for name in ("web", "vault"):
        wait_addon(server, name, "Synced")
    wait_addon(server, "manual", "OutOfSync", contains="waiting for a manual sync")
    assert "manual" not in helm.releases("live-manual")
    synced = server.api("POST", "/clusters/live/addons/manual/sync", params={"wait": 120})
    assert synced.json()["operation_state"] == "success", synced.text
    wait_addon(server, "manual", "Synced")
    listed = server.api("GET", "/clusters/live/addons").json()
    assert listed["counts"]["Synced"] == 3
    assert addon(server, "web")["defined_at"].startswith("import-cluster.yaml:")
    assert listed["agent"] == "online"

    # kubectl scale out of band: OutOfSync naming the field, then healed back to Synced
    kubectl.run("scale", "deployment/web", "-n", "live-apps", "--replicas=5")

    def drift_seen() -> list[dict[str, Any]]:
        rows = server.api("GET", "/clusters/live/addons/web/transitions").json()["result"]
        return [
            t for t in rows if t["to_state"] == "OutOfSync" and "spec.replicas: want 2, live 5" in t["reason"]
        ]

    (seen,) = wait_for("OutOfSync with the drifted field", drift_seen)
    assert seen["cause"] == "sweep"
    wait_addon(server, "web", "Synced")
    assert ("Synced", "OutOfSync", "sweep") in transitions(server, "web")
    assert ("OutOfSync", "Synced", "heal") in transitions(server, "web")
    assert kubectl.get("deployment", "web", "-n", "live-apps")["spec"]["replicas"] == 2

    # values: the SOPS-encrypted password is masked by the agent; plaintext nowhere on the server
    plaintext = decrypted_password()
    values = server.api("GET", "/clusters/live/addons/vault/values").json()
    assert values["values"]["password"] == "********"
    assert values["values"]["username"] == "app"
    for path in ("", "/drift", "/history", "/manifest", "/events", "/transitions"):
        body = server.api("GET", f"/clusters/live/addons/vault{path}").text
        assert plaintext not in body, path
    for file in sorted(server.data_dir.rglob("*")):
        if file.is_file() and file.stat().st_size < 64 << 20:
            assert plaintext.encode() not in file.read_bytes(), f"plaintext in {file}"

    # history through the agent matches helm's own
    history = server.api("GET", "/clusters/live/addons/web/history").json()["revisions"]
    assert [r["revision"] for r in history] == [
        h["revision"] for h in reversed(helm_history(helm, "live-apps", "web"))
    ]

    # unmanaged Helm releases are listed read-only
    helm.run(
        "upgrade",
        "--install",
        "outsider",
        "webapp",
        "--repo",
        chart_repo.url,
        "-n",
        "live-outside",
        "--create-namespace",
    )
    releases = server.api("GET", "/clusters/live/releases").json()["releases"]
    managed = {(r["namespace"], r["name"]): r["managed"] for r in releases}
    assert managed[("live-outside", "outsider")] is False
    assert managed[("live-apps", "web")] is True

    # rollback to revision 1 after a change: held there, two sweeps later still; resume returns to Git
    assert apply(server, chart_repo, web_extra="greeting: second")["state"] == "success"
    wait_addon(server, "web", "Synced")
    assert len(helm_history(helm, "live-apps", "web")) == 2
    rolled = server.api(
        "POST", "/clusters/live/addons/web/rollback", params={"wait": 120}, json={"revision": 1}
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["operation_state"] == "success", rolled.text
    assert helm_history(helm, "live-apps", "web")[-1]["description"].startswith("Rollback to 1")
    wait_addon(server, "web", "OutOfSync", contains="rolled back to revision 1, out of sync with Git")
    time.sleep(5)  # two sweeps
    assert helm_history(helm, "live-apps", "web")[-1]["description"].startswith("Rollback to 1")
    assert "rolled back" in addon(server, "web")["reason"]
    resumed = server.api("POST", "/clusters/live/addons/web/resume", params={"wait": 120})
    assert resumed.json()["operation_state"] == "success", resumed.text
    wait_addon(server, "web", "Synced")
    assert helm_history(helm, "live-apps", "web")[-1]["revision"] == 4

    # manual sync: a changed definition does not deploy it; the diff is shown; `sync` deploys it
    assert apply(server, chart_repo, greeting="changed")["state"] == "success"
    waiting = wait_addon(server, "manual", "OutOfSync", contains="changes waiting for a manual sync")
    assert "values changed at greeting" in waiting["reason"]
    assert len(helm_history(helm, "live-manual", "manual")) == 1
    synced = server.api("POST", "/clusters/live/addons/manual/sync", params={"wait": 120})
    assert synced.json()["operation_state"] == "success", synced.text
    wait_addon(server, "manual", "Synced")
    assert len(helm_history(helm, "live-manual", "manual")) == 2

    # an image that never becomes ready: Degraded naming the container; the fix brings it back to Synced
    never = "image: {repository: registry.example/nginx, tag: never-ready}"
    assert apply(server, chart_repo, greeting="changed", web_extra=never)["state"] == "success"
    broken = wait_addon(server, "web", "Degraded", contains="ImagePullBackOff")
    assert "container" in broken["reason"]
    assert apply(server, chart_repo, greeting="changed")["state"] == "success"
    wait_addon(server, "web", "Synced", timeout=120)

    # the agent stopped: Unknown after the threshold; back with no manual step
    agent.terminate()
    agent.wait(60)
    wait_addon(server, "web", "Unknown", timeout=60, contains="offline")
    agents.start(server, token, cluster.kubeconfig, *AGENT_ARGS)
    wait_addon(server, "web", "Synced", timeout=120)
    assert ("Synced", "Unknown", "agent offline") in transitions(server, "web")

    # the server restarted while the cluster changed: the state converges, nothing twice
    before = server.api("GET", "/clusters/live/addons/web/transitions", params={"page_size": 500}).json()
    server.stop()
    try:  # the server comes back even when this fails: the module's next test needs it
        kubectl.run("scale", "deployment/web", "-n", "live-apps", "--replicas=4")
        wait_for(
            "heal while the server is down",
            lambda: kubectl.get("deployment", "web", "-n", "live-apps")["spec"]["replicas"] == 2,
        )
    finally:
        server.start()
    wait_addon(server, "web", "Synced", timeout=120)
    after = server.api("GET", "/clusters/live/addons/web/transitions", params={"page_size": 500}).json()
    ids = [t["at"] + t["to_state"] for t in after["result"]]
    assert len(ids) == len(set(ids))
    assert after["pagination"]["total_count"] >= before["pagination"]["total_count"]

    # a second field manager that keeps setting spec.replicas: reported as a conflict, not healed forever
    def conflict() -> dict[str, Any] | None:
        drift: dict[str, Any] = server.api("GET", "/clusters/live/addons/web/drift").json()
        if drift["conflicts"]:
            return drift
        if kubectl.get("deployment", "web", "-n", "live-apps")["spec"]["replicas"] == 2:
            kubectl.run("scale", "deployment/web", "-n", "live-apps", "--replicas=3")
        return None

    found = wait_for("a conflict over spec.replicas", conflict, timeout=120)
    (fight,) = found["conflicts"]
    assert fight["path"] == "spec.replicas"
    assert "kubectl" in fight["manager"]
    assert "/spec/replicas" in fight["ignore_entry"]
    assert "keeps changing spec.replicas" in addon(server, "web")["reason"]
    history = len(helm_history(helm, "live-apps", "web"))
    time.sleep(5)  # more sweeps: the field is left alone, and no heal ever adds a Helm revision
    assert kubectl.get("deployment", "web", "-n", "live-apps")["spec"]["replicas"] == 3
    assert len(helm_history(helm, "live-apps", "web")) == history


def decrypted_password() -> str:
    sops = str(binaries.find("sops"))
    env = {"SOPS_AGE_KEY_FILE": str(EXAMPLE / "keys" / "test-only.agekey"), "PATH": str(Path(sops).parent)}
    out = subprocess.run(
        [sops, "-d", "--extract", '["password"]', str(EXAMPLE / "values" / "stateful.enc.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert out.strip()
    return out.strip()


WATCHED = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: watched
spec:
  helm_registries:
    - name: local
      url: {url}
  stacks:
    - name: apps
      addons:
        - name: quick
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: local
          namespace: watched-apps
          configuration:
            values:
              replicaCount: 2
"""


def test_an_edit_is_seen_and_healed_without_waiting_for_the_sweep(
    server: Server, agents: Agents, cluster: DevCluster, kubectl: Kubectl, chart_repo: ChartRepo
) -> None:
    token = register(server, "watched")
    # a sweep only every ten minutes: what this test sees comes from the agent's watch
    agents.start(server, token, cluster.kubeconfig, "--sweep-interval", "600", "--heartbeat-interval", "1")
    files = {"import-cluster.yaml": WATCHED.format(url=chart_repo.url)}
    queued = server.api(
        "POST", "/clusters/watched/apply", json={"files": files, "root": "import-cluster.yaml"}
    )
    assert wait_operation(server, queued.json()["id"], timeout=240)["state"] == "success"

    def quick() -> dict[str, Any]:
        data: dict[str, Any] = server.api("GET", "/clusters/watched/addons/quick").json()
        return data

    wait_for("quick Synced", lambda: quick().get("state") == "Synced")
    kubectl.run("scale", "deployment/quick", "-n", "watched-apps", "--replicas=4")

    def seen() -> list[dict[str, Any]]:
        rows = server.api("GET", "/clusters/watched/addons/quick/transitions").json()["result"]
        return [t for t in rows if t["to_state"] == "OutOfSync" and "want 2, live 4" in t["reason"]]

    wait_for("the edit seen through the watch", seen, timeout=60)
    wait_for(
        "healed", lambda: kubectl.get("deployment", "quick", "-n", "watched-apps")["spec"]["replicas"] == 2
    )
    wait_for("Synced again", lambda: quick().get("state") == "Synced")
