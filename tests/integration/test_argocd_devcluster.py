"""Argo CD on the devcluster (issue 13, step 1): the real application-controller and repo-server,
built from the Go module proxy, deploy a Helm chart from the tests' chart repository as an
Application, and heal drift made with kubectl."""

import base64
import json
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from moorage import devcluster
from moorage.devcluster import argocd, chartsources
from moorage.engine import argocd as engine_argocd
from moorage.engine import argocd_app, migrate
from moorage.engine.executor import sync
from moorage.engine.observe import observe
from moorage.engine.outcome import EntryStatus
from moorage.spec.lifecycle import AddonState, Cause, ServerView, decide
from moorage.spec.loader import LoadOptions, load
from moorage.spec.report import Location
from moorage.spec.sops import decrypt_yaml
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import (
    Agents,
    Server,
    free_port,
    register,
    wait_operation,
    wait_state,
)
from tests.integration.engine_support import Engine, new_definition

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitops-repo"
EXAMPLE_KEY = EXAMPLE / "keys" / "test-only.agekey"  # TEST ONLY, public on purpose


@pytest.fixture(scope="module")
def argo(cluster: devcluster.DevCluster) -> Iterator[argocd.ArgoCD]:
    ports = argocd.start(cluster, age_key_file=EXAMPLE_KEY)  # the plugin's key, as a sidecar's Secret
    try:
        yield ports
    finally:
        argocd.stop(cluster)


def application(name: str, repo_url: str, namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": argocd.NAMESPACE},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": repo_url,
                "chart": "webapp",
                "targetRevision": "1.0.0",
                "helm": {"valuesObject": {"replicaCount": replicas}},
            },
            "destination": {"server": argocd.IN_CLUSTER, "namespace": namespace},
            "syncPolicy": {"automated": {"selfHeal": True}, "syncOptions": ["ServerSideApply=true"]},
        },
    }


def wait_for(what: str, check: Any, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout:.0f}s; last seen: {last!r}")


def app_status(kubectl: Kubectl, name: str) -> tuple[str, str]:
    app = kubectl.get("application", name, "-n", argocd.NAMESPACE)
    status = app.get("status", {})
    return status.get("sync", {}).get("status", ""), status.get("health", {}).get("status", "")


def test_argo_cd_deploys_a_chart_and_heals_drift(
    argo: argocd.ArgoCD, kubectl: Kubectl, chart_repo: chartsources.ChartRepo, namespace: str
) -> None:
    name = f"webapp-{namespace}"
    kubectl.run("apply", "-f", "-", input=json.dumps(application(name, chart_repo.url, namespace, 3)))
    wait_for(
        "the Application Synced and Healthy",
        lambda: app_status(kubectl, name) == ("Synced", "Healthy") or None,
    )
    deployments = kubectl.get("deployments", "-n", namespace)["items"]
    assert [d["spec"]["replicas"] for d in deployments] == [3]  # the values reached the chart
    deployment = deployments[0]["metadata"]["name"]

    kubectl.run("scale", "deployment", deployment, "-n", namespace, "--replicas=5")
    wait_for(
        "self-heal to put replicas back to 3",
        lambda: kubectl.get("deployment", deployment, "-n", namespace)["spec"]["replicas"] == 3,
    )
    kubectl.run("delete", "application", name, "-n", argocd.NAMESPACE, "--wait=false")


ARGO_DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: argo-SFX
spec:
  deployment_engine: argo_cd
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      addons:
        - name: web-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: apps-SFX
          configuration:
            values:
              replicaCount: {replicas}
"""

EMPTY_DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: argo-SFX
spec:
  deployment_engine: argo_cd
  stacks:
    - name: apps
      manifests:
        - name: placeholder-SFX
          manifest: |
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: placeholder-SFX
              namespace: default
"""


