"""The Stack Builder page in a real chromium against a real server, NATS, agent, devcluster, Git
server and chart repository: a writer adds an add-on from the catalog, sets a value and marks one
secret, previews, saves; the commit is theirs, the sync deploys it; a reader sees no builder."""

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
from tests.integration.gitops_support import GIT_TOKEN, GIT_USER, wait_synced, work_tree
from tests.integration.ui_support import DESKTOP, accessibility_problems, browser, sign_in

REPO = "org/builder.git"
ROOT = "clusters/sbui/import-cluster.yaml"
RECIPIENT = "age1xc9s44auavrgsep532mql7v0hgz2mgsxmk5q627aa2raffyfk9es8yrkjl"
WRITER, READER = ("wendy", "writer-password-0002"), ("reggie", "reader-password-0002")
SECRET = "Browser-Plaintext-5e0c77"
DEFINITION = """\
# the Stack Builder page's cluster
apiVersion: v1
kind: ImportCluster
metadata:
  name: sbui
spec:
  helm_registries:
    - name: repo
      url: "{repo}"
  stacks:
    - name: apps
      manifests:
        - name: ns-sbui  # the add-on's namespace
          manifest: |
            apiVersion: v1
            kind: Namespace
            metadata:
              name: sbui-apps
"""


@dataclass
class Scene:
    server: Server
    tree: WorkTree
    first_sha: str


@pytest.fixture(scope="module")
def scene(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevCluster, chart_repo: ChartRepo
) -> Iterator[Scene]:
    base = tmp_path_factory.mktemp("sbui")
    git = GitServer(base / "git", username=GIT_USER, password=GIT_TOKEN)
    git.start()
    git.create_repo(REPO)
    registries = base / "registries.yaml"
    registries.write_text(f"registries:\n  - name: repo\n    url: {chart_repo.url}\n")
    port = free_port()
    server = Server(
        f"http://127.0.0.1:{port}", base / "server", port, env={"MOORAGE_GLOBAL_REGISTRIES": str(registries)}
    )
    (base / "server").mkdir()
    server.start()
    agents = Agents(base)
    try:
        for name, password, role in ((*WRITER, "write"), (*READER, "read")):
            created = server.api(
                "POST", "/users", json={"username": name, "password": password, "role": role}
            )
            assert created.status_code == 201, created.text
        credential = {"name": "git-bot", "kind": "token", "username": GIT_USER, "secret": GIT_TOKEN}
        assert (
            server.api("POST", "/credentials", json={**credential, "hosts": ["127.0.0.1"]}).status_code == 201
        )
        agents.start(server, register(server, "sbui"), cluster.kubeconfig)
        wait_state(server, "sbui", "online")
        tree = work_tree(git, REPO, base / "work")
        sops = f"creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    age: {RECIPIENT}\n"
        first = tree.commit_and_push(
            {ROOT: DEFINITION.format(repo=chart_repo.url), ".sops.yaml": sops}, "sbui: first definition"
        )
        body = {"url": git.repo_url(REPO), "branch": "main", "credential_name": "git-bot"}
        connected = server.api("PUT", "/clusters/sbui/gitops", json={**body, "poll_interval_seconds": 3600})
        assert connected.status_code == 200, connected.text
        wait_synced(server, "sbui", first, timeout=240)
        yield Scene(server, tree, first)
    finally:
        for proc in agents.procs:
            proc.terminate()
            proc.wait(40)
        server.stop()
        git.stop()


