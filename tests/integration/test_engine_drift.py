"""Drift against the devcluster: out-of-band edits reported with their exact fields, healed only with
self_heal on, and ignored fields (json pointer, another field manager, a jq expression) never drift."""

import json
from pathlib import Path

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.engine.executor import sync
from moorage.engine.sweep import sweep
from moorage.helm.storage import latest, read_releases
from tests.integration.conftest import Kubectl
from tests.integration.engine_support import Engine, new_definition

DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: drift-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      addons:
        - name: healed-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: drift-SFX
          configuration:
            values: {{replicaCount: 2}}
        - name: watched-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: drift-SFX
          configuration:
            values: {{replicaCount: 2}}
          settings:
            sync_policy: {{self_heal: false}}
        - name: ignoring-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: drift-SFX
          configuration:
            values: {{replicaCount: 2}}
          settings:
            sync_policy: {{self_heal: false}}
            ignore_differences:
              - kind: Deployment
                json_pointers: [/spec/replicas]
              - kind: Deployment
                managed_fields_managers: [rogue-operator]
              - kind: Deployment
                jq_path_expressions:
                  - '.spec.template.spec.containers[] | select(.name == "web") | .env'
"""


def edit_out_of_band(kubectl: Kubectl, namespace: str, name: str, label: bool = True) -> None:
    kubectl.run("scale", "-n", namespace, f"deploy/{name}", "--replicas=4")
    kubectl.run("set", "env", "-n", namespace, f"deploy/{name}", "LOG_LEVEL=debug")
    if label:
        kubectl.run("label", "-n", namespace, f"deploy/{name}", "team=rogue")


async def test_drift_is_reported_by_field_and_healed_only_with_self_heal(
    cluster: DevCluster, helm_home: Path, kubectl: Kubectl, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    d.write(DEFINITION.format(http=chart_repo.url))
    resolved, plan = d.load()
    ns = d.ns("drift")
    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        assert (await sync(ctx, resolved, plan)).ok
        beat, reports = await sweep(ctx, resolved)
        assert beat.drifted == 0, [r.drift for r in reports]

        for name in (d.ns("healed"), d.ns("watched")):
            edit_out_of_band(kubectl, ns, name)
        edit_out_of_band(kubectl, ns, d.ns("ignoring"), label=False)  # replicas and env are ignored
        # a field owned by another field manager, ignored by name of that manager
        patch = {"metadata": {"annotations": {"rogue/owned": "yes"}}}
        kubectl.run(
            "patch", "-n", ns, f"deploy/{d.ns('ignoring')}", "--type=merge", f"-p={json.dumps(patch)}",
            "--field-manager=rogue-operator",
        )  # fmt: skip

        beat, reports = await sweep(ctx, resolved)
        by_name = {r.name: r for r in reports}
        for name in (d.ns("healed"), d.ns("watched")):
            (drift,) = by_name[name].drift
            assert (drift.kind, drift.name) == ("Deployment", name)
            paths = set(drift.paths)
            assert "spec.replicas" in paths
            assert any("env" in p and "LOG_LEVEL" in p for p in paths), paths
            assert any(p.startswith("metadata.labels") and "team" in p for p in paths), paths
            replicas = next(c for c in drift.changes if c.path == "spec.replicas")
            assert (replicas.desired, replicas.live) == (2, 4)
        assert by_name[d.ns("ignoring")].drift == [], by_name[d.ns("ignoring")].drift[0].paths
        assert by_name[d.ns("healed")].healed
        assert not by_name[d.ns("watched")].healed
        assert by_name[d.ns("watched")].heal_skipped == "self_heal is off"
        assert beat.drifted == 2
        assert beat.healed == 1

    healed = kubectl.get("-n", ns, f"deploy/{d.ns('healed')}")
    assert healed["spec"]["replicas"] == 2
    assert "team" not in healed["metadata"].get("labels", {})
    env = healed["spec"]["template"]["spec"]["containers"][0].get("env", [])
    assert all(e["name"] != "LOG_LEVEL" for e in env)
    watched = kubectl.get("-n", ns, f"deploy/{d.ns('watched')}")
    assert watched["spec"]["replicas"] == 4
    assert watched["metadata"]["labels"]["team"] == "rogue"

    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        beat, reports = await sweep(ctx, resolved)
        stored, _ = await read_releases(ctx.kube, ns)
    assert {r.name: bool(r.drift) for r in reports} == {
        d.ns("healed"): False,
        d.ns("watched"): True,
        d.ns("ignoring"): False,
    }
    assert latest(stored)[(ns, d.ns("watched"))].revision == 1  # reported only: no helm upgrade ran
