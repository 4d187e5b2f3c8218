"""Prune, stuck-release recovery, sync windows, strict health and namespace moves on the devcluster."""

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo, Registry
from moorage.engine.executor import sync
from moorage.engine.outcome import EntryStatus
from moorage.engine.sweep import sweep
from tests.integration.conftest import Helm, Kubectl
from tests.integration.engine_support import Engine, new_definition

PRUNABLE = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: prune-SFX
spec:
  helm_registries:
    - name: oci-repo
      url: {oci}
  stacks:
    - name: apps
      manifests:
        - name: raw-SFX
          namespace: prune-SFX
          manifest: |
{manifest}
      addons:
        - name: pruned-SFX
          chart_name: prunable
          chart_version: "{version}"
          registry_name: oci-repo
          namespace: prune-SFX
        - name: kept-SFX
          chart_name: prunable
          chart_version: "{version}"
          registry_name: oci-repo
          namespace: prune-SFX
          settings:
            sync_policy: {{auto_prune: false}}
"""

RAW_V1 = """
apiVersion: v1
kind: ConfigMap
metadata: {name: raw-a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: raw-b}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: raw-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""
RAW_V2 = """
apiVersion: v1
kind: ConfigMap
metadata: {name: raw-a}
"""


def indent(text: str) -> str:
    return "\n".join("            " + line for line in text.strip().splitlines())