def wait_addon(server: Server, name: str, state: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = server.api("GET", f"/clusters/sbui/addons/{name}")
        last = response.json() if response.status_code == 200 else {"state": None}
        if last.get("state") == state:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{name} never became {state}: {last}")


def test_a_writer_adds_an_addon_from_the_catalog_with_a_secret_value_and_it_deploys(
    scene: Scene, kubectl: Kubectl, tmp_path: Path
) -> None:
    server = scene.server
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, server.url, *WRITER, next_path="/clusters/sbui/stacks")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="ns-sbui"]')
        assert page.locator("#stacks-source").inner_text().startswith(f"{ROOT} at commit ")
        problems = accessibility_problems(page)
        assert problems == [], problems

        page.fill("#sb-search", "webapp")
        page.click("#sb-find")
        page.wait_for_function(
            "() => document.querySelector('#sb-chart').selectedOptions[0]?.text.startsWith('webapp')"
        )
        page.wait_for_function(
            "() => document.querySelector('#sb-defaults').textContent.includes('greeting: hello')"
        )
        assert page.input_value("#sb-name") == "webapp"
        page.fill("#sb-name", "web-ui")
        page.fill("#sb-namespace", "sbui-apps")
        page.fill("#sb-values", f"replicaCount: 1\ngreeting: {SECRET}\n")
        page.click("#sb-sops")
        assert page.get_attribute("#sb-sops", "aria-pressed") == "true"
        page.fill("#sb-secret", "greeting")

        page.click("#sb-preview")
        page.wait_for_selector("#sb-diff:not([hidden])")
        assert "+        - name: web-ui" in page.inner_text("#sb-diff")
        assert "nothing was committed" in page.inner_text("#sb-saved")
        assert "release web-ui (webapp 1.0.0) in sbui-apps: created" in page.inner_text("#sb-impact")
        objects = page.locator('#sb-impact [data-release="web-ui"] [data-change="created"]').inner_text()
        for created in (
            "ConfigMap sbui-apps/web-ui-config",
            "Deployment sbui-apps/web-ui",
            "Service sbui-apps/web-ui",
        ):
            assert created in objects  # rendered by the agent
        assert accessibility_problems(page) == []
        assert SECRET not in page.inner_text("#sb-result")
        assert scene.tree.git("ls-remote", "origin", "refs/heads/main").split()[0] == scene.first_sha

        page.click("#sb-save")
        page.wait_for_function(
            "() => document.querySelector('#sb-saved').textContent.startsWith('Committed ')"
        )
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="web-ui"]')
        page.screenshot(path=str(tmp_path / "stack-builder.png"), full_page=True)

    scene.tree.git("pull", "--quiet")
    log = scene.tree.git("log", "-1", "--format=%an|%H").strip().split("|")
    assert log[0] == WRITER[0]
    encrypted = (scene.tree.path / "clusters/sbui/values/web-ui.enc.yaml").read_text()
    assert "greeting: ENC[AES256_GCM," in encrypted
    wait_synced(server, "sbui", log[1], timeout=240)
    wait_addon(server, "web-ui", "Synced")
    assert kubectl.get("configmap", "web-ui-config", "-n", "sbui-apps")["data"]["greeting"] == SECRET


def test_a_writer_adds_a_manifest_sets_its_parents_and_the_stacks_wave(
    scene: Scene, kubectl: Kubectl
) -> None:
    server = scene.server
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, server.url, *WRITER, next_path="/clusters/sbui/stacks")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="ns-sbui"]')
        page.fill("#sm-name", "cm-page")
        page.fill("#sm-namespace", "sbui-apps")
        page.fill(
            "#sm-yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-page\ndata:\n  a: b\n"
        )
        page.click("#sm-save")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="cm-page"]')
        page.fill("#parents-apps-manifest-cm-page", "manifest:ns-sbui")
        page.click('[data-set-parents="cm-page"]')
        page.wait_for_function(
            "() => document.querySelector('#parents-apps-manifest-cm-page')?.value === 'manifest:ns-sbui'"
            " && document.querySelector('#toast').textContent.includes('Parents of cm-page')"
        )
        page.fill("#wave-apps", "2")
        page.click('[data-set-wave="apps"]')
        page.wait_for_function(
            "() => document.querySelector('[data-stack=\"apps\"] h2').textContent.includes('wave 2')"
        )
        problems = accessibility_problems(page)
        assert problems == [], problems

    scene.tree.git("pull", "--quiet")
    text = (scene.tree.path / ROOT).read_text()
    assert "        - name: cm-page\n" in text
    assert "          parents:\n            - manifest: ns-sbui\n" in text
    assert "      deploy_wave: 2\n" in text
    assert "# the Stack Builder page's cluster\n" in text
    head = scene.tree.git("log", "-1", "--format=%H").strip()
    wait_synced(server, "sbui", head, timeout=240)
    assert kubectl.get("configmap", "from-page", "-n", "sbui-apps")["data"]["a"] == "b"


