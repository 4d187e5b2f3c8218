"""An add-on's chart meeting objects that already exist (issue 16, item 6): objects no one owns are
adopted and reported; objects of another Helm release or of a manifest entry are refused, naming the
owner, unless the add-on's settings.take_ownership allows it."""

import json
from pathlib import Path

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.engine.executor import sync
from moorage.engine.outcome import EntryStatus
from tests.integration.conftest import Helm, Kubectl
from tests.integration.engine_support import Engine, new_definition

ADDON = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: own-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      manifests:{manifests}
      addons:
        - name: web-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: {ns}
          configuration:
            values: {{replicaCount: 1}}
          settings:
            take_ownership: {take}
            retry_policy: {{limit: 1}}
"""

MANIFEST_ENTRY = """
        - name: cfg-SFX
          namespace: {ns}
          manifest: |
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: web-SFX-config
            data:
              owner: manifest"""


def _configmap(kubectl: Kubectl, namespace: str, name: str, annotations: dict[str, str], **data: str) -> None:
    meta = {"name": name, "namespace": namespace, "annotations": annotations}
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"owner": "someone", **data}}
    kubectl.run("apply", "-f", "-", input=json.dumps(obj))


async def test_unowned_object_is_adopted_and_reported(
    cluster: DevCluster,
    helm_home: Path,
    helm: Helm,
    kubectl: Kubectl,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    d = new_definition(tmp_path)
    _configmap(kubectl, namespace, d.ns("web") + "-config", {}, greeting="set by hand")
    d.write(ADDON.format(http=chart_repo.url, ns=namespace, manifests=" []", take="false"))
    resolved, plan = d.load()
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        result = await sync(ctx, resolved, plan)
    outcome = result.outcomes[f"addon/{d.ns('web')}"]
    assert outcome.status is EntryStatus.APPLIED, outcome.message
    assert outcome.adopted == [f"ConfigMap {namespace}/{d.ns('web')}-config"]
    assert "adopted 1 existing object(s)" in outcome.message
    live = kubectl.get("-n", namespace, "configmap", d.ns("web") + "-config")
    assert live["metadata"]["annotations"]["meta.helm.sh/release-name"] == d.ns("web")
    assert live["data"]["greeting"] == "hello"  # the chart's value: adopting takes the fields too
    assert helm.releases(namespace)[d.ns("web")]["status"] == "deployed"


async def test_object_of_another_release_is_refused_until_allowed(
    cluster: DevCluster,
    helm_home: Path,
    helm: Helm,
    kubectl: Kubectl,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    d = new_definition(tmp_path)
    owner = {"meta.helm.sh/release-name": "other", "meta.helm.sh/release-namespace": namespace}
    _configmap(kubectl, namespace, d.ns("web") + "-config", owner)
    d.write(ADDON.format(http=chart_repo.url, ns=namespace, manifests=" []", take="false"))
    resolved, plan = d.load()
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        result = await sync(ctx, resolved, plan)
    outcome = result.outcomes[f"addon/{d.ns('web')}"]
    assert outcome.status is EntryStatus.FAILED
    assert outcome.reason == "ownership_conflict"
    assert f"ConfigMap {namespace}/{d.ns('web')}-config (owned by Helm release {namespace}/other)" in (
        outcome.message
    )
    assert "settings.take_ownership: true" in outcome.message
    assert kubectl.get("-n", namespace, "configmap", d.ns("web") + "-config")["data"] == {"owner": "someone"}
    assert d.ns("web") not in helm.releases(namespace)  # nothing half-installed

    d.write(ADDON.format(http=chart_repo.url, ns=namespace, manifests=" []", take="true"))
    resolved, plan = d.load()
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        result = await sync(ctx, resolved, plan)
    outcome = result.outcomes[f"addon/{d.ns('web')}"]
    assert outcome.status is EntryStatus.APPLIED, outcome.message
    assert outcome.adopted == [
        f"ConfigMap {namespace}/{d.ns('web')}-config (owned by Helm release {namespace}/other)"
    ]
    live = kubectl.get("-n", namespace, "configmap", d.ns("web") + "-config")
    assert live["metadata"]["annotations"]["meta.helm.sh/release-name"] == d.ns("web")


async def test_object_of_a_manifest_entry_is_refused(
    cluster: DevCluster,
    helm_home: Path,
    helm: Helm,
    kubectl: Kubectl,
    chart_repo: ChartRepo,
    namespace: str,
    tmp_path: Path,
) -> None:
    d = new_definition(tmp_path)
    text = ADDON.format(
        http=chart_repo.url, ns=namespace, manifests=MANIFEST_ENTRY.format(ns=namespace), take="false"
    )
    d.write(
        text.replace("          settings:", "          parents: [{manifest: cfg-SFX}]\n          settings:")
    )
    resolved, plan = d.load()
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        result = await sync(ctx, resolved, plan)
    assert result.outcomes[f"manifest/{d.ns('cfg')}"].status is EntryStatus.APPLIED
    outcome = result.outcomes[f"addon/{d.ns('web')}"]
    assert outcome.status is EntryStatus.FAILED
    assert f"(owned by manifest entry '{d.ns('cfg')}')" in outcome.message
    assert kubectl.get("-n", namespace, "configmap", d.ns("web") + "-config")["data"] == {"owner": "manifest"}
