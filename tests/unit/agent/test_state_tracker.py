"""The agent's state reports: a full snapshot first, then only changes, split to fit the limit."""

from moorage.agent.state import StateTracker
from moorage.spec import protocol
from moorage.spec.protocol import AddonObservation


def obs(name: str, **fields: object) -> AddonObservation:
    base: dict[str, object] = {"namespace": "apps", "installed": True, "health": "Healthy"}
    return AddonObservation.model_validate({"name": name, **base, **fields})


def deliver(
    tracker: StateTracker, observations: list[AddonObservation], complete: bool = True
) -> list[protocol.StateReport]:
    reports = tracker.reports(observations, complete=complete)
    tracker.sent(reports)
    return reports


def test_first_report_is_a_full_snapshot_then_only_changes() -> None:
    t = StateTracker("c1")
    [first] = deliver(t, [obs("a"), obs("b")])
    assert first.snapshot is not None
    assert first.all_names == ["a", "b"]
    assert deliver(t, [obs("a"), obs("b")]) == []  # nothing changed: nothing sent
    [delta] = deliver(t, [obs("a", health="Degraded"), obs("b")])
    assert delta.snapshot is None
    assert [o.name for o in delta.addons] == ["a"]
    assert delta.seq > first.seq


def test_the_cause_alone_is_not_a_change() -> None:
    t = StateTracker("c1")
    deliver(t, [obs("a", cause="sync")])
    assert deliver(t, [obs("a", cause="sweep")]) == []


def test_removed_addons_are_reported_only_by_complete_reports() -> None:
    t = StateTracker("c1")
    deliver(t, [obs("a"), obs("b")])
    assert deliver(t, [obs("a")], complete=False) == []
    [delta] = deliver(t, [obs("a")])
    assert delta.removed == ["b"]


def test_reset_sends_a_full_snapshot_again() -> None:
    t = StateTracker("c1")
    deliver(t, [obs("a")])
    t.reset()
    [again] = deliver(t, [obs("a")])
    assert again.snapshot is not None
    assert again.all_names == ["a"]


def test_a_partial_report_before_any_snapshot_is_a_delta_and_the_snapshot_still_follows() -> None:
    t = StateTracker("c1")
    [partial] = deliver(t, [obs("a")], complete=False)
    assert partial.snapshot is None
    [full] = deliver(t, [obs("a"), obs("b")])
    assert full.snapshot is not None


def test_500_addons_with_drift_are_split_into_messages_under_the_limit() -> None:
    drift = [
        {
            "kind": "ConfigMap",
            "name": f"cm-{i}",
            "drift_type": "modified",
            "changes": [{"path": "data.key", "want": "x" * 400, "live": "y" * 400}],
        }
        for i in range(20)
    ]
    t = StateTracker("c1")
    reports = deliver(t, [obs(f"addon-{i:03}", drift=drift) for i in range(500)])
    assert len(reports) > 1
    assert {r.snapshot for r in reports} == {reports[0].snapshot}
    assert [r.part for r in reports] == list(range(len(reports)))
    assert all(r.parts == len(reports) for r in reports)
    assert sum(len(r.addons) for r in reports) == 500  # nothing dropped
    assert reports[-1].all_names is not None
    assert len(reports[-1].all_names) == 500
    for r in reports:
        assert len(protocol.encode(r)) <= protocol.MAX_MESSAGE_BYTES