def test_a_writer_saves_to_a_branch_for_review_and_keeps_the_stack_as_a_template(scene: Scene) -> None:
    server = scene.server
    tracked = scene.tree.git("ls-remote", "origin", "refs/heads/main").split()[0]
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, server.url, *WRITER, next_path="/clusters/sbui/stacks")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="ns-sbui"]')
        page.fill("#sb-search", "webapp")
        page.click("#sb-find")
        page.wait_for_function(
            "() => document.querySelector('#sb-chart').selectedOptions[0]?.text.startsWith('webapp')"
        )
        page.fill("#sb-name", "web-review")
        page.fill("#sb-namespace", "sbui-apps")
        page.fill("#sb-branch", "review/web")
        page.click("#sb-save")
        page.wait_for_selector("#sb-saved a")
        assert "on the new branch review/web" in page.inner_text("#sb-saved")
        assert page.get_attribute("#sb-saved a", "href").endswith("/compare/main...review/web?expand=1")
        assert scene.tree.git("ls-remote", "origin", "refs/heads/main").split()[0] == tracked

        page.select_option("#st-stack", "apps")
        page.fill("#st-path", "stacks/sbui-apps.yaml")
        page.click("#st-save")
        page.wait_for_function(
            "() => document.querySelector('#st-result').textContent.startsWith('Kept as a template')"
        )
        page.wait_for_selector('[data-stack="apps"] p:has-text("defined in stacks/sbui-apps.yaml")')
    scene.tree.git("pull", "--quiet")
    assert "    - include: ../../stacks/sbui-apps.yaml\n" in (scene.tree.path / ROOT).read_text()
    assert (scene.tree.path / "stacks" / "sbui-apps.yaml").read_text().startswith("name: apps\n")


def test_values_are_checked_against_the_charts_schema_while_typed(scene: Scene) -> None:
    before = scene.tree.git("ls-remote", "origin", "refs/heads/main").split()[0]
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, scene.server.url, *WRITER, next_path="/clusters/sbui/stacks")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="ns-sbui"]')
        page.fill("#sb-search", "strict")
        page.click("#sb-find")
        page.wait_for_function(
            "() => document.querySelector('#sb-chart').selectedOptions[0]?.text.startsWith('strict')"
        )
        page.wait_for_function(
            "() => document.querySelector('#sb-schema-note').textContent.includes('replicas')"
        )
        page.fill("#sb-name", "strict-ui")
        page.fill("#sb-namespace", "sbui-apps")
        page.locator("#sb-values").press_sequentially("replicas: 50\nlogLevel: info\n")
        page.wait_for_selector("#sb-values-check li.error")
        assert "replicas" in page.inner_text("#sb-values-check")
        page.fill("#sb-values", "")
        page.locator("#sb-values").press_sequentially("replicas: 3\nlogLevel: info\n")
        page.wait_for_selector("#sb-values-check li.ok")
    assert scene.tree.git("ls-remote", "origin", "refs/heads/main").split()[0] == before  # nothing committed


def options(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#sb-complete [role=option] .label").all_inner_texts()]


def test_the_values_editor_completes_keys_from_the_charts_defaults_and_schema(scene: Scene) -> None:
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, scene.server.url, *WRITER, next_path="/clusters/sbui/stacks")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="ns-sbui"]')
        page.fill("#sb-search", "webapp")
        page.click("#sb-find")
        page.wait_for_function(
            "() => document.querySelector('#sb-defaults').textContent.includes('greeting: hello')"
        )
        values = page.locator("#sb-values")
        values.press_sequentially("serv")  # webapp has no schema: its default values give the keys
        page.wait_for_selector("#sb-complete:not([hidden]) [role=option]")
        assert options(page) == ["service"]
        assert page.inner_text("#sb-complete-0 .type") == "object"
        assert values.get_attribute("aria-activedescendant") == "sb-complete-0"
        problems = accessibility_problems(page)
        assert problems == [], problems
        values.press("Enter")
        assert values.input_value() == "service:\n  "
        assert options(page) == ["type", "port"]
        values.press_sequentially("po")
        values.press("Tab")
        assert values.input_value() == "service:\n  port: "
        values.press("Control+Space")
        assert options(page) == ["80"]  # the chart's default, when asked
        values.press("Escape")
        assert page.locator("#sb-complete").is_hidden()

        page.fill("#sb-search", "strict")  # a values.schema.json: its types and enums
        page.click("#sb-find")
        page.wait_for_function(
            "() => document.querySelector('#sb-schema-note').textContent.includes('replicas')"
        )
        page.fill("#sb-values", "replicas: 2\n")
        values.press("Control+End")
        values.press_sequentially("lo")
        page.wait_for_function(
            "() => document.querySelector('#sb-complete-0 .label')?.textContent === 'logLevel'"
        )
        values.press("Enter")
        assert values.input_value() == "replicas: 2\nlogLevel: "
        assert options(page) == ["debug", "info", "warn", "error"]
        page.click("#sb-complete [role=option]:has-text('warn')")
        assert values.input_value() == "replicas: 2\nlogLevel: warn"


