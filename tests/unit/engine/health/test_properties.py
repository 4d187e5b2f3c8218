"""No object makes a health rule raise: random JSON-like values, and every table fixture with
fields randomly deleted or replaced, through every rule in RULES, the generic rule and assess."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.engine import health
from moorage.engine.health import Health, assess, generic, kstatus
from moorage.engine.health.types import Context
from tests.unit.engine.health import (
    test_argorollouts,
    test_builtin,
    test_certmanager,
    test_externalsecrets,
    test_flux,
    test_gatewayapi,
    test_karpenter,
    test_keda,
    test_kstatus,
    test_monitoring,
    test_operators,
    test_platforms,
)
from tests.unit.engine.health.helpers import NOW, ago

CTX = Context(now=NOW, progress_deadline=timedelta(minutes=10))
#: Every distinct rule function, the generic ones included.
ALL_RULES = list(
    {id(rule): rule for rule in [*health.RULES.values(), generic.assess, kstatus.assess]}.values()
)
FIXTURES: list[dict[str, Any]] = [
    case[1]
    for module in (
        test_argorollouts,
        test_builtin,
        test_certmanager,
        test_externalsecrets,
        test_flux,
        test_gatewayapi,
        test_karpenter,
        test_keda,
        test_kstatus,
        test_monitoring,
        test_operators,
        test_platforms,
    )
    for case in module.CASES
]

KEYS = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "status",
        "conditions",
        "type",
        "status",
        "reason",
        "message",
        "phase",
        "generation",
        "observedGeneration",
        "annotations",
        "lastTransitionTime",
        "creationTimestamp",
        "deletionTimestamp",
        "severity",
        "parents",
        "listeners",
        "bindings",
        "containerStatuses",
        "state",
        "terminated",
        "waiting",
        "exitCode",
        "readyToUse",
        "error",
        "active",
        "lastScheduleTime",
        "lastSuccessfulTime",
        "pauseConditions",
        "health",
        "suspend",
        "paused",
        "replicas",
        "readyReplicas",
        "notAfter",
        "failedNamespaces",
        "validationMessages",
    ]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        ["True", "False", "Unknown", "", ago(5), ago(-5), "1970-01-01T00:00:00Z", "12", "oci", "true"]
    )
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)
GROUP_KINDS = st.sampled_from(sorted(health.RULES))


def _run_all(obj: Any) -> None:
    for rule in ALL_RULES:
        result = rule(obj, CTX)
        assert isinstance(result, Health), rule
    assert isinstance(assess(obj, NOW), Health)


@pytest.mark.parametrize("fixture", range(len(FIXTURES)))
def test_every_fixture_through_every_rule(fixture: int) -> None:
    """Each rule also sees every other kind's fixtures: a rule must not trust the kind."""
    _run_all(copy.deepcopy(FIXTURES[fixture]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gk=GROUP_KINDS, body=st.dictionaries(KEYS, JSON, max_size=6))
def test_random_objects_never_raise(gk: tuple[str, str], body: dict[str, Any]) -> None:
    group, kind = gk
    obj = {**body, "apiVersion": f"{group}/v1" if group else "v1", "kind": kind}
    _run_all(obj)


@settings(max_examples=100, deadline=None)
@given(value=JSON)
def test_anything_through_assess_never_raises(value: Any) -> None:
    assert isinstance(assess(value, NOW), Health)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, child in node.items():
            out.append((*prefix, key))
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            out.append((*prefix, index))
            out.extend(_paths(child, (*prefix, index)))
    return out


def _mutate(obj: dict[str, Any], path: tuple[Any, ...], replace: bool, value: Any) -> None:
    parent: Any = obj
    for step in path[:-1]:
        parent = parent[step]
    if replace:
        parent[path[-1]] = value
    else:
        del parent[path[-1]]


ODD_VALUES: list[Any] = [None, "x", 7, True, [], {}, [None], {"x": None}]


def _own_rule(obj: dict[str, Any]) -> Any:
    return health.RULES.get(health.group_kind(obj), generic.assess)


@pytest.mark.parametrize("fixture", range(len(FIXTURES)))
def test_every_field_deleted_or_odd_never_raises(fixture: int) -> None:
    """Exhaustively: each field of the fixture deleted, or replaced by each odd value, through the
    fixture's own rule and assess (the random test below covers combinations and all rules)."""
    original = FIXTURES[fixture]
    for path in _paths(original):
        for replace, value in [(False, None), *((True, v) for v in ODD_VALUES)]:
            obj = copy.deepcopy(original)
            _mutate(obj, path, replace, value)
            assert isinstance(_own_rule(obj)(obj, CTX), Health), (path, value)
            result = assess(obj, NOW)
            assert "could not assess health" not in result.reason, (path, value, result)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fixtures_with_fields_deleted_or_replaced_never_raise(data: st.DataObject) -> None:
    obj = copy.deepcopy(data.draw(st.sampled_from(FIXTURES)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(obj)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        _mutate(obj, path, data.draw(st.booleans()), data.draw(JSON))
    _run_all(obj)
