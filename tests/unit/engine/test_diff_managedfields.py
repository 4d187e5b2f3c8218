"""FieldsV1 ownership: f:, k:{json}, v:json, i:N and '.' resolved against a live object."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.engine.diff import managers_of, owned_paths
from moorage.engine.diffing.managedfields import ManagerPaths, managed_entries, resolve
from tests.unit.engine.test_diff_fixtures import KUBECTL_EDIT_ENTRY_YAML, container, edited, live_deployment

CONTAINER = ("spec", "template", "spec", "containers", 0)


def edited_live() -> dict[str, Any]:
    live = edited(live_deployment(), KUBECTL_EDIT_ENTRY_YAML)
    live["metadata"]["labels"]["team"] = "payments"
    container(live)["env"].append({"name": "DEBUG", "value": "1"})
    return live


def test_owned_paths_of_kubectl_edit() -> None:
    assert owned_paths(edited_live(), ["kubectl-edit"]) == {
        ("metadata", "labels", "team"),
        (*CONTAINER, "env", 2),
        (*CONTAINER, "env", 2, "name"),
        (*CONTAINER, "env", 2, "value"),
    }


def test_owned_paths_of_helm_resolve_keyed_items_by_content() -> None:
    owned = owned_paths(live_deployment(), {"helm"})
    assert (*CONTAINER,) in owned  # '.' of k:{"name":"web"}
    assert (*CONTAINER, "env", 1, "value") in owned
    assert (*CONTAINER, "ports", 0, "containerPort") in owned  # k:{"containerPort":8080,"protocol":"TCP"}
    assert ("spec", "selector") in owned  # atomic map owned whole
    assert ("spec", "strategy") not in owned  # server default: nobody owns it
    assert not any(path[0] == "status" for path in owned)


def test_fields_that_do_not_exist_in_the_object_are_not_owned() -> None:
    live = edited(live_deployment(), KUBECTL_EDIT_ENTRY_YAML)  # entry written, values reverted since
    assert owned_paths(live, ["kubectl-edit"]) == set()


@pytest.mark.parametrize(
    ("path", "managers"),
    [
        (("metadata", "labels", "team"), {"kubectl-edit"}),
        (("spec", "replicas"), {"helm"}),
        (("spec", "selector", "matchLabels", "app.kubernetes.io/name"), {"helm"}),  # via atomic ancestor
        ((*CONTAINER, "env", 2, "value"), {"kubectl-edit"}),
        (("metadata", "annotations", "deployment.kubernetes.io/revision"), {"kube-controller-manager"}),
        (("status", "replicas"), {"kube-controller-manager"}),
        (("spec", "strategy", "type"), set()),
        ((*CONTAINER, "env"), set()),  # helm owns the items, not the list
    ],
)
def test_managers_of_a_path(path: tuple[str | int, ...], managers: set[str]) -> None:
    assert managers_of(edited_live(), path) == managers


def test_shared_ownership_lists_every_applier() -> None:
    live = live_deployment()
    live["metadata"]["managedFields"].append(
        {"manager": "moorage", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    )
    assert managers_of(live, ("spec", "replicas")) == {"helm", "moorage"}


@pytest.mark.parametrize(
    ("trie", "obj", "expected"),
    [
        ({"f:a": {}}, {"a": 1}, {("a",)}),
        ({"f:a": {".": {}, "f:b": {}}}, {"a": {"b": 1}}, {("a",), ("a", "b")}),
        ({"f:l": {'v:"y"': {}}}, {"l": ["x", "y"]}, {("l", 1)}),
        ({"f:l": {"i:1": {"f:n": {}}}}, {"l": [{"n": 1}, {"n": 2}]}, {("l", 1, "n")}),
        ({"f:l": {"i:5": {}}}, {"l": [1]}, set()),
        (
            {"f:l": {'k:{"port":80,"protocol":"TCP"}': {".": {}}}},
            {"l": [{"port": 80, "protocol": "TCP"}]},
            {("l", 0)},
        ),
        (
            {"f:l": {'k:{"port":80,"protocol":"UDP"}': {".": {}}}},
            {"l": [{"port": 80, "protocol": "TCP"}]},
            set(),
        ),
        ({"f:l": {"k:{not json": {}}}, {"l": [{}]}, set()),
        ({"f:a": {"f:b": {}}}, {"a": "scalar"}, set()),
        ({"x:odd": {}}, {"odd": 1}, set()),
    ],
)
def test_resolve_trie_elements(trie: dict[str, Any], obj: Any, expected: set[tuple[str | int, ...]]) -> None:
    assert resolve(trie, obj) == expected


def test_manager_paths_atomic_and_within() -> None:
    paths = ManagerPaths(frozenset({("a",), ("a", "b"), ("c",), ("l", 0)}))
    assert paths.atomic == {("a", "b"), ("c",), ("l", 0)}
    assert paths.owns(("c", "deep", 1))
    assert not paths.owns(("a", "x"))
    assert paths.owns_whole(("a", "b"))
    assert not paths.owns_whole(("a",))
    assert paths.owns_within(("l",))
    assert not paths.owns_within(("z",))


def test_malformed_managed_fields_are_skipped() -> None:
    live = {
        "metadata": {
            "managedFields": [
                "junk",
                {"manager": "m", "fieldsType": "FieldsV2", "fieldsV1": {"f:a": {}}},
                {"manager": 3, "fieldsV1": {"f:a": {}}},
                {"manager": "ok", "fieldsV1": {"f:a": {}}},
            ]
        },
        "a": 1,
    }
    assert [e.manager for e in managed_entries(live)] == ["ok"]
    assert managed_entries({"metadata": {"managedFields": None}}) == ()
