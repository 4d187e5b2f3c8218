"""The lifecycle state of an add-on: one table row per rule of `decide`, plus properties."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.spec.lifecycle import AddonState, ServerView, decide
from moorage.spec.protocol import AddonObservation

SCALED = [
    {
        "kind": "Deployment",
        "name": "web",
        "drift_type": "modified",
        "changes": [{"path": "spec.replicas", "want": 2, "live": 5}],
    }
]


def obs(**fields: Any) -> AddonObservation:
    base: dict[str, Any] = {
        "name": "web",
        "namespace": "apps",
        "chart": "webapp",
        "version": "1.0.0",
        "installed": True,
        "release_chart": "webapp",
        "release_version": "1.0.0",
        "revision": 3,
        "helm_status": "deployed",
        "health": "Healthy",
        "health_reason": "all resources are healthy",
    }
    return AddonObservation(**{**base, **fields})


TABLE: list[tuple[str, AddonObservation | None, ServerView, AddonState, str]] = [
    (
        "agent offline",
        obs(),
        ServerView(agent_online=False, agent_seen="4 min ago"),
        AddonState.UNKNOWN,
        "offline (4 min ago)",
    ),
    ("never reported", None, ServerView(), AddonState.UNKNOWN, "not reported"),
    ("never reported, queued", None, ServerView(queued=True), AddonState.PENDING, "queued"),
    ("a job deploys it", obs(deploying=True), ServerView(), AddonState.DEPLOYING, "deploying webapp 1.0.0"),
    ("queued change", obs(), ServerView(queued=True), AddonState.PENDING, "queued"),
    (
        "not installed",
        obs(installed=False, helm_status=None, revision=None),
        ServerView(),
        AddonState.PENDING,
        "not installed",
    ),
    (
        "install failed",
        obs(installed=False, last_error="image pull"),
        ServerView(),
        AddonState.DEGRADED,
        "install failed: image pull",
    ),
    (
        "manual, not installed",
        obs(installed=False, automated=False),
        ServerView(),
        AddonState.OUT_OF_SYNC,
        "manual sync",
    ),
    (
        "helm pending",
        obs(helm_status="pending-upgrade"),
        ServerView(),
        AddonState.DEPLOYING,
        "pending-upgrade",
    ),
    (
        "helm failed",
        obs(helm_status="failed", last_error="timed out"),
        ServerView(),
        AddonState.DEGRADED,
        "revision 3 failed: timed out",
    ),
    (
        "rolled back",
        obs(definition_matches=False),
        ServerView(held_revision=1),
        AddonState.OUT_OF_SYNC,
        "rolled back to revision 1, out of sync with Git",
    ),
    (
        "degraded",
        obs(health="Degraded", health_reason="Deployment web: 0/2 available"),
        ServerView(),
        AddonState.DEGRADED,
        "0/2 available",
    ),
    (
        "missing object",
        obs(health="Missing", health_reason="Service web is missing"),
        ServerView(),
        AddonState.DEGRADED,
        "Service web is missing",
    ),
    (
        "manual sync waiting",
        obs(automated=False, definition_matches=False, definition_diff=["chart webapp 1.0.0 → 1.1.0"]),
        ServerView(),
        AddonState.OUT_OF_SYNC,
        "changes waiting for a manual sync: chart webapp 1.0.0 → 1.1.0",
    ),
    (
        "definition differs",
        obs(definition_matches=False, definition_diff=["values changed at replicaCount"]),
        ServerView(),
        AddonState.OUT_OF_SYNC,
        "definition differs: values changed at replicaCount",
    ),
    (
        "deploy failed, rolled back by helm",
        obs(definition_matches=False, last_error="timed out"),
        ServerView(),
        AddonState.DEGRADED,
        "deploy failed: timed out",
    ),
    (
        "drift",
        obs(drift=SCALED),
        ServerView(),
        AddonState.OUT_OF_SYNC,
        "Deployment web: spec.replicas: want 2, live 5",
    ),
    (
        "drift, heal off",
        obs(drift=SCALED, self_heal=False),
        ServerView(),
        AddonState.OUT_OF_SYNC,
        "(self-heal is off)",
    ),
    (
        "drift in a fight",
        obs(drift=SCALED, conflicts=[{"manager": "hpa-controller", "path": "spec.replicas"}]),
        ServerView(),
        AddonState.OUT_OF_SYNC,
        "hpa-controller keeps changing spec.replicas",
    ),
    ("only omitted drift", obs(drift_omitted=3), ServerView(), AddonState.OUT_OF_SYNC, "3 field(s)"),
    (
        "progressing",
        obs(health="Progressing", health_reason="1/2 updated"),
        ServerView(),
        AddonState.DEPLOYING,
        "rolling out: 1/2 updated",
    ),
    (
        "suspended, strict",
        obs(health="Suspended", strict_health=True, health_reason="CronJob x is suspended"),
        ServerView(),
        AddonState.DEPLOYING,
        "strict health counts Suspended",
    ),
    (
        "suspended, not strict",
        obs(health="Suspended", suspended=["CronJob x: suspended"]),
        ServerView(),
        AddonState.SYNCED,
        "suspended: CronJob x",
    ),
    (
        "health unknown",
        obs(health="Unknown", health_reason="node not reporting"),
        ServerView(),
        AddonState.UNKNOWN,
        "node not reporting",
    ),
    ("synced", obs(), ServerView(), AddonState.SYNCED, "revision 3 of webapp 1.0.0 is deployed and healthy"),
]


@pytest.mark.parametrize(("case", "observation", "view", "state", "reason"), TABLE, ids=[t[0] for t in TABLE])
def test_decide(
    case: str, observation: AddonObservation | None, view: ServerView, state: AddonState, reason: str
) -> None:
    life = decide(observation, view)
    assert life.state is state, (case, life)
    assert reason in life.reason, (case, life.reason)


def test_suspended_is_never_a_state_of_its_own() -> None:
    assert {s.value for s in AddonState} == {
        "Pending",
        "Deploying",
        "Synced",
        "Degraded",
        "OutOfSync",
        "Unknown",
    }


@given(
    health=st.sampled_from(["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"]),
    drifted=st.booleans(),
    matches=st.booleans(),
    online=st.booleans(),
    held=st.one_of(st.none(), st.integers(1, 9)),
)
def test_synced_only_when_everything_holds(
    health: str, drifted: bool, matches: bool, online: bool, held: int | None
) -> None:
    life = decide(
        obs(health=health, drift=SCALED if drifted else [], definition_matches=matches),
        ServerView(agent_online=online, held_revision=held),
    )
    synced = life.state is AddonState.SYNCED
    assert synced == (
        online and held is None and matches and not drifted and health in ("Healthy", "Suspended")
    )
    assert life.reason  # always something a person can read
    if not online:
        assert life.state is AddonState.UNKNOWN


def test_each_addon_knows_where_it_is_defined() -> None:
    from pathlib import Path

    from moorage.spec.loader import LoadOptions, load

    example = Path(__file__).resolve().parents[3] / "examples" / "gitops-repo"
    result = load(example / "import-cluster.yaml", LoadOptions(decrypt=False), repo_root=example)
    assert result.resolved is not None
    addons = result.resolved.addons
    assert addons["webapp"].defined_at == "addons/webapp.yaml:2"
    assert addons["crd-widget"].defined_at.startswith("import-cluster.yaml:")
