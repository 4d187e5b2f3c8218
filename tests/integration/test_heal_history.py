"""Self-heal on the devcluster keeps Helm history meaningful: drift is healed by re-applying the stored
manifest under helm's field manager, with no new revision and no conflict for the next `helm
upgrade`; a field another manager keeps setting becomes a reported conflict instead of a heal loop.

The sweep's clock is moved on between sweeps (the fight detector counts heals per 10 minutes):
11 minutes while a person scales by hand, so those heals never add up to a fight, and 1 minute
(the agent's sweep interval) while a controller keeps setting the field."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.engine.executor import sync
from moorage.engine.fights import FIGHT_HEALS
from moorage.engine.sweep import AddonReport, sweep
from moorage.spec.content import ResolvedCluster
from tests.integration.conftest import Helm, Kubectl
from tests.integration.engine_support import Engine, new_definition

DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: heal-SFX
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
          namespace: heal-SFX
          configuration:
            values: {{replicaCount: 2, greeting: {greeting}}}
          settings: {settings}
"""
FOREIGN = "hpa-controller-test"


class Clock:
    """The real time, moved on by the test."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, minutes: float) -> None:
        self.offset += timedelta(minutes=minutes)


def revisions(helm: Helm, namespace: str, name: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = json.loads(
        helm.run("history", name, "-n", namespace, "-o", "json").stdout
    )
    return history


def helm_apply_fields(live: dict[str, Any]) -> Any:
    (entry,) = [
        e for e in live["metadata"]["managedFields"] if e["manager"] == "helm" and e["operation"] == "Apply"
    ]
    return entry["fieldsV1"]


async def one_sweep(ctx: Any, resolved: ResolvedCluster, name: str) -> AddonReport:
    _, reports = await sweep(ctx, resolved)
    (report,) = [r for r in reports if r.name == name]
    return report


async def test_self_heal_adds_no_revision_and_a_fight_becomes_a_conflict(
    cluster: DevCluster, helm_home: Path, helm: Helm, kubectl: Kubectl, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    ns, name = d.ns("heal"), d.ns("web")
    deploy = f"deploy/{name}"
    d.write(DEFINITION.format(http=chart_repo.url, greeting="hello", settings="{}"))
    resolved, plan = d.load()
    clock = Clock()

    def replicas() -> int:
        value: int = kubectl.get("-n", ns, deploy)["spec"]["replicas"]
        return value

    def foreign_scale(to: int) -> None:
        """Another controller's server-side apply of spec.replicas (an HPA stand-in)."""
        patch = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}}
        patch["spec"] = {"replicas": to}
        kubectl.run(
            "apply", "--server-side", f"--field-manager={FOREIGN}", "--force-conflicts", "-f", "-",
            input=json.dumps(patch),
        )  # fmt: skip

    async with Engine(cluster.kubeconfig, helm_home) as ctx:
        ctx.clock = clock
        assert (await sync(ctx, resolved, plan)).ok
        installed = kubectl.get("-n", ns, deploy, "--show-managed-fields")
        # Helm 4 applies under the field manager "helm" (the base name of its argv[0])
        appliers = {e["manager"] for e in installed["metadata"]["managedFields"] if e["operation"] == "Apply"}
        assert appliers == {"helm"}
        helm_fields = helm_apply_fields(installed)

        # 1. someone scales by hand, now and then: healed every time, history untouched
        for i in range(10):
            kubectl.run("scale", "-n", ns, deploy, f"--replicas={3 + i}")
            if i == 4:
                kubectl.run("delete", "configmap", "-n", ns, f"{name}-config")
                kubectl.run("label", "-n", ns, deploy, "team=rogue")
            clock.advance(11)
            report = await one_sweep(ctx, resolved, name)
            assert report.errors == []
            assert report.healed, report.heal_skipped
            assert report.conflicts == []
            assert replicas() == 2
            assert len(revisions(helm, ns, name)) == 1
            if i == 4:
                assert report.recreated == [f"ConfigMap {ns}/{name}-config"]
        healed = kubectl.get("-n", ns, deploy, "--show-managed-fields")
        assert "team" not in healed["metadata"]["labels"]
        assert kubectl.get("-n", ns, f"configmap/{name}-config")["data"] == {"greeting": "hello"}
        # helm's applied configuration is what helm itself applied: ownership stayed with helm
        assert helm_apply_fields(healed) == helm_fields
        # nobody else owns anything of the spec: kubectl's scale lost spec.replicas to the forced apply
        spec_owners = {e["manager"] for e in healed["metadata"]["managedFields"] if "f:spec" in e["fieldsV1"]}
        assert spec_owners == {"helm"}
        beat, _ = await sweep(ctx, resolved)
        assert beat.drifted == 0

        # ...and the next real deploy, a plain `helm upgrade` without --force-conflicts, goes through
        d.write(DEFINITION.format(http=chart_repo.url, greeting="hi", settings="{}"))
        resolved, plan = d.load()
        result = await sync(ctx, resolved, plan)
        assert result.ok, {r: o.message for r, o in result.outcomes.items()}
        history = revisions(helm, ns, name)
        assert [r["revision"] for r in history] == [1, 2]
        assert all("self-heal" not in r["description"] for r in history)

        # 2. a controller keeps setting spec.replicas, within a minute of every heal
        for sweep_number in range(1, FIGHT_HEALS + 4):
            foreign_scale(5)
            if sweep_number == FIGHT_HEALS + 2:  # other drift of the add-on while in conflict
                kubectl.run("label", "-n", ns, deploy, "team=rogue")
                kubectl.run("delete", "configmap", "-n", ns, f"{name}-config")
            clock.advance(1)
            report = await one_sweep(ctx, resolved, name)
            assert report.errors == []
            if sweep_number <= FIGHT_HEALS:
                assert report.healed
                assert report.conflicts == []
                assert replicas() == 2
                continue
            # the fourth drift after three heals within minutes: a conflict, no longer healed
            (conflict,) = report.conflicts
            assert (conflict.resource, conflict.path) == (f"Deployment {ns}/{name}", "spec.replicas")
            assert conflict.manager == FOREIGN
            assert conflict.heals == FIGHT_HEALS
            assert replicas() == 5
            (entry,) = yaml.safe_load(conflict.ignore_entry)
            assert entry == {
                "group": "apps",
                "kind": "Deployment",
                "name": name,
                "namespace": ns,
                "json_pointers": ["/spec/replicas"],
            }
            if sweep_number == FIGHT_HEALS + 2:
                assert report.healed  # the rest of the drift still is
                assert report.recreated == [f"ConfigMap {ns}/{name}-config"]
                assert "team" not in kubectl.get("-n", ns, deploy)["metadata"]["labels"]
            else:
                assert not report.healed
                assert report.heal_skipped == "every drifted field is in conflict with another field manager"
        assert len(revisions(helm, ns, name)) == 2  # no revision for any of it

        # 3. the reported entry, pasted into the add-on's settings, ends the fight
        d.write(
            DEFINITION.format(
                http=chart_repo.url, greeting="hi", settings=json.dumps({"ignore_differences": [entry]})
            )
        )
        resolved, _ = d.load()
        foreign_scale(6)
        clock.advance(1)
        report = await one_sweep(ctx, resolved, name)
        assert (report.drift, report.conflicts) == ([], [])
        assert replicas() == 6
        assert ctx.fights is not None
        clock.advance(10)
        assert ctx.fights.observe(name, 2, [], clock()) == frozenset()
        assert ctx.fights.conflicts(name) == []  # quiet for the window: cleared
    assert len(revisions(helm, ns, name)) == 2