async def test_the_argo_cd_engine_deploys_observes_and_prunes_an_add_on(
    argo: argocd.ArgoCD,
    cluster: devcluster.DevCluster,
    kubectl: Kubectl,
    chart_repo: chartsources.ChartRepo,
    helm_home: Path,
    tmp_path: Path,
) -> None:
    """deployment_engine argo_cd: the add-on becomes an Application that Argo CD syncs (no Helm release),
    Moorage's observation says Synced from Argo CD's status, and a removal deletes the Application and,
    since the add-on may be pruned, its resources."""
    d = new_definition(tmp_path)
    d.write(ARGO_DEFINITION.format(http=chart_repo.url, replicas=2))
    resolved, plan = d.load()
    name, ns = d.ns("web"), d.ns("apps")
    async with Engine(cluster.kubeconfig, helm_home, timeout_seconds=180) as ctx:
        first = await sync(ctx, resolved, plan)
        assert first.ok, {r: o.message for r, o in first.outcomes.items()}
        assert first.outcomes[f"addon/{name}"].status is EntryStatus.APPLIED
        assert kubectl.get("deploy", name, "-n", ns)["spec"]["replicas"] == 2
        helm_secrets = kubectl.get("secrets", "-n", ns, "-l", "owner=helm")["items"]
        assert helm_secrets == []  # Argo CD renders with helm template: no Helm release

        again = await sync(ctx, resolved, plan)
        assert again.outcomes[f"addon/{name}"].status is EntryStatus.UNCHANGED

        (obs,) = await observe(ctx, resolved, cause=Cause.SWEEP)
        assert obs.engine == "argo_cd"
        assert obs.installed
        assert obs.health == "Healthy"
        life = decide(obs, ServerView(agent_online=True))
        assert life.state is AddonState.SYNCED, life.reason

        d.write(ARGO_DEFINITION.format(http=chart_repo.url, replicas=4))
        changed, changed_plan = d.load()
        (stale,) = await observe(ctx, changed, cause=Cause.SWEEP)
        assert not stale.definition_matches
        assert "values differ" in stale.definition_diff
        updated = await sync(ctx, changed, changed_plan)
        assert updated.outcomes[f"addon/{name}"].status is EntryStatus.APPLIED
        assert kubectl.get("deploy", name, "-n", ns)["spec"]["replicas"] == 4

        d.write(EMPTY_DEFINITION)
        emptied, empty_plan = d.load()
        removed = await sync(ctx, emptied, empty_plan)
        assert removed.outcomes[f"addon/{name}"].status is EntryStatus.APPLIED, removed.outcomes
        assert name in removed.pruned_addons
    wait_for(
        "Argo CD to delete the Application and its resources",
        lambda: (
            kubectl.run("get", "deploy", name, "-n", ns, check=False).returncode != 0
            and kubectl.run("get", "application", name, "-n", argocd.NAMESPACE, check=False).returncode != 0
        ),
    )


def metadata_of(kubectl: Kubectl, kind: str, name: str, ns: str) -> dict[str, Any]:
    meta = kubectl.get(kind, name, "-n", ns)["metadata"]
    return {
        "uid": meta["uid"],
        "labels": meta.get("labels") or {},
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if "revision" not in k},
    }


