"""The native engine against the devcluster: waves, parents, Helm add-ons from both chart sources,
raw manifests, idempotency, blocked dependents and failures reported with their reason."""

from pathlib import Path

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo, Registry
from moorage.engine.executor import sync
from moorage.engine.outcome import EntryStatus
from tests.integration.conftest import Helm, Kubectl
from tests.integration.engine_support import Engine, new_definition

THREE_STACKS = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: sync-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
    - name: oci-repo
      url: {oci}
  stacks:
    - name: base
      deploy_wave: 1
      manifests:
        - name: namespaces-SFX
          manifest: |
            apiVersion: v1
            kind: Namespace
            metadata:
              name: apps-SFX
    - name: platform
      deploy_wave: 1
      addons:
        - name: widgets-SFX
          chart_name: crd-widget
          chart_version: "1.0.0"
          registry_name: oci-repo
          namespace: widgets-SFX
    - name: apps
      deploy_wave: 2
      manifests:
        - name: app-config-SFX
          namespace: apps-SFX
          manifest: |
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: app-config
            data:
              mode: demo
      addons:
        - name: web-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: apps-SFX
          parents:
            - manifest: app-config-SFX
          configuration:
            values:
              replicaCount: 1
              greeting: hi
        - name: hooks-SFX
          chart_name: hooked
          chart_version: "1.0.0"
          registry_name: oci-repo
          namespace: apps-SFX
"""


async def test_three_stacks_deploy_then_resync_changes_nothing(
    cluster: DevCluster,
    helm_home: Path,
    helm: Helm,
    kubectl: Kubectl,
    chart_repo: ChartRepo,
    oci_registry: Registry,
    tmp_path: Path,
) -> None:
    d = new_definition(tmp_path)
    d.write(THREE_STACKS.format(http=chart_repo.url, oci=oci_registry.url))
    resolved, plan = d.load()
    order: list[str] = []
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        first = await sync(ctx, resolved, plan, progress=lambda o: order.append(o.ref))
    assert first.ok, {r: o.message for r, o in first.outcomes.items()}
    assert {o.status for o in first.outcomes.values()} == {EntryStatus.APPLIED}
    # wave 2 only after wave 1; the add-on only after its parent manifest
    assert order.index("addon/web-SFX".replace("SFX", d.suffix)) > order.index(
        f"manifest/app-config-{d.suffix}"
    )
    assert order.index(f"manifest/app-config-{d.suffix}") > order.index(f"addon/widgets-{d.suffix}")

    for ns, name in (
        (d.ns("apps"), d.ns("web")),
        (d.ns("apps"), d.ns("hooks")),
        (d.ns("widgets"), d.ns("widgets")),
    ):
        assert helm.releases(ns)[name]["status"] == "deployed"
    assert kubectl.get("-n", d.ns("apps"), "deploy", d.ns("web"))["spec"]["replicas"] == 1
    assert kubectl.get("-n", d.ns("apps"), "configmap/app-config")["data"] == {"mode": "demo"}

    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        second = await sync(ctx, resolved, plan)
    assert {o.status for o in second.outcomes.values()} == {EntryStatus.UNCHANGED}, second.outcomes
    assert helm.releases(d.ns("apps"))[d.ns("web")]["revision"] == "1"  # no helm upgrade ran


FAILING = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: fail-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: one
      deploy_wave: 1
      addons:
        - name: strict-SFX
          chart_name: strict
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: fail-SFX
          configuration:
            values:
              replicas: 0
          settings:
            retry_policy:
              limit: 2
              backoff: {{duration: 1s, factor: 2, max_duration: 2s}}
        - name: child-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: fail-SFX
          parents:
            - addon: strict-SFX
    - name: two
      deploy_wave: 2
      addons:
        - name: later-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: fail-SFX
"""


async def test_rejected_values_are_retried_then_failed_and_dependents_blocked(
    cluster: DevCluster, helm_home: Path, helm: Helm, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    d.write(FAILING.format(http=chart_repo.url))
    resolved, plan = d.load()
    delays: list[float] = []

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)

    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        ctx.sleep = no_wait
        result = await sync(ctx, resolved, plan)
    failed = result.outcomes[f"addon/strict-{d.suffix}"]
    assert failed.status is EntryStatus.FAILED
    assert failed.attempts == 3  # the first try and 2 retries
    assert delays == [1.0, 2.0]
    assert "replicas" in failed.message
    assert failed.health == "Degraded"
    child = result.outcomes[f"addon/child-{d.suffix}"]
    assert child.status is EntryStatus.BLOCKED
    assert f"addon/strict-{d.suffix}" in child.message
    later = result.outcomes[f"addon/later-{d.suffix}"]
    assert later.status is EntryStatus.BLOCKED
    assert "wave 1" in later.message
    assert helm.releases(d.ns("fail")) == {}
