"""Upgrade Agent's pure decision (agent/selfupgrade.py): what a job may ask for, which release is the
agent's own, and the chart reference helm is given. The real helm upgrade against the devcluster:
tests/integration/test_agent_upgrade.py."""

from typing import Any

import pytest

from moorage.agent.selfupgrade import Upgrade, UpgradeRefused, chart_of, chart_version, request_of
from moorage.helm.cli import ChartRef
from moorage.spec.protocol import WRITE_ACTIONS, HeartbeatMessage, JobAction

ENV = {"MOORAGE_AGENT_RELEASE_NAME": "moorage-agent", "MOORAGE_AGENT_RELEASE_NAMESPACE": "moorage"}
OCI = "oci://registry.example.com/charts/moorage-agent"


def test_a_valid_request_names_our_release_and_the_chart() -> None:
    assert request_of({"chart": OCI, "version": "0.2.0"}, ENV) == Upgrade(
        "moorage-agent",
        "moorage",
        ChartRef(name="moorage-agent", version="0.2.0", repository="oci://registry.example.com/charts"),
    )


@pytest.mark.parametrize(
    ("reference", "args"),
    [
        (OCI, [OCI, "--version", "1.0.0"]),
        (
            "oci://127.0.0.1:5000/moorage-agent/",
            ["oci://127.0.0.1:5000/moorage-agent", "--version", "1.0.0", "--plain-http"],
        ),
        (
            "https://charts.example.com/",
            ["moorage-agent", "--repo", "https://charts.example.com", "--version", "1.0.0"],
        ),
    ],
)
def test_chart_references(reference: str, args: list[str]) -> None:
    assert chart_of(reference, "1.0.0").args() == args


@pytest.mark.parametrize(
    ("payload", "env", "says"),
    [
        ({"chart": OCI, "version": "latest"}, ENV, "version 'latest' is not a chart version"),
        ({"chart": OCI, "version": "0.2.0; rm -rf /"}, ENV, "is not a chart version"),
        ({"chart": OCI}, ENV, "version None is not a chart version"),
        ({"version": "0.2.0"}, ENV, "the job names no chart"),
        ({"chart": "moorage/moorage-agent", "version": "0.2.0"}, ENV, "is neither oci://"),
        ({"chart": "oci://", "version": "0.2.0"}, ENV, "an OCI reference names the chart"),
        ({"chart": OCI, "version": "0.2.0"}, {}, "this agent does not know its Helm release"),
        (
            {"chart": OCI, "version": "0.2.0"},
            {**ENV, "MOORAGE_AGENT_RELEASE_NAME": "Bad_Name"},
            "is not a valid Helm release name",
        ),
    ],
)
def test_refused_with_the_reason(payload: dict[str, Any], env: dict[str, str], says: str) -> None:
    with pytest.raises(UpgradeRefused, match=None) as refused:
        request_of(payload, env)
    assert says in str(refused.value)


def test_the_chart_version_comes_from_the_chart_and_rides_the_heartbeat() -> None:
    assert chart_version({"MOORAGE_AGENT_CHART_VERSION": "0.2.0"}) == "0.2.0"
    assert chart_version({}) is None
    beat = HeartbeatMessage(cluster_id="c1", agent_version="0.1.0", chart_version="0.2.0")
    assert beat.model_dump(mode="json")["chart_version"] == "0.2.0"
    # unknown: left out, so an older server still takes the heartbeat
    assert "chart_version" not in HeartbeatMessage(cluster_id="c1", agent_version="0.1.0").model_dump(
        mode="json"
    )
    # a write: only the leader upgrades, alone
    assert JobAction.UPGRADE_AGENT in WRITE_ACTIONS