async def test_migration_from_argo_cd_keeps_every_object_and_pod(
    argo: argocd.ArgoCD,
    cluster: devcluster.DevCluster,
    kubectl: Kubectl,
    chart_repo: chartsources.ChartRepo,
    helm_home: Path,
    tmp_path: Path,
) -> None:
    """engine argo_cd -> ankra_native in the definition: the next sync takes Argo CD off the add-on,
    helm adopts the objects, and the Application goes; no object and no Pod is recreated, and the only
    metadata that changes is Helm's label and annotations."""
    d = new_definition(tmp_path)
    d.write(ARGO_DEFINITION.format(http=chart_repo.url, replicas=2))
    resolved, plan = d.load()
    name, ns = d.ns("web"), d.ns("apps")
    async with Engine(cluster.kubeconfig, helm_home, timeout_seconds=180) as ctx:
        first = await sync(ctx, resolved, plan)
        assert first.ok, {r: o.message for r, o in first.outcomes.items()}
        wait_for("two pods Running", lambda: len(kubectl.get("pods", "-n", ns)["items"]) == 2)
        objects = {"deployment": name, "service": name, "configmap": f"{name}-config"}
        before = {kind: metadata_of(kubectl, kind, obj, ns) for kind, obj in objects.items()}
        pods_before = sorted(p["metadata"]["uid"] for p in kubectl.get("pods", "-n", ns)["items"])

        d.write(ARGO_DEFINITION.format(http=chart_repo.url, replicas=2).replace("argo_cd", "ankra_native"))
        native, native_plan = d.load()
        moved = await sync(ctx, native, native_plan)
        outcome = moved.outcomes[f"addon/{name}"]
        assert outcome.status is EntryStatus.APPLIED, outcome.message
        assert outcome.reason == "migrated_from_argocd"
        assert kubectl.run("get", "application", name, "-n", argocd.NAMESPACE, check=False).returncode != 0

        again = await sync(ctx, native, native_plan)
        assert again.outcomes[f"addon/{name}"].status is EntryStatus.UNCHANGED
        migrated = {kind: metadata_of(kubectl, kind, obj, ns) for kind, obj in objects.items()}

        # and back (a rollback of the migration): Argo CD takes the objects, the Helm release is forgotten
        d.write(ARGO_DEFINITION.format(http=chart_repo.url, replicas=2))
        back, back_plan = d.load()
        returned = await sync(ctx, back, back_plan)
        outcome = returned.outcomes[f"addon/{name}"]
        assert outcome.status is EntryStatus.APPLIED, outcome.message
        assert outcome.reason == "moved_to_argocd"
        assert kubectl.get("secrets", "-n", ns, "-l", f"owner=helm,name={name}")["items"] == []
        assert app_status(kubectl, name) == ("Synced", "Healthy")
        for kind, obj in objects.items():
            assert metadata_of(kubectl, kind, obj, ns)["uid"] == before[kind]["uid"], f"{kind} was recreated"
        assert sorted(p["metadata"]["uid"] for p in kubectl.get("pods", "-n", ns)["items"]) == pods_before

        # and native once more, for the checks below
        moved = await sync(ctx, native, native_plan)
        assert moved.outcomes[f"addon/{name}"].reason == "migrated_from_argocd"
    helm_added_labels = {"app.kubernetes.io/managed-by"}
    helm_added_annotations = {"meta.helm.sh/release-name", "meta.helm.sh/release-namespace"}
    for kind, obj in objects.items():  # the second migration ends exactly where the first did
        assert metadata_of(kubectl, kind, obj, ns) == migrated[kind], kind
    for kind, old in before.items():
        new = metadata_of(kubectl, kind, objects[kind], ns)
        assert new["uid"] == old["uid"], f"{kind} was recreated"
        assert {k: v for k, v in new["labels"].items() if k not in helm_added_labels} == {
            k: v for k, v in old["labels"].items() if k not in helm_added_labels
        }, kind
        assert new["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert {k: v for k, v in new["annotations"].items() if k not in helm_added_annotations} == old[
            "annotations"
        ]
        assert new["annotations"]["meta.helm.sh/release-name"] == name
    assert sorted(p["metadata"]["uid"] for p in kubectl.get("pods", "-n", ns)["items"]) == pods_before


PREVIEW_DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: argo-SFX
spec:
  deployment_engine: ENGINE
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      addons:
        - name: web-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: apps-SFX
        - name: hook-SFX
          chart_name: hooked
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: apps-SFX
          configuration:
            values:
              image: registry.example/never-ready:1
        - name: multi-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: multi-SFX
