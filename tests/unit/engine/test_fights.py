"""Fight detection: when a field healed again and again is reported as a conflict instead of healed,
when that clears, and the manager and ignore entry a conflict names. The clock is injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import given, settings

from moorage.engine.diff import IgnoreRule, diff_resource
from moorage.engine.diffing.ignore import ignored_paths, jq_paths
from moorage.engine.diffing.model import FieldChange, ResourceDrift, ResourceKey
from moorage.engine.fights import (
    FIGHT_HEALS,
    FIGHT_WINDOW,
    UNKNOWN_MANAGER,
    FieldKey,
    FightDetector,
    drifting_fields,
    ignore_entry,
    jq_path_expression,
    other_managers,
)
from moorage.spec.models import IgnoreDifference

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WEB = ResourceKey("apps", "Deployment", "apps", "web")
REPLICAS: FieldKey = (WEB, "spec.replicas")
IMAGE: FieldKey = (WEB, "spec.template.spec.containers[web].image")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def sweep(
    detector: FightDetector, clock: Clock, *drifting: FieldKey, revision: int = 1
) -> frozenset[FieldKey]:
    """One sweep as `_heal` runs it: observe, heal everything not held."""
    held = detector.observe("web", revision, drifting, clock())
    detector.healed("web", set(drifting) - held, clock())
    return held


# ---------------------------------------------------------------------------- thresholds (table)


def test_the_documented_thresholds() -> None:
    assert FIGHT_HEALS == 3
    assert timedelta(minutes=10) == FIGHT_WINDOW


@pytest.mark.parametrize(
    ("gaps_minutes", "held_at"),
    [
        # the agent's 60 s sweep, field back every time: three heals, then a conflict
        ([1, 1, 1, 1, 1], [False, False, False, True, True, True]),
        # back every 3 minutes: the three heals are 9, 6 and 3 minutes old at the fourth drift
        ([3, 3, 3, 3], [False, False, False, True, True]),
        # every 4 minutes: the first heal is 12 minutes old at the fourth drift, so never three
        ([4, 4, 4, 4, 4], [False] * 6),
        # every 5 minutes: a heal exactly 10 minutes old has left the window
        ([5, 5, 5, 5, 5], [False] * 6),
        # once every 11 minutes: a heal each time, forever
        ([11] * 9, [False] * 10),
        # a burst of three, a long pause, three more: never three heals within one window
        ([1, 1, 30, 1, 1], [False] * 6),
    ],
)
def test_when_a_field_that_keeps_drifting_becomes_a_conflict(
    gaps_minutes: list[int], held_at: list[bool]
) -> None:
    detector, clock = FightDetector(), Clock()
    seen = [REPLICAS in sweep(detector, clock, REPLICAS)]
    for gap in gaps_minutes:
        clock.advance(minutes=gap)
        seen.append(REPLICAS in sweep(detector, clock, REPLICAS))
    assert seen == held_at


def test_a_conflict_is_reported_with_its_heals_and_since_and_only_for_that_field() -> None:
    detector, clock = FightDetector(), Clock()
    for _ in range(3):
        sweep(detector, clock, REPLICAS)
        clock.advance(minutes=1)
    held = sweep(detector, clock, REPLICAS, IMAGE)
    assert held == {REPLICAS}  # the image drifted once: still healed
    detector.describe("web", REPLICAS, "hpa-controller", "- kind: Deployment\n")
    (conflict,) = detector.conflicts("web")
    assert (conflict.resource, conflict.path) == ("Deployment apps/web", "spec.replicas")
    assert (conflict.manager, conflict.ignore_entry) == ("hpa-controller", "- kind: Deployment\n")
    assert (conflict.heals, conflict.since) == (3, START + timedelta(minutes=3))
    assert detector.conflicts("other-addon") == []


def test_a_conflict_holds_while_it_drifts_and_clears_after_a_quiet_window() -> None:
    detector, clock = FightDetector(), Clock()
    for _ in range(4):
        sweep(detector, clock, REPLICAS)
        clock.advance(minutes=1)
    # not healed any more, so it keeps drifting: the conflict stays
    for _ in range(30):
        assert sweep(detector, clock, REPLICAS) == {REPLICAS}
        clock.advance(minutes=1)
    # an ignore entry was added (or the other manager stopped): the field is quiet
    last_drift = clock() - timedelta(minutes=1)
    for _ in range(9):
        assert sweep(detector, clock) == frozenset()
        clock.advance(minutes=1)
    assert clock() - last_drift == FIGHT_WINDOW
    assert [c.path for c in detector.conflicts("web")] == ["spec.replicas"]  # 9 quiet minutes
    assert sweep(detector, clock, IMAGE) == frozenset()  # 10 quiet minutes: cleared
    assert detector.conflicts("web") == []
    # and it starts from zero: healed three more times before it is a conflict again
    held = []
    for _ in range(4):
        clock.advance(minutes=1)
        held.append(REPLICAS in sweep(detector, clock, REPLICAS))
    assert held == [False, False, False, True]


def test_a_quiet_window_between_two_observations_also_clears() -> None:
    # the sweep observes an add-on only when something of it drifts: a gap means quiet
    detector, clock = FightDetector(), Clock()
    for _ in range(4):
        sweep(detector, clock, REPLICAS)
        clock.advance(minutes=1)
    assert detector.conflicts("web") != []
    clock.advance(minutes=10)
    assert sweep(detector, clock, REPLICAS) == frozenset()
    assert detector.conflicts("web") == []


def test_a_conflict_that_drifts_again_within_the_window_is_still_held() -> None:
    detector, clock = FightDetector(), Clock()
    for _ in range(4):
        sweep(detector, clock, REPLICAS)
        clock.advance(minutes=1)
    clock.advance(minutes=8)  # 9 minutes after its last drift
    assert sweep(detector, clock, REPLICAS) == {REPLICAS}


def test_a_new_revision_starts_afresh() -> None:
    detector, clock = FightDetector(), Clock()
    for _ in range(4):
        sweep(detector, clock, REPLICAS)
        clock.advance(minutes=1)
    assert sweep(detector, clock, REPLICAS) == {REPLICAS}
    assert sweep(detector, clock, REPLICAS, revision=2) == frozenset()
    assert detector.conflicts("web") == []


def test_scopes_are_independent_and_forget_drops_one() -> None:
    detector, clock = FightDetector(), Clock()
    for _ in range(4):
        detector.observe("a", 1, [REPLICAS], clock())
        detector.healed("a", [REPLICAS], clock())
        clock.advance(minutes=1)
    assert detector.observe("b", 1, [REPLICAS], clock()) == frozenset()
    assert detector.observe("a", 1, [REPLICAS], clock()) == {REPLICAS}
    detector.forget("a")
    assert detector.observe("a", 1, [REPLICAS], clock()) == frozenset()


def test_heals_of_fields_that_were_not_observed_are_ignored() -> None:
    detector, clock = FightDetector(), Clock()
    for _ in range(5):
        detector.healed("web", [REPLICAS], clock())
    assert detector.observe("web", 1, [REPLICAS], clock()) == frozenset()


@pytest.mark.parametrize(("heals", "window"), [(0, FIGHT_WINDOW), (3, timedelta(0))])
def test_thresholds_are_checked(heals: int, window: timedelta) -> None:
    with pytest.raises(ValueError, match="at least one heal"):
        FightDetector(heals, window)


# ---------------------------------------------------------------------------- properties

FIELDS = [REPLICAS, IMAGE, (WEB, "metadata.labels.team")]


def reference(events: list[tuple[int, frozenset[int]]], heals: int, window: int) -> list[frozenset[int]]:
    """The rules restated over the whole history: a drifting field is held iff a conflict started
    (a drift seeing >= `heals` heals in the last `window` minutes) with no quiet gap of `window`
    minutes since its last drift. Heals happen on every drift that is not held."""
    out = []
    heal_times: dict[int, list[int]] = {f: [] for f in range(len(FIELDS))}
    drift_times: dict[int, list[int]] = {f: [] for f in range(len(FIELDS))}
    since: dict[int, int | None] = dict.fromkeys(range(len(FIELDS)))
    for now, drifting in events:
        for f in range(len(FIELDS)):
            last = drift_times[f][-1] if drift_times[f] else None
            if last is not None and now - last >= window:  # quiet for the window: forgotten
                heal_times[f], drift_times[f], since[f] = [], [], None
        held = set()
        for f in drifting:
            drift_times[f].append(now)
            recent = [t for t in heal_times[f] if now - t < window]
            if since[f] is None and len(recent) >= heals:
                since[f] = now
            if since[f] is not None:
                held.add(f)
            else:
                heal_times[f].append(now)
        out.append(frozenset(held))
    return out


@settings(max_examples=300, deadline=None)
@given(
    heals=st.integers(1, 4),
    window=st.integers(1, 15),
    steps=st.lists(
        st.tuples(st.integers(0, 12), st.frozensets(st.integers(0, len(FIELDS) - 1))), max_size=40
    ),
)
def test_the_detector_matches_the_rules_restated(
    heals: int, window: int, steps: list[tuple[int, frozenset[int]]]
) -> None:
    detector = FightDetector(heals, timedelta(minutes=window))
    now, events, got = 0, [], []
    for gap, drifting in steps:
        now += gap
        events.append((now, drifting))
        at = START + timedelta(minutes=now)
        keys = {FIELDS[f] for f in drifting}
        held = detector.observe("web", 1, keys, at)
        detector.healed("web", keys - held, at)
        got.append(frozenset(FIELDS.index(k) for k in held))
        assert {(c.resource, c.path) for c in detector.conflicts("web")} >= {
            ("Deployment apps/web", k[1]) for k in held
        }
    assert got == reference(events, heals, window)


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.integers(10, 60), min_size=1, max_size=30))
def test_heals_a_window_apart_are_never_a_fight(gaps: list[int]) -> None:
    detector, clock = FightDetector(heals=1), Clock()
    assert sweep(detector, clock, REPLICAS) == frozenset()
    for gap in gaps:
        clock.advance(minutes=gap)
        assert sweep(detector, clock, REPLICAS) == frozenset()


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.integers(0, 9), min_size=FIGHT_HEALS, max_size=30))
def test_a_field_back_within_minutes_every_time_is_a_fight_after_three_heals(gaps: list[int]) -> None:
    # gaps below 10/3 minutes keep three heals within the window; longer ones may or may not
    detector, clock = FightDetector(), Clock()
    held = [sweep(detector, clock, REPLICAS)]
    for gap in gaps:
        clock.advance(minutes=gap)
        held.append(sweep(detector, clock, REPLICAS))
    first = next((i for i, h in enumerate(held) if h), None)
    if all(g <= 3 for g in gaps[:FIGHT_HEALS]):
        assert first == FIGHT_HEALS
    if first is not None:  # once held, held for as long as it keeps drifting within the window
        assert all(held[first:])


# ---------------------------------------------------------------------------- drifting fields


def test_only_fields_present_live_are_tracked() -> None:
    drift = [
        ResourceDrift(
            "apps/v1",
            "Deployment",
            "apps",
            "web",
            "modified",
            (
                FieldChange("spec.replicas", 2, 5, "modified", "/spec/replicas"),
                FieldChange("metadata.labels.team", None, "x", "added", "/metadata/labels/team"),
                FieldChange("spec.paused", True, None, "removed", None),
            ),
        ),
        ResourceDrift("v1", "ConfigMap", "apps", "web-config", "missing"),
    ]
    assert drifting_fields(drift) == {REPLICAS, (WEB, "metadata.labels.team")}


# ---------------------------------------------------------------------------- conflict details


def managed(manager: str, fields: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


def k(**key: Any) -> str:
    return "k:" + json.dumps(key, separators=(",", ":"))


CONTAINER_FIELDS: dict[str, Any] = {
    k(name="web"): {".": {}, "f:name": {}, "f:image": {}},
    k(name="sidecar"): {".": {}, "f:name": {}},
}
LIVE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "apps",
        "labels": {"app.kubernetes.io/name": "web", "team": "x"},
        "managedFields": [
            managed(
                "helm",
                {
                    "f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}},
                    "f:spec": {"f:template": {"f:spec": {"f:containers": CONTAINER_FIELDS}}},
                },
            ),
            managed("hpa-controller", {"f:spec": {"f:replicas": {}}}, subresource="scale"),
            managed("kubectl-label", {"f:metadata": {"f:labels": {"f:team": {}}}}),
            managed("kubectl-edit", {"f:spec": {"f:replicas": {}}}),
        ],
    },
    "spec": {
        "replicas": 5,
        "template": {
            "spec": {
                "containers": [{"name": "sidecar", "image": "proxy:1"}, {"name": "web", "image": "web:2"}],
                "volumes": [{"configMap": {"name": "a"}}, {"emptyDir": {}}],
            }
        },
    },
}


@pytest.mark.parametrize(
    ("path", "manager"),
    [
        (("spec", "replicas"), "hpa-controller, kubectl-edit"),
        (("metadata", "labels", "team"), "kubectl-label"),
        # helm (ours) owns the image: something changed it during our own apply
        (("spec", "template", "spec", "containers", 1, "image"), UNKNOWN_MANAGER),
    ],
)
def test_the_other_manager_is_read_from_managed_fields(path: tuple[str | int, ...], manager: str) -> None:
    assert other_managers(LIVE, path, {"helm", "moorage"}) == manager


@pytest.mark.parametrize(
    ("path", "expression"),
    [
        (("spec", "replicas"), ".spec.replicas"),
        (("metadata", "labels", "app.kubernetes.io/name"), '.metadata.labels."app.kubernetes.io/name"'),
        (
            ("spec", "template", "spec", "containers", 1, "image"),
            '.spec.template.spec.containers[] | select(.name == "web") | .image',
        ),
        (
            ("spec", "template", "spec", "containers", 0),
            '.spec.template.spec.containers[] | select(.name == "sidecar")',
        ),
        (("spec", "template", "spec", "volumes", 1, "emptyDir"), ".spec.template.spec.volumes[1].emptyDir"),
    ],
)
def test_jq_expressions_name_list_items_and_designate_exactly_the_field(
    path: tuple[str | int, ...], expression: str
) -> None:
    assert jq_path_expression(LIVE, path) == expression
    assert jq_paths(expression, LIVE) == [path]


def test_a_jq_expression_still_finds_a_named_item_after_reordering() -> None:
    path = ("spec", "template", "spec", "containers", 1, "image")
    expression = jq_path_expression(LIVE, path)
    reordered = json.loads(json.dumps(LIVE))
    reordered["spec"]["template"]["spec"]["containers"].reverse()
    assert jq_paths(expression, reordered) == [("spec", "template", "spec", "containers", 0, "image")]


def test_the_ignore_entry_is_a_pastable_snippet_in_the_definitions_format() -> None:
    text = ignore_entry(WEB, LIVE, ("spec", "replicas"))
    assert text == (
        "- group: apps\n"
        "  kind: Deployment\n"
        "  name: web\n"
        "  namespace: apps\n"
        "  json_pointers:\n"
        "  - /spec/replicas\n"
    )


@pytest.mark.parametrize(
    ("key", "path"),
    [
        (WEB, ("spec", "replicas")),
        (WEB, ("metadata", "labels", "team")),
        (WEB, ("metadata", "labels", "app.kubernetes.io/name")),
        (WEB, ("spec", "template", "spec", "containers", 1, "image")),
        (WEB, ("spec", "template", "spec", "volumes", 0, "configMap", "name")),
        (ResourceKey("", "ConfigMap", "apps", "web"), ("data", "a~b/c")),
        (
            ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "viewer"),
            ("metadata", "labels", "team"),
        ),
    ],
)
def test_the_ignore_entry_validates_and_designates_exactly_the_field(
    key: ResourceKey, path: tuple[str | int, ...]
) -> None:
    live = json.loads(json.dumps(LIVE))
    live["data"] = {"a~b/c": "1"}
    (raw,) = yaml.safe_load(ignore_entry(key, live, path))
    rule = IgnoreRule.from_spec(IgnoreDifference.model_validate(raw))
    assert rule.matches(key)
    assert not rule.matches(key._replace(name="other"))
    found = ignored_paths([rule], live)
    assert [tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in f) for f in found] == [path]
    if key.namespace:
        assert raw["namespace"] == key.namespace
    else:
        assert "namespace" not in raw
    assert ("group" in raw) == bool(key.group)


def test_with_the_ignore_entry_the_field_is_no_longer_drift() -> None:
    desired: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"replicas": 2},
    }
    live = {
        **desired,
        "metadata": {**desired["metadata"], "managedFields": LIVE["metadata"]["managedFields"]},
    }
    live["spec"] = {"replicas": 5}
    drift = diff_resource(desired, live)
    assert drift is not None
    assert drift.paths == ("spec.replicas",)
    (raw,) = yaml.safe_load(ignore_entry(WEB, live, ("spec", "replicas")))
    assert diff_resource(desired, live, [IgnoreRule.from_spec(IgnoreDifference.model_validate(raw))]) is None
