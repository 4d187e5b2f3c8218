"""Add-on state on the server: reports applied in order, transitions with their causes, snapshots
that forget what the agent no longer has, agents going offline and coming back, rollback holds,
and the API that serves them."""

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from moorage.server import addon_state, service
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import Cluster
from moorage.spec.lifecycle import Cause
from moorage.spec.protocol import AddonObservation, HeartbeatMessage, StateReport
from tests.unit.server.conftest import HASHER

T0 = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
DRIFT = [
    {
        "kind": "Deployment",
        "name": "web",
        "drift_type": "modified",
        "changes": [{"path": "spec.replicas", "want": 2, "live": 5}],
    }
]


def obs(name: str = "web", **fields: Any) -> AddonObservation:
    base: dict[str, Any] = {
        "namespace": "apps",
        "chart": "webapp",
        "version": "1.0.0",
        "installed": True,
        "release_chart": "webapp",
        "release_version": "1.0.0",
        "revision": 1,
        "helm_status": "deployed",
        "health": "Healthy",
    }
    return AddonObservation.model_validate({"name": name, **base, **fields})


def _cluster(factory: SessionFactory) -> str:
    with transaction(factory) as s:
        cluster, _ = service.register_cluster(s, HASHER, "c1")
        return cluster.id


def _report(
    cid: str, seq: int, addons: list[AddonObservation], session: str = "s1", **kw: Any
) -> StateReport:
    return StateReport(cluster_id=cid, session=session, seq=seq, addons=addons, **kw)


def _apply(factory: SessionFactory, report: StateReport, at: datetime = T0) -> list[addon_state.Change]:
    with transaction(factory) as s:
        return addon_state.record_state(s, report, at)


def _transitions(factory: SessionFactory, name: str = "web") -> list[tuple[str | None, str, str]]:
    with transaction(factory) as s:
        cluster = service.get_cluster(s, "c1")
        rows, _ = addon_state.transitions(s, cluster, name)
        return [(r.from_state, r.to_state, r.cause) for r in reversed(rows)]


def test_drift_then_heal_are_two_transitions_with_causes(factory: SessionFactory) -> None:
    cid = _cluster(factory)
    _apply(factory, _report(cid, 1, [obs(cause="sync")], snapshot="x", all_names=["web"]))
    [change] = _apply(factory, _report(cid, 2, [obs(drift=DRIFT, cause="sweep")]), T0 + timedelta(seconds=60))
    assert change.state == "OutOfSync"
    assert "spec.replicas: want 2, live 5" in change.reason
    _apply(factory, _report(cid, 3, [obs(cause="heal")]), T0 + timedelta(seconds=61))
    assert _transitions(factory) == [
        (None, "Synced", "sync"),
        ("Synced", "OutOfSync", "sweep"),
        ("OutOfSync", "Synced", "heal"),
    ]


def test_duplicates_and_late_reports_change_nothing(factory: SessionFactory) -> None:
    cid = _cluster(factory)
    _apply(factory, _report(cid, 1, [obs()]))
    _apply(factory, _report(cid, 2, [obs(drift=DRIFT)]))
    assert _apply(factory, _report(cid, 2, [obs(drift=DRIFT)])) == []  # redelivered
    assert _apply(factory, _report(cid, 1, [obs()])) == []  # late
    assert _apply(factory, _report(cid, 9, [obs()], session="s0")) == []  # an older agent process
    assert len(_transitions(factory)) == 2
    # a newer agent process (restart) starts its own sequence
    assert _apply(factory, _report(cid, 1, [obs()], session="s2"))


def test_a_late_report_still_writes_the_add_ons_no_newer_report_wrote(factory: SessionFactory) -> None:
    """Report 2 failed to record and came back after report 3 (a retry, or another replica's
    consumer): what 2 says of `db` is kept, what it says of `web` is older than 3's and is not."""
    cid = _cluster(factory)
    _apply(factory, _report(cid, 1, [obs("web"), obs("db")]))
    _apply(factory, _report(cid, 3, [obs("web")]))  # web Synced again
    late = _apply(factory, _report(cid, 2, [obs("web", drift=DRIFT), obs("db", drift=DRIFT)]))
    assert [(c.addon, c.state) for c in late] == [("db", "OutOfSync")]
    with transaction(factory) as s:
        cluster = service.get_cluster(s, "c1")
        rows, _, _ = addon_state.list_addons(s, cluster)
        assert {r.name: r.state for r in rows} == {"web": "Synced", "db": "OutOfSync"}
        assert cluster.state_seq == 3  # the cluster's newest report is still 3
    # a late report never brings back an add-on a newer one removed, nor adds one
    _apply(factory, _report(cid, 5, [], removed=["db"]))
    assert _apply(factory, _report(cid, 4, [obs("db"), obs("new")])) == []
    with transaction(factory) as s:
        rows, _, _ = addon_state.list_addons(s, service.get_cluster(s, "c1"))
        assert [r.name for r in rows] == ["web"]


def test_a_snapshot_forgets_addons_the_agent_no_longer_has(factory: SessionFactory) -> None:
    cid = _cluster(factory)
    _apply(factory, _report(cid, 1, [obs("a"), obs("b")]))
    _apply(factory, _report(cid, 2, [obs("a")], snapshot="s", part=0, parts=2))
    with transaction(factory) as s:
        assert addon_state.counts(s, service.get_cluster(s, "c1"))["Synced"] == 2  # not complete yet
    _apply(factory, _report(cid, 3, [], snapshot="s", part=1, parts=2, all_names=["a"]))
    with transaction(factory) as s:
        cluster = service.get_cluster(s, "c1")
        rows, total, _ = addon_state.list_addons(s, cluster)
        assert [r.name for r in rows] == ["a"]
        assert total == 1
        assert cluster.state_full_at == T0