"""


async def test_the_preview_and_the_migration_hold_back_in_flight_and_multi_source_applications(
    argo: argocd.ArgoCD,
    cluster: devcluster.DevCluster,
    kubectl: Kubectl,
    chart_repo: chartsources.ChartRepo,
    helm_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the real Argo CD: a sync stuck on a PreSync hook (its Job's image never starts) is in
    flight, and a multi-source Application cannot become one Helm release. The preview says so, and
    the migration to the native engine moves only the eligible add-on, leaving the other two
    Applications in place."""
    d = new_definition(tmp_path)
    web, hook, multi = d.ns("web"), d.ns("hook"), d.ns("multi")
    async with Engine(cluster.kubeconfig, helm_home, timeout_seconds=180) as ctx:
        d.write(ARGO_DEFINITION.format(http=chart_repo.url, replicas=1))  # web through the ArgoCD engine
        first = await sync(ctx, *d.load())
        assert first.ok, {r: o.message for r, o in first.outcomes.items()}
        # the other two written as Moorage's ArgoCD engine would write them, without waiting for them
        d.write(PREVIEW_DEFINITION.format(http=chart_repo.url).replace("ENGINE", "argo_cd"))
        resolved, _ = d.load()
        for name in (hook, multi):
            addon = resolved.addons[name]
            app = argocd_app.application(addon, resolved.name, addon.values.reveal() or {})
            if name == multi:
                source = app["spec"].pop("source")
                app["spec"]["sources"] = [source, {**source, "helm": {"valuesObject": {"replicaCount": 2}}}]
                app["spec"]["syncPolicy"].pop("automated", None)
            kubectl.run("apply", "-f", "-", input=json.dumps(app))
        wait_for(
            "Argo CD to hold the hook's sync in flight",
            lambda: (
                kubectl.get("application", hook, "-n", argocd.NAMESPACE)
                .get("status", {})
                .get("operationState", {})
                .get("phase")
                == "Running"
            ),
        )

        preview = await engine_argocd.migration_preview(ctx, 0, 500)
        found = {a["application"]: a for a in preview["applications"]}
        assert found[web]["eligible"], found[web]
        assert {"Deployment", "Service", "ConfigMap"} <= set(found[web]["kinds"])
        assert found[web]["no_health_rule"] == []  # every kind the webapp chart has is judged
        assert not found[hook]["eligible"]
        assert "sync is in flight" in " ".join(found[hook]["reasons"])
        assert not found[multi]["eligible"]
        assert "multi-source" in " ".join(found[multi]["reasons"])

        monkeypatch.setattr(migrate, "SETTLE_SECONDS", 3.0)
        d.write(PREVIEW_DEFINITION.format(http=chart_repo.url).replace("ENGINE", "ankra_native"))
        native, native_plan = d.load()
        moved = await sync(ctx, native, native_plan)
    assert moved.outcomes[f"addon/{web}"].reason == "migrated_from_argocd", moved.outcomes[f"addon/{web}"]
    assert moved.outcomes[f"addon/{hook}"].reason == "argocd_busy", moved.outcomes[f"addon/{hook}"]
    assert moved.outcomes[f"addon/{multi}"].reason == "not_migratable", moved.outcomes[f"addon/{multi}"]
    assert kubectl.run("get", "application", web, "-n", argocd.NAMESPACE, check=False).returncode != 0
    held = kubectl.get("application", hook, "-n", argocd.NAMESPACE)
    assert "automated" not in held["spec"]["syncPolicy"]  # Argo CD was taken off it, nothing more
    assert kubectl.get("application", multi, "-n", argocd.NAMESPACE)["spec"]["sources"]
    for name in (hook, multi):  # no Helm release was made for the two held back
        assert kubectl.get("secrets", "-n", d.ns("apps"), "-l", f"owner=helm,name={name}")["items"] == []
        kubectl.run("delete", "application", name, "-n", argocd.NAMESPACE, "--wait=false")


