"""User health checks on the devcluster: an add-on whose chart ships a CRD and one custom resource
(tests/charts/crd-gauge: crd-widget's CRD has no status schema, so the API server would prune a
status), judged first by a Lua check in the definition, then by a CEL check; the add-on's health
follows the resource's status as the test patches it, through the engine's sweep."""

import json
from pathlib import Path

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import Registry
from moorage.engine.executor import sync
from moorage.engine.health import Checks, HealthStatus
from moorage.engine.sweep import sweep
from moorage.spec.content import ResolvedCluster
from moorage.spec.graph import Plan
from moorage.spec.loader import LoadOptions, load
from tests.integration.conftest import Kubectl
from tests.integration.engine_support import Engine, new_definition

DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: checks-SFX
spec:
  helm_registries:
    - name: oci-repo
      url: {oci}
  health_checks:
{checks}
  stacks:
    - name: platform
      addons:
        - name: gauge-SFX
          chart_name: crd-gauge
          chart_version: "1.0.0"
          registry_name: oci-repo
          namespace: gauges-SFX
"""
LUA = """\
    - argocd_key: moorage.test_Gauge
      lua: |
        local hs = {}
        if obj.status == nil or obj.status.phase == nil then
          hs.status = "Progressing"
          hs.message = "waiting for a phase"
        elseif obj.status.phase == "Ready" and obj.status.level >= obj.spec.target then
          hs.status = "Healthy"
          hs.message = "level " .. obj.status.level .. " of " .. obj.spec.target
        elseif obj.status.phase == "Failed" then
          hs.status = "Degraded"
          hs.message = obj.status.message or "failed"
        else
          hs.status = "Progressing"
          hs.message = "phase " .. obj.status.phase
        end
        return hs
"""
CEL = """\
    - apiVersion: moorage.test/v1
      kind: Gauge
      cel:
        inProgress: "!has(self.status) || !has(self.status.phase)"
        failed: "status.phase == 'Failed'"
        current: "status.phase == 'Ready' && status.level >= spec.target"
"""


def load_with_checks(root: Path) -> tuple[ResolvedCluster, Plan, Checks]:
    result = load(root / "import-cluster.yaml", LoadOptions(decrypt=False))
    assert result.ok, result.report.to_text()
    assert result.resolved is not None
    assert result.plan is not None
    assert result.cluster is not None
    return result.resolved, result.plan, Checks.compile(result.cluster.spec.health_checks)


def patch_status(kubectl: Kubectl, namespace: str, name: str, status: dict[str, object]) -> None:
    kubectl.run(
        "patch", "gauge", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


async def test_lua_then_cel_checks_follow_the_status(
    cluster: DevCluster, helm_home: Path, kubectl: Kubectl, oci_registry: Registry, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    name, namespace = d.ns("gauge"), d.ns("gauges")
    d.write(DEFINITION.format(oci=oci_registry.url, checks=LUA))
    resolved, plan, checks = load_with_checks(d.root)
    assert checks.for_kind("moorage.test", "Gauge") is not None

    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        ctx.checks = checks
        result = await sync(ctx, resolved, plan)
        assert result.ok, {r: o.message for r, o in result.outcomes.items()}

        async def health() -> tuple[HealthStatus, str]:
            _, reports = await sweep(ctx, resolved)
            found = next(r for r in reports if r.name == name).health
            assert found is not None
            gauge = next(h for n, h in found.resources if n.startswith("Gauge"))
            return gauge.status, gauge.reason

        assert await health() == (HealthStatus.PROGRESSING, "waiting for a phase (Lua check)")
        patch_status(kubectl, namespace, name, {"phase": "Filling", "level": 1})
        assert await health() == (HealthStatus.PROGRESSING, "phase Filling (Lua check)")
        patch_status(kubectl, namespace, name, {"phase": "Ready", "level": 3})
        assert await health() == (HealthStatus.HEALTHY, "level 3 of 3 (Lua check)")
        patch_status(kubectl, namespace, name, {"phase": "Failed", "message": "sensor lost"})
        assert await health() == (HealthStatus.DEGRADED, "sensor lost (Lua check)")
        _, reports = await sweep(ctx, resolved)
        addon = next(r for r in reports if r.name == name).health
        assert addon is not None
        assert addon.status is HealthStatus.DEGRADED
        assert f"Gauge {namespace}/{name}" in addon.reason

        # the same object, now judged by a CEL check in the definition instead
        d.write(DEFINITION.format(oci=oci_registry.url, checks=CEL))
        resolved, _, ctx.checks = load_with_checks(d.root)
        status, reason = await health()
        assert (status, reason) == (HealthStatus.DEGRADED, "failed: status.phase == 'Failed' (CEL check)")
        patch_status(kubectl, namespace, name, {"phase": "Ready", "level": 2, "message": None})
        status, reason = await health()
        assert status is HealthStatus.PROGRESSING
        assert reason.startswith("not current yet: status.phase == 'Ready' && status.level >= spec.target")
        patch_status(kubectl, namespace, name, {"level": 5})
        assert (await health())[0] is HealthStatus.HEALTHY
        # a runtime error (no level to compare) is Unknown with the error, and the sweep carries on
        patch_status(kubectl, namespace, name, {"level": None})
        status, reason = await health()
        assert status is HealthStatus.UNKNOWN
        assert reason.startswith("the definition's CEL check for moorage.test/Gauge failed: ")
        assert reason.endswith("'current' failed: no such key: level")
        patch_status(kubectl, namespace, name, {"phase": None})
        status, reason = await health()
        assert (status, reason) == (
            HealthStatus.PROGRESSING,
            "inProgress: !has(self.status) || !has(self.status.phase) (CEL check)",
        )