def test_offline_agent_makes_addons_unknown_once_and_back_on_heartbeat(factory: SessionFactory) -> None:
    cid = _cluster(factory)
    with transaction(factory) as s:
        service.record_heartbeat(s, HeartbeatMessage(cluster_id=cid, agent_version="x"), T0)
    _apply(factory, _report(cid, 1, [obs()]))
    later = T0 + service.OFFLINE_AFTER + timedelta(seconds=1)
    with transaction(factory) as s:
        [change] = addon_state.mark_offline(s, service.OFFLINE_AFTER, later)
        assert change.state == "Unknown"
        assert change.cause == "agent offline"
        assert addon_state.mark_offline(s, service.OFFLINE_AFTER, later) == []
    with transaction(factory) as s:
        service.record_heartbeat(s, HeartbeatMessage(cluster_id=cid, agent_version="x"), later)
        [back] = addon_state.agent_back(s, s.get(Cluster, cid), later)  # type: ignore[arg-type]
        assert back.state == "Synced"
        assert back.cause == "connect"


def test_a_rollback_hold_says_so_until_released(factory: SessionFactory) -> None:
    cid = _cluster(factory)
    _apply(factory, _report(cid, 1, [obs(revision=2)]))
    with transaction(factory) as s:
        cluster = service.get_cluster(s, "c1")
        row = addon_state.get_addon(s, cluster, "web")
        assert row is not None
        change = addon_state.hold(s, cluster, row, 1, Cause.ROLLBACK, T0)
        assert change is not None
        assert "rolled back to revision 1" in change.reason
        assert addon_state.held_addons(s, cluster) == ["web"]
        assert addon_state.release_holds_changed_by(s, cluster, ["other"]) == []
        [released] = addon_state.release_holds_changed_by(s, cluster, ["web"], T0)
        assert released.state == "Synced"


def test_api_lists_filters_and_explains(client: TestClient, factory: SessionFactory) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    with transaction(factory) as s:
        cid = service.get_cluster(s, "c1").id
    _apply(factory, _report(cid, 1, [obs("web", drift=DRIFT), obs("db"), obs("cache", health="Degraded")]))
    body = client.get("/api/v1/clusters/c1/addons").json()
    assert [a["name"] for a in body["result"]] == ["cache", "db", "web"]
    assert {k: v for k, v in body["counts"].items() if v} == {"OutOfSync": 1, "Synced": 1, "Degraded": 1}
    drifted = client.get("/api/v1/clusters/c1/addons", params={"state": "OutOfSync"}).json()["result"]
    assert [a["name"] for a in drifted] == ["web"]
    assert drifted[0]["drifted_fields"] == 1
    assert [
        a["name"] for a in client.get("/api/v1/clusters/c1/addons", params={"search": "ca"}).json()["result"]
    ] == ["cache"]
    assert client.get("/api/v1/clusters/c1/addons", params={"state": "Broken"}).status_code == 422
    drift = client.get("/api/v1/clusters/c1/addons/web/drift").json()
    assert drift["resources"][0]["changes"] == [{"path": "spec.replicas", "want": 2, "live": 5}]
    detail = client.get("/api/v1/clusters/c1/addons/web").json()
    assert detail["state"] == "OutOfSync"
    assert "want 2, live 5" in detail["reason"]
    assert (
        client.get("/api/v1/clusters/c1/addons/web/transitions").json()["result"][0]["to_state"]
        == "OutOfSync"
    )
    missing = client.get("/api/v1/clusters/c1/addons/nope")
    assert missing.status_code == 404
    assert "moorage addons list" in missing.json()["detail"]


def test_addon_sync_without_a_definition_is_refused_with_what_to_do(
    client: TestClient, factory: SessionFactory
) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    with transaction(factory) as s:
        cid = service.get_cluster(s, "c1").id
    _apply(factory, _report(cid, 1, [obs()]))
    r = client.post("/api/v1/clusters/c1/addons/web/sync")
    assert r.status_code == 409
    assert "cluster apply" in r.json()["detail"]


def test_readers_cannot_roll_back(client: TestClient, anon: TestClient) -> None:
    token = client.post("/api/v1/tokens", json={"name": "r", "scopes": ["read"]}).json()["token"]
    client.post("/api/v1/clusters", json={"name": "c1"})
    r = anon.post(
        "/api/v1/clusters/c1/addons/web/rollback",
        json={"revision": 1},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403


def test_metrics_count_addons_per_cluster_and_state(client: TestClient, factory: SessionFactory) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    with transaction(factory) as s:
        cid = service.get_cluster(s, "c1").id
    _apply(factory, _report(cid, 1, [obs("a"), obs("b", drift=DRIFT)], snapshot="x", all_names=["a", "b"]))
    text = client.get("/metrics").text
    assert f'moorage_addons{{cluster_id="{cid}",state="Synced"}} 1.0' in text
    assert f'moorage_addons{{cluster_id="{cid}",state="OutOfSync"}} 1.0' in text
    assert f'moorage_cluster_full_report_age_seconds{{cluster_id="{cid}"}}' in text
