"""The charts' opt-in canary (`progressiveDelivery`, Argo Rollouts) through the real helm binary, no
cluster: the workload and the Service of every mode against golden YAML
(tests/unit/charts/golden/progressive; MOORAGE_UPDATE_GOLDEN=1 writes them anew), the Rollout being the
Deployment with another kind and strategy only, the refusal without the Rollout CRD (checked through
`.Capabilities`, so `--api-versions` renders offline), the server's several-replica requirement, and
the schema's errors. The real Rollouts controller: tests/integration/test_chart_rollouts.py."""

from pathlib import Path
from typing import Any

import pytest

from tests.unit.charts.test_charts import (
    AGENT,
    CHARTS,
    GOLDEN,
    SERVER,
    TOKEN,
    UPDATE,
    documents,
    helm,
    template,
    values_file,
)

PROGRESSIVE = GOLDEN / "progressive"
ROLLOUT_API = "argoproj.io/v1alpha1/Rollout"
# what progressiveDelivery changes: the workload, and the Service it must leave alone
SHOWN = ("templates/deployment.yaml", "templates/service.yaml")

AGENT_OK: dict[str, Any] = {"config": {"token": TOKEN, "server_url": SERVER}}
# the several-replica mode a server canary needs
SERVER_SCALED: dict[str, Any] = {
    "database": {"existing_secret_name": "moorage-db"},
    "nats": {"existing_secret_name": "moorage-nats"},
    "sealing_key": {"existing_secret_name": "moorage-sealing"},
    "persistence": {"enabled": False},
}
ON = {"progressiveDelivery": {"enabled": True}}
STEPS = [{"setWeight": 25}, {"pause": {"duration": "10m"}}, {"setWeight": 50}, {"pause": {}}]

# mode -> (chart, release, values, rollout CRD known to helm)
MODES: dict[str, tuple[str, str, dict[str, Any], bool]] = {
    "agent-deployment": ("moorage-agent", AGENT, AGENT_OK, True),
    "agent-rollout": ("moorage-agent", AGENT, {**AGENT_OK, **ON}, True),
    "agent-rollout-steps": (
        "moorage-agent",
        "edge-agent",
        {
            **AGENT_OK,
            "progressiveDelivery": {
                "enabled": True,
                "provider": "argo-rollouts",
                "canarySteps": STEPS,
                "maxSurge": "25%",
                "maxUnavailable": 0,
            },
            "replica_count": 0,
        },
        True,
    ),
    "server-deployment": ("moorage", "moorage", SERVER_SCALED, True),
    "server-rollout": ("moorage", "moorage", {**SERVER_SCALED, **ON}, True),
}


def render(
    tmp_path: Path, chart: str, release: str, values: dict[str, Any], crd: bool = True, check: bool = True
) -> Any:
    args = ["template", release, str(CHARTS / chart), "--namespace", "moorage"]
    args += ["--values", str(values_file(tmp_path, values))]
    if crd:
        args += ["--api-versions", ROLLOUT_API]
    for shown in SHOWN:
        args += ["--show-only", shown]
    return helm(*args, check=check)


def workload_and_service(tmp_path: Path, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    chart, release, values, crd = MODES[mode]
    workload, service = documents(render(tmp_path, chart, release, values, crd).stdout)
    assert service["kind"] == "Service"
    return workload, service


@pytest.mark.parametrize("mode", sorted(MODES))
def test_lint_and_the_workload_match_the_golden_files(mode: str, tmp_path: Path) -> None:
    chart, release, values, crd = MODES[mode]
    # helm lint knows no --api-versions; in lint mode a template's `fail` is logged, not fatal
    lint = helm("lint", str(CHARTS / chart), "--strict", "--values", str(values_file(tmp_path, values)))
    assert "0 chart(s) failed" in lint.stdout, lint.stdout
    rendered = render(tmp_path, chart, release, values, crd).stdout
    golden = PROGRESSIVE / f"{mode}.yaml"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} is missing: run with MOORAGE_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), f"{mode} renders differently: MOORAGE_UPDATE_GOLDEN=1 to accept"


def test_every_golden_file_is_a_mode() -> None:
    assert {p.stem for p in PROGRESSIVE.glob("*.yaml")} == set(MODES)


@pytest.mark.parametrize(
    ("off", "on"), [("agent-deployment", "agent-rollout"), ("server-deployment", "server-rollout")]
)
def test_the_rollout_is_the_deployment_with_a_canary_strategy(off: str, on: str, tmp_path: Path) -> None:
    deployment, service_off = workload_and_service(tmp_path, off)
    rollout, service_on = workload_and_service(tmp_path, on)
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (rollout["apiVersion"], rollout["kind"]) == ("argoproj.io/v1alpha1", "Rollout")
    assert deployment["spec"].pop("strategy") == {"type": "Recreate"}
    # the default: one canary step with a manual pause, conservative surge and unavailability
    assert rollout["spec"].pop("strategy") == {
        "canary": {"maxSurge": 1, "maxUnavailable": 0, "steps": [{"setWeight": 20}, {"pause": {}}]}
    }
    # pod template, selector, replicas, names and labels: all the same
    assert rollout["spec"] == deployment["spec"]
    assert rollout["metadata"] == deployment["metadata"]
    # the Service and its selector do not change, and no canary/stable Service is asked for, so the
    # Rollouts controller never rewrites a selector
    assert service_on == service_off
    assert service_on["spec"]["selector"] == rollout["spec"]["selector"]["matchLabels"]