def example_on_argo_cd(root: Path, chart_url: str, suffix: str) -> Path:
    """The example definition with deployment_engine argo_cd, its charts from the tests' repository
    and its namespaces suffixed (the native tests deploy the example in the same cluster)."""
    for path in EXAMPLE.rglob("*"):
        if not path.is_file() or "keys" in path.parts:
            continue
        text = path.read_text().replace("http://127.0.0.1:8879", chart_url)
        text = re.sub(
            r"(namespace|name|APPS_NAMESPACE): (apps|widgets|hooks)$", rf"\1: \2-{suffix}", text, flags=re.M
        )
        if path.name == "import-cluster.yaml":
            text = text.replace("\nspec:\n", "\nspec:\n  deployment_engine: argo_cd\n", 1)
        target = root / path.relative_to(EXAMPLE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root / "import-cluster.yaml"


async def test_the_example_definition_deploys_through_argo_cd_with_its_sops_values_decrypted_in_the_cluster(
    argo: argocd.ArgoCD,
    cluster: devcluster.DevCluster,
    kubectl: Kubectl,
    chart_repo: chartsources.ChartRepo,
    helm_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole example on the ArgoCD engine: every add-on an Application, Synced and Healthy,
    including `stateful`, whose values are SOPS-encrypted: its Application carries only ciphertext,
    and Moorage's plugin in argocd-cmp-server decrypts them with its own key to render the chart."""
    suffix = uuid.uuid4().hex[:6]
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(EXAMPLE_KEY))  # the agent's key, as in the demo
    loaded = load(example_on_argo_cd(tmp_path / "repo", chart_repo.url, suffix), LoadOptions(decrypt=True))
    assert loaded.ok, loaded.report.to_text()
    assert loaded.resolved is not None
    assert loaded.plan is not None
    plaintext = yaml.safe_load(
        decrypt_yaml((EXAMPLE / "values" / "stateful.enc.yaml").read_text(), Location(""))
    )
    password = plaintext["password"]
    addons = sorted(loaded.resolved.addons)
    assert "stateful" in addons
    assert loaded.resolved.addons["stateful"].encrypted
    try:
        async with Engine(cluster.kubeconfig, helm_home, timeout_seconds=240) as ctx:
            done = await sync(ctx, loaded.resolved, loaded.plan)
            assert done.ok, {r: o.message for r, o in done.outcomes.items() if not o.ok}
            observed = {o.name: o for o in await observe(ctx, loaded.resolved, cause=Cause.SWEEP)}
        for name in addons:
            assert app_status(kubectl, name) == ("Synced", "Healthy"), name
            assert observed[name].engine == "argo_cd"
            assert decide(observed[name], ServerView(agent_online=True)).state is AddonState.SYNCED, name
        stateful = kubectl.get("application", "stateful", "-n", argocd.NAMESPACE)
        assert stateful["spec"]["source"]["plugin"]["name"] == argocd.PLUGIN_NAME
        assert password not in json.dumps(stateful)  # ciphertext and masked values only, status included
        for env in stateful["spec"]["source"]["plugin"]["env"]:
            assert password not in base64.b64decode(env["value"]).decode()
        assert (
            kubectl.get("statefulset", "stateful", "-n", f"apps-{suffix}")["metadata"]["name"] == "stateful"
        )
        for cm in kubectl.get("configmaps", "-n", argocd.NAMESPACE)[
            "items"
        ]:  # Argo CD's config: no plaintext
            assert password not in json.dumps(cm), cm["metadata"]["name"]
        assert (
            kubectl.get("secrets", "-n", f"apps-{suffix}", "-l", "owner=helm")["items"] == []
        )  # no Helm release
    finally:
        for name in addons:
            kubectl.run("delete", "application", name, "-n", argocd.NAMESPACE, "--wait=false", check=False)


SIX = """
apiVersion: v1
kind: ImportCluster
metadata: {{name: argomig}}
spec:
  deployment_engine: {engine}
  helm_registries:
    - {{name: repo, url: "{url}"}}
  stacks:
    - name: six
      addons:
{addons}
"""


def six_addons(url: str, namespace: str, engine: str) -> dict[str, Any]:
    addons = "\n".join(
        f"        - {{name: mig-{i}, chart_name: webapp, chart_version: '1.0.0', registry_name: repo, "
        f"namespace: {namespace}, configuration: {{values: {{replicaCount: 1}}}}}}"
        for i in range(6)
    )
    text = SIX.format(engine=engine, url=url, addons=addons)
    return {"files": {"import-cluster.yaml": text}, "root": "import-cluster.yaml"}


def test_the_server_killed_in_the_middle_of_a_migration_of_six_add_ons_finishes_it_after_a_restart(
    argo: argocd.ArgoCD,
    agents: Agents,
    cluster: devcluster.DevCluster,
    kubectl: Kubectl,
    helm: Helm,
    chart_repo: chartsources.ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Through the control plane: six add-ons deployed by Argo CD, the preview says all six can move,
    the migration is confirmed (the definition's engine becomes ankra_native) and the server is killed
    (`kill -9`) once the migration has taken Argo CD off the first Application. After
    the restart the migration ends: every add-on is a Helm release at revision 1 (migrated once),
    no Application of Moorage's remains, no Deployment was recreated, and each add-on's history names
    the migration."""
    user_app = f"users-own-{namespace}"  # made outside Moorage: untouched throughout
    theirs = application(user_app, chart_repo.url, f"{namespace}-u", 1)
    theirs["spec"]["syncPolicy"]["syncOptions"].append("CreateNamespace=true")
    kubectl.run("apply", "-f", "-", input=json.dumps(theirs))
    wait_for(
        "Argo CD to sync the user's own Application",
        lambda: app_status(kubectl, user_app) == ("Synced", "Healthy"),
    )
    user_before = untouched(kubectl, user_app)
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", tmp_path / "server", port)
    server.data_dir.mkdir()
    try:
        server.start()
        token = register(server, "argomig")
        agents.start(server, token, cluster.kubeconfig)
        wait_state(server, "argomig", "online")
        deployed = server.api(
            "POST", "/clusters/argomig/apply", json=six_addons(chart_repo.url, namespace, "argo_cd")
        )
        op = wait_operation(server, deployed.json()["id"], timeout=300)
        assert op["state"] == "success", json.dumps(op)[-3000:]
        names = [f"mig-{i}" for i in range(6)]
        uids = {n: kubectl.get("deployment", n, "-n", namespace)["metadata"]["uid"] for n in names}

        def ours() -> set[str]:
            apps = kubectl.get("applications", "-n", argocd.NAMESPACE, "-l", "moorage.dev/cluster=argomig")
            return {a["metadata"]["name"] for a in apps["items"]}

        assert ours() == set(names)

        seen: list[Any] = []

        def eligible() -> list[str] | None:  # an Argo CD operation still settling is "in flight" for a moment
            seen[:] = server.api("GET", "/clusters/argomig/argocd/migration").json()["applications"]
            found = sorted(a["addon"] for a in seen if a["eligible"])
            return found if found == names else None

        try:
            wait_for("the preview to call all six eligible", eligible, timeout=120)
        except AssertionError as e:
            raise AssertionError(f"{e}; the preview: {json.dumps(seen)[-3000:]}") from None
        moving = server.api("POST", "/clusters/argomig/argocd/migration")  # --confirm
        assert moving.status_code == 202, moving.text
        assert moving.json()["changes"] == [
            "import-cluster.yaml: spec.deployment_engine argo_cd → ankra_native"
        ]

        def let_go() -> (
            list[str] | None
        ):  # step 1 of the migration: Argo CD taken off, Application still there
            apps = kubectl.get("applications", "-n", argocd.NAMESPACE, "-l", "moorage.dev/cluster=argomig")
            off = [a["metadata"]["name"] for a in apps["items"] if "automated" not in a["spec"]["syncPolicy"]]
            return off or None

        deadline = time.monotonic() + 180  # polled often: on an idle machine the window lasts about a second
        while not let_go():
            assert time.monotonic() < deadline, "the migration never took Argo CD off an Application"
            time.sleep(0.1)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # mid-migration: the six add-ons' Applications remain
        server.proc.wait(30)
        assert ours(), "the migration ended before the kill"
        server.start()
        op = wait_operation(server, moving.json()["id"], timeout=300)
        assert op["state"] == "success", json.dumps(op)[-3000:]
        assert ours() == set()
        roll_back_then_decommission(server, chart_repo.url, namespace)
    finally:
        for proc in agents.procs:  # before their server: an agent with jobs to report waits for it
            proc.terminate()
            proc.wait(60)
        server.stop()
    assert untouched(kubectl, user_app) == user_before
    releases = helm.releases(namespace)
    for name in names:
        assert releases[name]["status"] == "deployed", releases[name]
        assert str(releases[name]["revision"]) == "1", f"{name} was upgraded more than once"
        assert kubectl.get("deployment", name, "-n", namespace)["metadata"]["uid"] == uids[name], name
    outcomes: dict[str, Any] = {}
    for job in op["jobs"]:
        outcomes |= (job.get("result") or {}).get("outcomes") or {}
    migrated = {ref for ref, o in outcomes.items() if o.get("reason") == "migrated_from_argocd"}
    assert migrated == {f"addon/{n}" for n in names}, outcomes


def untouched(kubectl: Kubectl, name: str) -> tuple[Any, ...]:
    """What Moorage must never change on an Application it did not make (status is Argo CD's)."""
    app = kubectl.get("application", name, "-n", argocd.NAMESPACE)
    meta = app["metadata"]
    return meta["uid"], meta.get("labels"), meta.get("annotations"), meta.get("finalizers"), app["spec"]


def engine_of(server: Server, addon: str) -> str:
    response = server.api("GET", f"/clusters/argomig/addons/{addon}")
    return str(response.json().get("engine")) if response.status_code == 200 else ""


def roll_back_then_decommission(server: Server, url: str, namespace: str) -> None:
    """One add-on back on Argo CD: decommissioning is refused naming it; migrated again, it is accepted,
    and a definition using argo_cd is refused from then on."""
    back = six_addons(url, namespace, "ankra_native")
    text = back["files"]["import-cluster.yaml"].replace(
        "configuration: {values: {replicaCount: 1}}}",
        "configuration: {values: {replicaCount: 1}}, settings: {engine: argo_cd}}",
        1,
    )
    back["files"]["import-cluster.yaml"] = text
    op = wait_operation(
        server, server.api("POST", "/clusters/argomig/apply", json=back).json()["id"], timeout=300
    )
    assert op["state"] == "success", json.dumps(op)[-3000:]
    wait_for("mig-0 reported on Argo CD", lambda: engine_of(server, "mig-0") == "argo_cd")
    refused = server.api("POST", "/clusters/argomig/argocd/decommission")
    assert refused.status_code == 409, refused.text
    assert "mig-0" in refused.text
    native = six_addons(url, namespace, "ankra_native")
    op = wait_operation(
        server, server.api("POST", "/clusters/argomig/apply", json=native).json()["id"], timeout=300
    )
    assert op["state"] == "success", json.dumps(op)[-3000:]
    wait_for("mig-0 reported native again", lambda: engine_of(server, "mig-0") == "native")
    done = server.api("POST", "/clusters/argomig/argocd/decommission")
    assert done.status_code == 200, done.text
    again = server.api("POST", "/clusters/argomig/apply", json=six_addons(url, namespace, "argo_cd"))
    assert again.status_code == 422, again.text
    assert "decommissioned" in again.text


def test_drift_argo_cd_heals_is_shown_in_moorage(
    argo: argocd.ArgoCD,
    agents: Agents,
    cluster: devcluster.DevCluster,
    kubectl: Kubectl,
    chart_repo: chartsources.ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    """An add-on on the ArgoCD engine, scaled by hand: Argo CD's self-heal puts it back within seconds,
    and Moorage (the agent watching its Applications) records the drift and the heal as transitions."""
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", tmp_path / "server", port)
    server.data_dir.mkdir()
    name = f"drift-{namespace}"
    text = (
        ARGO_DEFINITION.replace("argo-SFX", "argodrift")
        .replace("web-SFX", name)
        .replace("apps-SFX", namespace)
    )
    body = {
        "files": {"import-cluster.yaml": text.format(http=chart_repo.url, replicas=2)},
        "root": "import-cluster.yaml",
    }
    try:
        server.start()
        token = register(server, "argodrift")
        agents.start(server, token, cluster.kubeconfig)
        wait_state(server, "argodrift", "online")
        op = wait_operation(server, server.api("POST", "/clusters/argodrift/apply", json=body).json()["id"])
        assert op["state"] == "success", json.dumps(op)[-3000:]

        def state() -> str:
            return str(server.api("GET", f"/clusters/argodrift/addons/{name}").json().get("state"))

        wait_for("the add-on Synced in Moorage", lambda: state() == "Synced")
        kubectl.run("scale", "deployment", name, "-n", namespace, "--replicas=5")
        wait_for(
            "Argo CD to heal",
            lambda: kubectl.get("deployment", name, "-n", namespace)["spec"]["replicas"] == 2,
        )

        def drift_and_heal() -> list[dict[str, Any]] | None:
            rows: list[dict[str, Any]] = server.api(
                "GET", f"/clusters/argodrift/addons/{name}/transitions", params={"page_size": 100}
            ).json()["result"]
            drifted = [r for r in rows if r["to_state"] == "OutOfSync" and "Deployment" in r["reason"]]
            # after the heal the Deployment may roll out (Deploying) before it is Synced again
            healed = [
                r for r in rows if drifted and r["to_state"] == "Synced" and r["at"] > drifted[-1]["at"]
            ]
            return rows if drifted and healed else None

        try:
            wait_for("the drift and the heal recorded in Moorage", drift_and_heal, timeout=60)
        except AssertionError:
            rows = server.api("GET", f"/clusters/argodrift/addons/{name}/transitions").json()["result"]
            log = "".join(p.read_text()[-3000:] for p in agents.base.glob("agent-*.log"))
            raise AssertionError(f"transitions: {json.dumps(rows)[-2000:]}\nagent: {log}") from None
    finally:
        for proc in agents.procs:
            proc.terminate()
            proc.wait(60)
        server.stop()
        kubectl.run("delete", "application", name, "-n", argocd.NAMESPACE, "--wait=false", check=False)
