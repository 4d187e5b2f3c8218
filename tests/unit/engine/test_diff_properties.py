"""Property tests: server defaults are never drift, normalize is idempotent, the diff is
deterministic, a changed field is always found, Secret values never leak."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.engine.diff import diff_resource, normalize
from tests.unit.engine.test_diff_fixtures import as_live

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.sampled_from(["a", "b", "image", "port", "value", "app.kubernetes.io/name", "x_y", "replicas"])
scalars = st.one_of(
    st.integers(-5, 10**6),
    st.booleans(),
    st.text("abcxyz-./:09", min_size=1, max_size=8),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)


def named_list(children: st.SearchStrategy[Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    item = st.fixed_dictionaries(
        {"name": st.text("abcdef", min_size=1, max_size=4)}, optional={"v": children}
    )
    return st.lists(item, max_size=4, unique_by=lambda i: i["name"])


values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.dictionaries(keys, children, max_size=4),
        st.lists(children, max_size=3),
        named_list(children),
    ),
    max_leaves=25,
)
metadata = st.fixed_dictionaries(
    {"name": st.text("abc", min_size=1, max_size=5)},
    optional={
        "labels": st.dictionaries(
            st.sampled_from(["team", "app.kubernetes.io/managed-by", "tier"]), st.sampled_from(["Helm", "x"])
        ),
        "annotations": st.dictionaries(
            st.sampled_from(["meta.helm.sh/release-name", "note", "deployment.kubernetes.io/revision"]),
            st.sampled_from(["web", "1"]),
        ),
        "uid": st.just("u-1"),
        "namespace": st.just("apps"),
    },
)
objects = st.fixed_dictionaries(
    {
        "apiVersion": st.just("example.com/v1"),
        "kind": st.just("Widget"),
        "metadata": metadata,
        "spec": st.dictionaries(keys, values, max_size=5),
    },
    optional={"status": st.dictionaries(keys, scalars, max_size=2)},
)


def add_server_defaults(node: Any, data: st.DataObject) -> None:
    """Add keys the API server could default: only new keys, in any map, at any depth."""
    if isinstance(node, dict):
        for value in list(node.values()):
            add_server_defaults(value, data)
        extra = data.draw(st.dictionaries(st.sampled_from(["dflt", "policy", "zz"]), values, max_size=2))
        for key, value in extra.items():
            node.setdefault(f"{key}Default", value)
    elif isinstance(node, list):
        for item in node:
            add_server_defaults(item, data)


@PROFILE
@given(desired=objects, data=st.data())
def test_server_defaults_and_server_metadata_are_never_drift(
    desired: dict[str, Any], data: st.DataObject
) -> None:
    live = as_live(desired, manager=data.draw(st.sampled_from(["helm", "moorage"])))
    add_server_defaults(live["spec"], data)
    live["metadata"]["resourceVersion"] = "99"
    live["metadata"]["generation"] = 4
    live["metadata"]["managedFields"].append(
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "fieldsV1": {}}
    )
    live["status"] = {"observedGeneration": 4}
    assert diff_resource(desired, live) is None


@PROFILE
@given(obj=objects)
def test_normalize_is_idempotent_and_strips_server_fields(obj: dict[str, Any]) -> None:
    once = normalize(obj)
    assert normalize(once) == once
    assert "status" not in once
    meta = once.get("metadata", {})
    assert not {"uid", "namespace", "managedFields"} & set(meta)
    assert meta.get("labels", {}).get("app.kubernetes.io/managed-by") != "Helm"
    assert "meta.helm.sh/release-name" not in meta.get("annotations", {})
    assert meta.get("labels", True)  # never an empty map
    assert meta.get("annotations", True)


def reordered(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: reordered(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [reordered(item) for item in node]
    return node


@PROFILE
@given(desired=objects, other=objects)
def test_diff_is_deterministic_and_independent_of_key_order(
    desired: dict[str, Any], other: dict[str, Any]
) -> None:
    live = as_live(other)
    first = diff_resource(desired, live)
    assert diff_resource(desired, live) == first
    assert diff_resource(reordered(desired), reordered(live)) == first
    if first is not None:
        json.dumps(first.to_dict())  # always serialisable


def scalar_leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in scalar_leaves(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in scalar_leaves(v, (*path, i))]
    return [path]


@PROFILE
@given(desired=objects, data=st.data())
def test_a_changed_desired_field_is_always_found(desired: dict[str, Any], data: st.DataObject) -> None:
    leaves = scalar_leaves(desired["spec"])
    live = as_live(desired)
    if not leaves:
        live["spec"]["added-by-someone"] = 1
        desired["spec"]["added-by-someone"] = 2
    else:
        path = data.draw(st.sampled_from(leaves))
        node = live["spec"]
        for element in path[:-1]:
            node = node[element]
        node[path[-1]] = "changed-out-of-band"  # differs from any generated scalar
    drift = diff_resource(desired, live)
    assert drift is not None
    assert drift.drift_type == "modified"
    assert drift.paths
    assert all(p.startswith("spec") for p in drift.paths)


@PROFILE
@given(
    desired_value=st.text(max_size=20).map(lambda s: "S3CR3T" + s),  # a prefix no structure contains
    live_value=st.text(max_size=20).map(lambda s: "L1V3" + s),
    use_string_data=st.booleans(),
)
def test_secret_values_never_leak(desired_value: str, live_value: str, use_string_data: bool) -> None:
    encoded = base64.b64encode(desired_value.encode()).decode()
    live_encoded = base64.b64encode(live_value.encode()).decode()
    desired: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    desired["stringData" if use_string_data else "data"] = {
        "k": desired_value if use_string_data else encoded
    }
    live = as_live(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": live_encoded}}
    )
    live["data"]["extra"] = live_encoded
    live["metadata"]["managedFields"].append(
        {"manager": "kubectl-edit", "fieldsV1": {"f:data": {"f:extra": {}}}}
    )
    drift = diff_resource(desired, live)
    assert drift is not None  # at least the foreign "extra" key
    rendered = repr(drift) + json.dumps(drift.to_dict(), ensure_ascii=False)
    for secret in (desired_value, live_value, encoded, live_encoded):
        assert secret not in rendered


def test_copy_helper_is_deep() -> None:
    # guards the property tests above: as_live must not alias desired
    desired: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "1"},
    }
    live = as_live(copy.deepcopy(desired))
    live["data"]["a"] = "2"
    assert desired["data"]["a"] == "1"
