"""The web UI as people use it, in a real chromium against a real server, NATS, agent, devcluster
and Git server. Each test is a journey and asserts what a person would see."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.devcluster.gitserver import GitServer, WorkTree
from tests.integration.conftest import Kubectl
from tests.integration.control_plane_support import Agents, Server, free_port, register, wait_state
from tests.integration.gitops_support import GIT_TOKEN, GIT_USER, wait_status, wait_synced, work_tree
from tests.integration.ui_support import DESKTOP, PHONE, accessibility_problems, browser, sign_in

REPO = "org/ui.git"
ROOT = "clusters/ui/import-cluster.yaml"
WRITER, READER = ("wanda", "writer-password-0001"), ("rita", "reader-password-0001")
DEFINITION = """\
apiVersion: v1
kind: ImportCluster
metadata:
  name: ui
spec:
  helm_registries:
    - name: repo
      url: "{repo}"
  stacks:
    - name: apps
      addons:
        - name: web
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: repo
          namespace: ui-apps
          configuration:
            values:
              replicaCount: 2
        - name: still
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: repo
          namespace: ui-still
          configuration:
            values:
              replicaCount: 2
          settings:
            sync_policy: {{self_heal: false}}
"""


@dataclass
class Scene:
    server: Server
    tree: WorkTree
    chart_repo: ChartRepo
    kubectl: Kubectl
    first_sha: str


@pytest.fixture(scope="module")
def scene(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevCluster, chart_repo: ChartRepo, kubectl: Kubectl
) -> Iterator[Scene]:
    base = tmp_path_factory.mktemp("ui")
    git = GitServer(base / "git", username=GIT_USER, password=GIT_TOKEN)
    git.start()
    git.create_repo(REPO)
    port = free_port()
    env = {"MOORAGE_AGENT_OFFLINE_SECONDS": "10", "MOORAGE_EXPIRE_INTERVAL_SECONDS": "1"}
    server = Server(f"http://127.0.0.1:{port}", base / "server", port, env=env)
    (base / "server").mkdir()
    server.start()
    agents = Agents(base)
    try:
        for name, password, role in ((*WRITER, "write"), (*READER, "read")):
            created = server.api(
                "POST", "/users", json={"username": name, "password": password, "role": role}
            )
            assert created.status_code == 201, created.text
        credential = {
            "name": "git-bot",
            "kind": "token",
            "username": GIT_USER,
            "secret": GIT_TOKEN,
            "hosts": ["127.0.0.1"],
        }
        assert server.api("POST", "/credentials", json=credential).status_code == 201
        token = register(server, "ui")
        agents.start(server, token, cluster.kubeconfig, "--sweep-interval", "2", "--heartbeat-interval", "1")
        wait_state(server, "ui", "online")
        tree = work_tree(git, REPO, base / "work")
        first = tree.commit_and_push({ROOT: DEFINITION.format(repo=chart_repo.url)}, "ui: first definition")
        connected = server.api(
            "PUT",
            "/clusters/ui/gitops",
            json={
                "url": git.repo_url(REPO),
                "branch": "main",
                "credential_name": "git-bot",
                "poll_interval_seconds": 3600,
            },
        )
        assert connected.status_code == 200, connected.text
        wait_synced(server, "ui", first, timeout=240)
        yield Scene(server, tree, chart_repo, kubectl, first)
    finally:
        for proc in agents.procs:
            proc.terminate()
            proc.wait(40)
        server.stop()
        git.stop()


def states_seen(page: Any) -> list[str]:
    seen: list[str] = page.evaluate("window.__seen || []")
    return seen


WATCH_ROW = """(name) => {
  window.__seen = [];
  const cell = document.querySelector(`tr[data-addon="${name}"] [data-field="state"]`);
  window.__seen.push(cell.textContent.trim());
  const note = () => window.__seen.push(cell.textContent.trim());
  new MutationObserver(note).observe(cell, {childList: true, subtree: true, characterData: true});
}"""


BANNER_TRAIL = """
document.addEventListener("DOMContentLoaded", () => {
  const b = document.querySelector('[data-field="banner"]');
  if (!b) return;
  const note = () => {
    const seen = JSON.parse(sessionStorage.getItem("banners") || "[]");
    if (seen[seen.length - 1] !== b.textContent) seen.push(b.textContent);
    sessionStorage.setItem("banners", JSON.stringify(seen));
  };
  note();
  new MutationObserver(note).observe(b, {childList: true, characterData: true, subtree: true});
});
"""


def wait_text(page: Any, selector: str, text: str, timeout: float = 60) -> None:
    page.wait_for_function(
        "([s, t]) => { const n = document.querySelector(s); return n && n.textContent.includes(t); }",
        arg=[selector, text],
        timeout=timeout * 1000,
    )


def test_a_writer_follows_a_pod_from_the_cluster_list_to_its_log(scene: Scene) -> None:
    base = scene.server.url
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, base, *WRITER)
        row = page.locator('tr[data-cluster="ui"]')
        assert "online" in row.inner_text()
        row.locator("a", has_text="ui").first.click()
        page.wait_for_url("**/clusters/ui")
        wait_text(page, 'tr[data-addon="web"] [data-field="state"]', "Synced")
        wait_text(page, 'tr[data-addon="still"] [data-field="state"]', "Synced")
        page.click('tr[data-addon="web"] a')
        page.click("nav.tabs >> text=Resource Map")
        page.wait_for_selector("svg.map .node")
        kinds = page.eval_on_selector_all(
            "svg.map .node", "ns => ns.map(n => n.dataset.kind + ':' + n.classList[1])"
        )
        assert "Deployment:h-healthy" in kinds
        assert "ReplicaSet:h-healthy" in kinds
        assert kinds.count("Pod:h-healthy") == 2
        page.click('svg.map .node[data-kind="Pod"]')
        page.wait_for_function(
            """() => { const l = document.querySelector('[data-testid=pod-log]');
                       return l && l.textContent.includes('log line'); }""",
            timeout=30_000,
        )
        assert "log line" in page.inner_text("[data-testid=pod-log]")


def test_drift_shows_up_live_and_is_explained_field_by_field(scene: Scene) -> None:
    base = scene.server.url
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, base, *WRITER, next_path="/clusters/ui")
        wait_text(page, 'tr[data-addon="web"] [data-field="state"]', "Synced")
        page.evaluate(WATCH_ROW, "web")
        scene.kubectl.run("scale", "deployment/web", "-n", "ui-apps", "--replicas=5")
        page.wait_for_function("() => (window.__seen || []).includes('OutOfSync')", timeout=60_000)
        wait_text(page, 'tr[data-addon="web"] [data-field="state"]', "Synced")  # self-heal, no reload
        assert states_seen(page)[0] == "Synced"

        page.evaluate(WATCH_ROW, "still")
        scene.kubectl.run("scale", "deployment/still", "-n", "ui-still", "--replicas=5")
        wait_text(page, 'tr[data-addon="still"] [data-field="state"]', "OutOfSync")
        assert "spec.replicas: want 2, live 5" in page.inner_text(
            'tr[data-addon="still"] [data-field="reason"]'
        )
        page.click('tr[data-addon="still"] a')
        page.click("nav.tabs >> text=Drift")
        row = page.locator("table.diff tr", has_text="spec.replicas")
        assert row.locator("td").all_inner_texts() == ["2", "5"]
    scene.kubectl.run("scale", "deployment/still", "-n", "ui-still", "--replicas=2")


def test_a_typo_in_git_shows_the_error_with_file_line_and_suggestion_then_the_fix_syncs(scene: Scene) -> None:
    base = scene.server.url
    good = DEFINITION.format(repo=scene.chart_repo.url)
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        # every banner text the page shows, across the reloads the page does by itself
        page.add_init_script(BANNER_TRAIL)
        sign_in(page, base, *WRITER, next_path="/clusters/ui/gitops")
        assert page.inner_text('[data-field="banner"]') == "Synced"
        bad = scene.tree.commit_and_push({ROOT: good.replace("chart_version:", "chart_verison:", 1)}, "typo")
        page.click("text=Sync Now")
        page.wait_for_selector(".panel.error ul.issues li", timeout=60_000)
        issue = page.inner_text(".panel.error ul.issues")
        assert ROOT in issue
        assert "did you mean 'chart_version'" in issue
        assert f"{ROOT}:" in issue  # with its line
        assert page.inner_text('[data-field="banner"]') == "Error"
        banners: list[str] = page.evaluate("JSON.parse(sessionStorage.getItem('banners') || '[]')")
        assert "Syncing" in banners, banners
        assert banners.index("Syncing") < len(banners) - 1 - banners[::-1].index("Error")
        failed_row = page.locator("#history tbody tr").first
        assert "failed" in failed_row.inner_text()
        assert bad[:12] in failed_row.inner_text()

        fixed = scene.tree.commit_and_push(
            {ROOT: good.replace("replicaCount: 2", "replicaCount: 2\n              greeting: fixed", 1)},
            "fix",
        )
        page.click("text=Sync Now")
        wait_synced(scene.server, "ui", fixed, timeout=120)
        page.wait_for_function(
            """(sha) => { const row = document.querySelector('#history tbody tr');
                          return row && row.textContent.includes(sha)
                                     && row.textContent.includes('success'); }""",
            arg=fixed[:12],
            timeout=30_000,
        )
        newest = page.locator("#history tbody tr").first
        assert "success" in newest.inner_text()
        assert newest.locator(f"a[href$='{fixed}']").count() == 1  # the commit, linked
        files = newest.locator("a", has_text="definition").get_attribute("href") or ""
        assert f"/{fixed}/clusters/ui" in files  # the definition's files at that commit
        wait_status(scene.server, "ui", lambda s: s["sync_status"] == "synced")


def test_a_reader_sees_no_buttons_and_the_api_refuses_them_anyway(scene: Scene) -> None:
    base = scene.server.url
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, base, *READER, next_path="/clusters/ui/gitops")
        assert page.locator("text=Sync Now").count() == 0
        page.goto(f"{base}/clusters/ui/addons/web?tab=history")
        page.wait_for_selector("#history table")
        assert page.locator("[data-action=rollback]").count() == 0
        assert page.locator("[data-action=post]").count() == 0
        page.goto(f"{base}/clusters")
        assert page.locator("[data-action=register-open]").count() == 0
        status = page.evaluate(
            """async () => {
                 const token = (await (await fetch('/api/v1/session')).json()).csrf_token;
                 const sent = {method: 'POST', headers: {'X-CSRF-Token': token}};
                 return (await fetch('/api/v1/clusters/ui/gitops/sync', sent)).status; }"""
        )
        assert status == 403


def test_sign_in_refuses_clearly_and_the_session_is_guarded(scene: Scene) -> None:
    base = scene.server.url
    with browser() as b:
        context = b.new_context(viewport=DESKTOP)
        page = context.new_page()
        messages = []
        for user, password in ((WRITER[0], "not-the-password-1"), ("nobody-here", "not-the-password-1")):
            page.goto(f"{base}/login")
            page.fill("#username", user)
            page.fill("#password", password)
            page.click("#signin button[type=submit]")
            page.wait_for_selector("#signin-error:not([hidden])")
            messages.append(page.inner_text("#signin-error"))
        assert messages == ["Wrong username or password."] * 2  # no hint which part was wrong
        sign_in(page, base, *WRITER)
        (cookie,) = [c for c in context.cookies() if c["name"] == "moorage_session"]
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] in ("Lax", "Strict")
        assert page.evaluate("document.cookie").find("moorage_session") == -1
        without = page.evaluate(
            "async () => (await fetch('/api/v1/clusters/ui/gitops/sync', {method: 'POST'})).status"
        )
        assert without == 403
        page.click("text=Sign out")
        page.wait_for_url("**/login")
        page.goto(f"{base}/clusters")
        assert "/login" in page.url


PAGES = [
    "/clusters",
    "/clusters/ui",
    "/clusters/ui/addons/web",
    "/clusters/ui/addons/web?tab=map",
    "/clusters/ui/addons/web?tab=drift",
    "/clusters/ui/addons/web?tab=history",
    "/clusters/ui/gitops",
    "/clusters/ui/resources",
    "/clusters/ui/settings",
    "/operations",
]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390-phone"])
def test_every_page_is_accessible_and_fits(scene: Scene, viewport: dict[str, int], tmp_path: Path) -> None:
    base = scene.server.url
    problems: dict[str, list[str]] = {}
    with browser() as b:
        page = b.new_page(viewport=viewport)
        page.goto(f"{base}/login")
        problems["/login"] = accessibility_problems(page)
        sign_in(page, base, *WRITER)
        for path in PAGES:
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            time.sleep(0.3)
            found = accessibility_problems(page)
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > viewport["width"] + 2:
                found.append(f"the page is {width}px wide at a {viewport['width']}px viewport")
            if found:
                problems[path] = found
                page.screenshot(
                    path=str(tmp_path / (path.strip("/").replace("/", "_") + ".png")), full_page=True
                )
    assert {p: v for p, v in problems.items() if v} == {}