async def test_prune_only_with_auto_prune_never_pvcs_never_lookalikes(
    cluster: DevCluster, helm_home: Path, kubectl: Kubectl, oci_registry: Registry, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    ns = d.ns("prune")
    d.write(PRUNABLE.format(oci=oci_registry.url, version="1.0.0", manifest=indent(RAW_V1)))
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        resolved, plan = d.load()
        assert (await sync(ctx, resolved, plan)).ok
        # an unrelated object that looks like the chart's own
        kubectl.run(
            "create", "configmap", f"{d.ns('lookalike')}-extra", "-n", ns,
            "--from-literal=note=not ours",
        )  # fmt: skip
        kubectl.run(
            "label",
            "configmap",
            f"{d.ns('lookalike')}-extra",
            "-n",
            ns,
            f"app.kubernetes.io/instance={d.ns('pruned')}",
        )

        d.write(PRUNABLE.format(oci=oci_registry.url, version="2.0.0", manifest=indent(RAW_V2)))
        resolved, plan = d.load()
        result = await sync(ctx, resolved, plan)
        assert result.ok, {r: o.message for r, o in result.outcomes.items()}
        raw = result.outcomes[f"manifest/raw-{d.suffix}"]
        assert raw.pruned == [f"ConfigMap {ns}/raw-b"]
        assert any("PersistentVolumeClaim" in k and "never pruned" in k for k in raw.kept), raw.kept

        beat, reports = await sweep(ctx, resolved)
    by_name = {r.name: r for r in reports}
    assert any("kept because auto_prune is off" in k for k in by_name[d.ns("kept")].kept), by_name[
        d.ns("kept")
    ]

    def exists(kind: str, name: str) -> bool:
        return kubectl.run("get", kind, name, "-n", ns, check=False).returncode == 0

    assert not exists("configmap", f"{d.ns('pruned')}-extra")  # dropped by chart 2.0.0, auto_prune on
    assert exists("configmap", f"{d.ns('kept')}-extra")  # dropped by chart 2.0.0, auto_prune off
    assert exists("configmap", f"{d.ns('lookalike')}-extra")
    assert not exists("configmap", "raw-b")
    assert exists("pvc", "raw-data")
    assert beat.pruned == 0  # nothing left for the sweep: helm and the manifest prune did it


STUCK = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: stuck-SFX
spec:
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
          namespace: stuck-SFX
          configuration:
            values: {{replicaCount: 1}}
"""


async def test_release_left_pending_by_a_killed_helm_is_recovered_by_the_sweep(
    cluster: DevCluster, helm_home: Path, helm: Helm, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    ns, name = d.ns("stuck"), d.ns("web")
    d.write(STUCK.format(http=chart_repo.url))
    resolved, plan = d.load()
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        assert (await sync(ctx, resolved, plan)).ok

    # an upgrade whose pods can never be scheduled, so helm waits; then helm is killed
    argv = [helm.binary, f"--kubeconfig={cluster.kubeconfig}", "upgrade", name, "webapp"]
    argv += [
        "--repo",
        chart_repo.url,
        "-n",
        ns,
        "--wait",
        "--timeout",
        "120s",
        "--set",
        "nodeSelector.disk=none",
    ]
    quiet = subprocess.DEVNULL
    upgrade = subprocess.Popen(argv, env=helm.env, stdout=quiet, stderr=quiet, start_new_session=True)
    for _ in range(100):
        if helm.releases(ns).get(name, {}).get("status") == "pending-upgrade":
            break
        await asyncio.sleep(0.1)
    os.killpg(upgrade.pid, signal.SIGKILL)
    upgrade.wait()
    assert helm.releases(ns)[name]["status"] == "pending-upgrade"

    # the agent's RECONCILE_AUTO_HEAL_ENABLED=false: reported, left alone
    async with Engine(cluster.kubeconfig, helm_home, stuck_after_seconds=0, recover_stuck=False) as ctx:
        beat, reports = await sweep(ctx, resolved)
    assert beat.recovered == 0, reports
    assert any("left alone (stuck-release recovery is off)" in e for e in reports[0].errors), reports
    assert helm.releases(ns)[name]["status"] == "pending-upgrade"

    async with Engine(cluster.kubeconfig, helm_home, stuck_after_seconds=0) as ctx:
        beat, reports = await sweep(ctx, resolved)
    assert beat.recovered == 1, reports
    (report,) = reports
    assert report.recovered is not None
    assert "pending-upgrade" in report.recovered
    release = helm.releases(ns)[name]
    assert release["status"] == "deployed"
    assert int(release["revision"]) == 3  # 1 deployed, 2 killed (now failed), 3 recovered


WINDOWED = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: window-SFX
spec:
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
          namespace: window-SFX
          configuration:
            values: {{replicaCount: 1}}
          settings:
            sync_window:
              enabled: true
              schedule: "0 22 * * *"
              duration: 2h
              timezone: Europe/Berlin
"""


async def test_sync_window_cancels_outside_and_applies_when_open(
    cluster: DevCluster, helm_home: Path, helm: Helm, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    d.write(WINDOWED.format(http=chart_repo.url))
    resolved, plan = d.load()
    ref = f"addon/web-{d.suffix}"
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        ctx.clock = lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 13:00 in Berlin: closed
        closed = await sync(ctx, resolved, plan)
        assert closed.outcomes[ref].status is EntryStatus.CANCELLED
        assert closed.outcomes[ref].reason == "outside_sync_window"
        assert "2026-11-23T21:00:00+00:00" in closed.outcomes[ref].message  # 22:00 in Berlin
        assert helm.releases(d.ns("window")) == {}

        ctx.clock = lambda: datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # 23:30 in Berlin: open
        opened = await sync(ctx, resolved, plan)
        assert opened.outcomes[ref].status is EntryStatus.APPLIED
    assert helm.releases(d.ns("window"))[d.ns("web")]["status"] == "deployed"


STRICT = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: health-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      addons:
        - name: never-ready-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: health-SFX
          configuration:
            values:
              replicaCount: 1
              nodeSelector: {{disk: none}}
          settings:
            strict_health_check: true
            retry_policy: {{limit: 1, backoff: {{duration: 1s, factor: 1, max_duration: 1s}}}}
        - name: dependent-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: health-SFX
          parents:
            - addon: never-ready-SFX
"""


async def test_never_ready_deployment_under_strict_health_is_degraded_and_blocks(
    cluster: DevCluster, helm_home: Path, helm: Helm, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    d.write(STRICT.format(http=chart_repo.url))
    resolved, plan = d.load()

    async def no_wait(seconds: float) -> None:
        return None

    async with Engine(cluster.kubeconfig, helm_home, timeout_seconds=8) as ctx:
        ctx.sleep = no_wait
        result = await sync(ctx, resolved, plan)
    failed = result.outcomes[f"addon/never-ready-{d.suffix}"]
    assert failed.status is EntryStatus.FAILED
    assert failed.attempts == 2
    assert failed.health == "Degraded"
    assert failed.health_reason
    blocked = result.outcomes[f"addon/dependent-{d.suffix}"]
    assert blocked.status is EntryStatus.BLOCKED
    assert f"addon/never-ready-{d.suffix}" in blocked.message
    assert d.ns("dependent") not in helm.releases(d.ns("health"))


MOVING = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: move-SFX
spec:
  helm_registries:
    - name: oci-repo
      url: {oci}
  stacks:
    - name: data
      addons:
        - name: db-SFX
          chart_name: stateful
          chart_version: "1.0.0"
          registry_name: oci-repo
          namespace: {namespace}
"""


async def test_namespace_move_installs_anew_and_keeps_pvcs(
    cluster: DevCluster, helm_home: Path, helm: Helm, kubectl: Kubectl, oci_registry: Registry, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    old, new, name = d.ns("old"), d.ns("new"), d.ns("db")
    d.write(MOVING.format(oci=oci_registry.url, namespace=old))
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        resolved, plan = d.load()
        assert (await sync(ctx, resolved, plan)).ok
        for _ in range(100):
            pvc = kubectl.run("get", "pvc", f"data-{name}-0", "-n", old, check=False)
            if pvc.returncode == 0:
                break
            await asyncio.sleep(0.2)

        d.write(MOVING.format(oci=oci_registry.url, namespace=new))
        resolved, plan = d.load()
        result = await sync(ctx, resolved, plan)
    moved = result.outcomes[f"addon/{name}"]
    assert moved.status is EntryStatus.APPLIED, moved.message
    assert f"moved from namespace {old}" in moved.message
    assert f"StatefulSet {old}/{name}" in moved.pruned
    assert any(f"PersistentVolumeClaim {old}/data-{name}-0" in k for k in moved.kept), moved.kept
    assert helm.releases(new)[name]["status"] == "deployed"
    assert name not in helm.releases(old)
    assert kubectl.run("get", "statefulset", name, "-n", old, check=False).returncode != 0
    assert kubectl.run("get", "pvc", f"data-{name}-0", "-n", old, check=False).returncode == 0


REMOVABLE = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: removed-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      manifests:
        - name: raw-SFX
          namespace: removed-SFX
          manifest: |
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: stays}}
      addons:
{addons}
"""
REMOVABLE_ADDONS = """
        - name: gone-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: removed-SFX
          configuration:
            values: {replicaCount: 1}
        - name: kept-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: removed-SFX
          configuration:
            values: {replicaCount: 1}
          settings:
            sync_policy: {auto_prune: false}
"""


async def test_addons_removed_from_the_definition_are_uninstalled_only_with_auto_prune(
    cluster: DevCluster, helm_home: Path, helm: Helm, kubectl: Kubectl, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    ns, gone, kept, manual = d.ns("removed"), d.ns("gone"), d.ns("kept"), d.ns("manual")
    d.write(REMOVABLE.format(http=chart_repo.url, addons=REMOVABLE_ADDONS))
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        resolved, plan = d.load()
        first = await sync(ctx, resolved, plan)
        assert first.ok, {r: o.message for r, o in first.outcomes.items()}

        def prune_label(name: str) -> str | None:
            (secret,) = kubectl.get("secret", "-n", ns, "-l", f"owner=helm,name={name}")["items"]
            labels: dict[str, str] = secret["metadata"]["labels"]
            return labels.get("moorage.dev/auto-prune")

        assert (prune_label(gone), prune_label(kept)) == ("true", "false")
        # a release installed by hand in the same namespace: not this definition's, never removed
        helm.run("install", manual, "webapp", "--repo", chart_repo.url, "-n", ns, "--set", "replicaCount=1")

        d.write(REMOVABLE.format(http=chart_repo.url, addons="        []"))
        resolved, plan = d.load()
        assert resolved.addons == {}
        result = await sync(ctx, resolved, plan)
        again = await sync(ctx, resolved, plan)

    assert result.ok, {r: o.message for r, o in result.outcomes.items()}
    uninstalled = result.outcomes[f"addon/{gone}"]
    assert uninstalled.status is EntryStatus.APPLIED, uninstalled.message
    assert uninstalled.message.startswith("removed from the definition: uninstalled")
    assert result.pruned_addons == [gone]
    left = result.outcomes[f"addon/{kept}"]
    assert left.status is EntryStatus.UNCHANGED, left.message
    assert left.reason == "auto_prune_off"
    assert "kept because auto_prune was off" in left.message
    assert any("auto_prune was off" in k for k in left.kept), left.kept
    assert f"addon/{manual}" not in result.outcomes

    releases = helm.releases(ns)
    assert gone not in releases
    assert kubectl.get("secret", "-n", ns, "-l", f"owner=helm,name={gone}")["items"] == []
    assert releases[kept]["status"] == "deployed"
    assert releases[manual]["status"] == "deployed"

    def deployment_exists(name: str) -> bool:
        return kubectl.run("get", "deployment", name, "-n", ns, check=False).returncode == 0

    for _ in range(50):  # helm deletes with background propagation
        if not deployment_exists(gone):
            break
        await asyncio.sleep(0.1)
    assert not deployment_exists(gone)
    assert deployment_exists(kept)
    assert deployment_exists(manual)

    # the next sync has nothing left to uninstall and says again why the other release stays
    assert again.ok
    assert f"addon/{gone}" not in again.outcomes
    assert again.pruned_addons == []
    assert again.outcomes[f"addon/{kept}"].reason == "auto_prune_off"