def test_canary_steps_and_surge_come_from_the_values(tmp_path: Path) -> None:
    rollout, _ = workload_and_service(tmp_path, "agent-rollout-steps")
    assert rollout["spec"]["strategy"] == {"canary": {"maxSurge": "25%", "maxUnavailable": 0, "steps": STEPS}}
    assert rollout["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("chart", "values"),
    [("moorage-agent", {**AGENT_OK, **ON}), ("moorage", {**SERVER_SCALED, **ON})],
)
def test_without_the_rollout_crd_rendering_fails_saying_what_to_do(
    chart: str, values: dict[str, Any], tmp_path: Path
) -> None:
    result = template(tmp_path, chart, "x", values, check=False)  # no --api-versions: no CRD known
    assert result.returncode != 0
    assert "execution error at" in result.stderr
    for said in (
        "progressiveDelivery.enabled=true renders an Argo Rollouts Rollout",
        "the cluster has no Rollout CRD (argoproj.io/v1alpha1/Rollout)",
        "install Argo Rollouts first",
        "set progressiveDelivery.enabled=false",
        "helm template ... --api-versions argoproj.io/v1alpha1/Rollout",
    ):
        assert said in result.stderr, result.stderr
    # with the option off, nothing needs the CRD
    assert (
        template(tmp_path, chart, "x", {**values, "progressiveDelivery": {"enabled": False}}).returncode == 0
    )


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        (
            {},
            [
                "database.existing_secret_name",
                "nats.existing_secret_name",
                "sealing_key.existing_secret_name",
                "persistence.enabled=false",
            ],
        ),
        ({**SERVER_SCALED, "nats": {}}, ["nats.existing_secret_name"]),
        ({**SERVER_SCALED, "persistence": {"enabled": True}}, ["persistence.enabled=false"]),
    ],
)
def test_a_server_canary_needs_the_several_replica_mode(
    values: dict[str, Any], missing: list[str], tmp_path: Path
) -> None:
    result = render(tmp_path, "moorage", "moorage", {**values, **ON}, check=False)
    assert result.returncode != 0
    assert "runs the stable and the canary server side by side" in result.stderr, result.stderr
    for name in missing:
        assert name in result.stderr
    shared = {**SERVER_SCALED, "persistence": {"enabled": True, "access_modes": ["ReadWriteMany"]}, **ON}
    (rollout, _) = documents(render(tmp_path, "moorage", "moorage", shared).stdout)
    assert rollout["kind"] == "Rollout"


@pytest.mark.parametrize("chart", ["moorage-agent", "moorage"])
@pytest.mark.parametrize(
    ("progressive", "message"),
    [
        ({"provider": "flagger"}, "at '/progressiveDelivery/provider': value must be 'argo-rollouts'"),
        ({"enabled": "yes"}, "at '/progressiveDelivery/enabled': got string, want boolean"),
        ({"canary": []}, "at '/progressiveDelivery': additional properties 'canary' not allowed"),
        (
            {"canarySteps": [{"setWeight": 120}]},
            "at '/progressiveDelivery/canarySteps/0/setWeight': maximum: got 120, want 100",
        ),
        (
            {"canarySteps": [{"setWeight": 20, "pause": {}}]},
            "at '/progressiveDelivery/canarySteps/0': maxProperties: got 2, want 1",
        ),
        (
            {"canarySteps": [{"analysis": {}}]},
            "at '/progressiveDelivery/canarySteps/0': additional properties 'analysis' not allowed",
        ),
        ({"canarySteps": []}, "at '/progressiveDelivery/canarySteps': minItems: got 0, want 1"),
        ({"maxSurge": "lots"}, "at '/progressiveDelivery/maxSurge'"),
    ],
)
def test_the_schema_refuses(chart: str, progressive: dict[str, Any], message: str, tmp_path: Path) -> None:
    base = AGENT_OK if chart == "moorage-agent" else SERVER_SCALED
    result = render(tmp_path, chart, "x", {**base, "progressiveDelivery": progressive}, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema(s)" in result.stderr
    assert message in result.stderr, result.stderr


def test_several_server_replicas_need_the_several_replica_mode(tmp_path: Path) -> None:
    refused = render(tmp_path, "moorage", "moorage", {"replica_count": 3}, check=False)
    assert refused.returncode != 0
    assert "replica_count=3 runs several servers" in refused.stderr, refused.stderr
    assert "database.existing_secret_name" in refused.stderr
    (deployment, _) = documents(
        render(tmp_path, "moorage", "moorage", {**SERVER_SCALED, "replica_count": 3}).stdout
    )
    assert (deployment["kind"], deployment["spec"]["replicas"]) == ("Deployment", 3)
    (one, _) = documents(render(tmp_path, "moorage", "moorage", {"replica_count": 1}).stdout)  # the trial
    assert one["spec"]["replicas"] == 1
    too_many = render(tmp_path, "moorage", "moorage", {**SERVER_SCALED, "replica_count": 11}, check=False)
    assert too_many.returncode != 0
    assert "replica_count" in too_many.stderr