def entry_names(server: Server, kind: str) -> list[str]:
    listed = server.api("GET", "/clusters/sbui/stacks").json()
    stack = next(s for s in listed["stacks"] if s["name"] == "apps")
    return [e["name"] for e in stack[kind]]


def test_a_writer_reorders_manifests_and_stacks_with_the_move_buttons_by_keyboard(scene: Scene) -> None:
    server = scene.server
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: order-me\n  namespace: sbui-apps\n"
    edits = [
        {"op": "add_manifest", "stack": "apps", "manifest": {"name": "cm-order", "manifest": configmap}},
        {"op": "add_stack", "stack": {"name": "later", "manifests": []}},
    ]
    added = server.api("POST", "/clusters/sbui/stacks/edits", json={"edits": edits})
    assert added.status_code == 201, added.text
    before = entry_names(server, "manifests")
    assert before[-1] == "cm-order"
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, server.url, *WRITER, next_path="/clusters/sbui/stacks")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="cm-order"]')
        assert page.locator('[data-move-down="cm-order"]').is_disabled()  # the last of its list
        page.focus('[data-move-up="cm-order"]')
        page.keyboard.press("Enter")
        page.wait_for_function(
            "() => document.querySelector('#toast').textContent.includes('Moved cm-order up')"
        )
        page.wait_for_function(  # the focus is on a move button of the moved entry again
            "() => document.activeElement?.closest('tr')?.dataset.entry === 'cm-order'"
            " && document.activeElement.matches('[data-move-up], [data-move-down]')"
        )
        rows = page.locator('[data-stack="apps"] tr[data-entry]')
        shown = [rows.nth(i).get_attribute("data-entry") for i in range(rows.count())]
        assert shown.index("cm-order") == len(before) - 2

        page.focus('[data-move-stack-up="later"]')
        page.keyboard.press("Space")
        page.wait_for_function(
            "() => document.querySelector('#stacks section.stack')?.dataset.stack === 'later'"
        )
        problems = accessibility_problems(page)
        assert problems == [], problems
    assert entry_names(server, "manifests") == [*before[:-2], "cm-order", before[-2]]
    listed = server.api("GET", "/clusters/sbui/stacks").json()
    assert [s["name"] for s in listed["stacks"]] == ["later", "apps"]
    scene.tree.git("pull", "--quiet")
    log = scene.tree.git("log", "-2", "--format=%an %s").splitlines()
    assert log[0].startswith(f"{WRITER[0]} sbui: move stack later before apps")
    assert "move manifest cm-order before" in log[1]


def test_a_reader_sees_the_stacks_but_no_builder(scene: Scene) -> None:
    with browser() as b:
        page = b.new_page(viewport=DESKTOP)
        sign_in(page, scene.server.url, *READER, next_path="/clusters/sbui/stacks")
        page.wait_for_selector('[data-stack="apps"] tr[data-entry="ns-sbui"]')
        assert page.locator("#add-addon").count() == 0
        assert page.locator("#add-manifest").count() == 0
        assert page.locator("[data-set-parents]").count() == 0
        assert page.locator("[data-remove]").count() == 0
        assert page.locator("[data-move-up], [data-move-down], [data-move-stack-up]").count() == 0
