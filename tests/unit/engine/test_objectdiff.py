"""The object diff of the Stack Builder's preview (engine/objectdiff.py, pure): a chart rendered with
new values against the release's current manifest gives the objects created, changed (with field
paths) and removed, and never a value."""

import json
from typing import Any

import pytest
import yaml

from moorage.engine.objectdiff import diff, field_paths

CURRENT = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: apps}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps, labels: {app: web}}
spec:
  replicas: 1
  template:
    metadata:
      annotations: {checksum/config: aaa}
    spec:
      containers:
        - name: web
          image: nginx:1.27.0
          env:
            - {name: LOG_LEVEL, value: info}
            - {name: MODE, value: fast}
        - name: sidecar
          image: busybox
          args: ["--a", "--b"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {ports: [{port: 80, targetPort: 80}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: web-reader}
rules: []
"""


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def edited(text: str, *pairs: tuple[str, str]) -> list[dict[str, Any]]:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return objects(text)


@pytest.mark.parametrize(
    ("pairs", "changed"),
    [
        ((("replicas: 1", "replicas: 3"),), {"Deployment": ["spec.replicas"]}),
        (
            (("greeting: hello", "greeting: hi"), ("checksum/config: aaa", "checksum/config: bbb")),
            {
                "ConfigMap": ["data.greeting"],
                "Deployment": ['spec.template.metadata.annotations["checksum/config"]'],
            },
        ),
        (  # named list items are matched by name: an env var's value, an item gone
            (("value: info", "value: debug"), ("            - {name: MODE, value: fast}\n", "")),
            {
                "Deployment": [
                    "spec.template.spec.containers[web].env[LOG_LEVEL].value",
                    "spec.template.spec.containers[web].env[MODE]",
                ]
            },
        ),
        (
            (('["--a", "--b"]', '["--a", "--c", "--d"]'),),
            {
                "Deployment": [
                    "spec.template.spec.containers[sidecar].args[1]",
                    "spec.template.spec.containers[sidecar].args[2]",
                ]
            },
        ),
        (  # a label added: the one label, not the whole map
            (("labels: {app: web}", "labels: {app: web, tier: front}"),),
            {"Deployment": ["metadata.labels.tier"]},
        ),
        ((("port: 80,", "port: 8080,"),), {"Service": ["spec.ports[0].port"]}),
        ((("rules: []", "rules: [{verbs: [get]}]"),), {"ClusterRole": ["rules[0]"]}),
    ],
)
def test_changed_objects_list_the_field_paths_that_differ(
    pairs: tuple[tuple[str, str], ...], changed: dict[str, list[str]]
) -> None:
    out = diff(objects(CURRENT), edited(CURRENT, *pairs)).to_dict()
    assert out["created"] == out["removed"] == []
    assert {c["kind"]: c["paths"] for c in out["changed"]} == changed
    assert out["unchanged"] == 4 - len(changed)


def test_a_new_release_lists_every_object_as_created_with_its_namespace_or_none() -> None:
    out = diff([], objects(CURRENT)).to_dict()
    assert [(c["kind"], c["namespace"], c["name"], c["api_version"]) for c in out["created"]] == [
        ("ClusterRole", None, "web-reader", "rbac.authorization.k8s.io/v1"),
        ("ConfigMap", "apps", "web-config", "v1"),
        ("Deployment", "apps", "web", "apps/v1"),
        ("Service", "apps", "web", "v1"),
    ]
    assert out["changed"] == out["removed"] == []
    assert "paths" not in out["created"][0]


def test_objects_the_new_rendering_drops_are_removed_and_renamed_ones_are_both() -> None:
    new = edited(CURRENT, ("name: web-config", "name: web-settings"))
    new = [o for o in new if o["kind"] != "Service"]
    out = diff(objects(CURRENT), new).to_dict()
    assert [(c["kind"], c["name"]) for c in out["created"]] == [("ConfigMap", "web-settings")]
    assert [(c["kind"], c["name"]) for c in out["removed"]] == [
        ("ConfigMap", "web-config"),
        ("Service", "web"),
    ]


def test_the_same_object_in_another_namespace_is_another_object_and_a_new_api_version_is_not() -> None:
    moved = edited(
        CURRENT, ("name: web, namespace: apps}\nspec: {ports", "name: web, namespace: other}\nspec: {ports")
    )
    out = diff(objects(CURRENT), moved).to_dict()
    assert [(c["kind"], c["namespace"]) for c in out["created"]] == [("Service", "other")]
    assert [(c["kind"], c["namespace"]) for c in out["removed"]] == [("Service", "apps")]
    beta = [{"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}}]
    stable = [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}}]
    out = diff(beta, stable).to_dict()
    assert [(c["api_version"], c["paths"]) for c in out["changed"]] == [("policy/v1", ["apiVersion"])]


def test_a_secret_change_names_its_keys_and_never_a_value() -> None:
    old = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "a"},
           "data": {"password": "b2xkLXBhc3N3b3Jk", "user": "YWRtaW4="}}  # fmt: skip
    new = {**old, "data": {"password": "bmV3LXBhc3N3b3Jk", "user": "YWRtaW4=", "token": "c2VjcmV0LXRva2Vu"},
           "stringData": {"extra": "plain-secret-value"}}  # fmt: skip
    out = diff([old], [new]).to_dict()
    assert out["changed"] == [
        {
            "api_version": "v1",
            "kind": "Secret",
            "namespace": "a",
            "name": "db",
            "paths": ["data.password", "data.token", "stringData"],
        }
    ]
    text = json.dumps(out)
    for value in (
        "b2xkLXBhc3N3b3Jk",
        "bmV3LXBhc3N3b3Jk",
        "c2VjcmV0LXRva2Vu",
        "plain-secret-value",
        "YWRtaW4=",
    ):
        assert value not in text


@pytest.mark.parametrize(
    ("old", "new", "paths"),
    [
        ({"a": 1}, {"a": 1.0}, []),  # Helm stores numbers as float64
        ({"a": None}, {}, []),  # null means "not set"
        ({"a": True}, {"a": 1}, ["a"]),
        ({"a": "1"}, {"a": 1}, ["a"]),
        ({"a": {"b": 1}}, {"a": [1]}, ["a"]),
        ({}, {"odd.key": {"x": 1}}, ['["odd.key"]']),
        ([{"name": "a"}, {"name": "a"}], [{"name": "a"}], ["[1]"]),  # names not unique: by position
        ({"x": 1}, "text", ["(the whole object)"]),
    ],
)
def test_field_paths(old: Any, new: Any, paths: list[str]) -> None:
    assert field_paths(old, new) == (paths, 0)


def test_sizes_are_bounded_and_what_is_left_out_is_counted() -> None:
    old = {"data": {f"k{i:03}": "a" for i in range(120)}}
    new = {"data": {f"k{i:03}": "b" for i in range(120)}}
    paths, more = field_paths(old, new, limit=50)
    assert (len(paths), more, paths[0], paths[-1]) == (50, 70, "data.k000", "data.k049")
    many = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i:03}"}} for i in range(250)]
    out = diff([], many, max_objects=200).to_dict()
    assert (len(out["created"]), out["omitted"]) == (200, 50)
    one = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, **old}]
    two = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, **new}]
    (changed,) = diff(one, two, max_paths=10).to_dict()["changed"]
    assert (len(changed["paths"]), changed["paths_omitted"]) == (10, 110)
