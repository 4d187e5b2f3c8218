"""Rendered manifests into objects, and the identity key of an object."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.engine.objects import ObjectKey, key_of, parse_manifest

HELM_MANIFEST = """\
---
# Source: podinfo/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: podinfo
---
# Source: podinfo/templates/hpa.yaml
# (disabled: renders nothing but this comment)
---
# Source: podinfo/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: apps
spec:
  ports:
    - port: 9898
---
# Source: podinfo/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 1
"""


def test_multi_document_manifest_skips_empty_documents() -> None:
    objs = parse_manifest(HELM_MANIFEST)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "podinfo"),
        ("Service", "podinfo"),
        ("Deployment", "podinfo"),
    ]
    assert objs[1]["spec"] == {"ports": [{"port": 9898}]}


@pytest.mark.parametrize("text", ["", "---\n", "---\n---\n", "# only a comment\n", "---\n...\n"])
def test_empty_manifests(text: str) -> None:
    assert parse_manifest(text) == []


def test_list_kinds_are_flattened() -> None:
    text = """\
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
  - not an object
  - {apiVersion: v1, kind: Secret, metadata: {name: b}}
---
apiVersion: v1
kind: ConfigMapList
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d}
"""
    assert [o["metadata"]["name"] for o in parse_manifest(text)] == ["a", "b", "c", "d"]


def test_list_kind_without_items_is_kept_as_an_object() -> None:
    text = "apiVersion: example.com/v1\nkind: PlayList\nmetadata: {name: mix}\nspec: {}\n"
    assert parse_manifest(text) == [
        {"apiVersion": "example.com/v1", "kind": "PlayList", "metadata": {"name": "mix"}, "spec": {}}
    ]


@pytest.mark.parametrize(
    "doc",
    ["- a\n- b\n", "just text\n", "42\n", "null\n", "metadata: {name: no-kind}\n", "kind: ''\n"],
)
def test_documents_that_are_not_objects_are_ignored(doc: str) -> None:
    text = f"{doc}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kept}}\n"
    assert [o["metadata"]["name"] for o in parse_manifest(text)] == ["kept"]


def test_safe_loader_refuses_python_tags() -> None:
    import yaml

    with pytest.raises(yaml.YAMLError):
        parse_manifest("!!python/object/apply:os.system ['true']\n")


@pytest.mark.parametrize(
    ("obj", "default", "key"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "apps"}},
            "",
            ObjectKey("", "ConfigMap", "apps", "cfg"),
        ),
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
            "default",
            ObjectKey("apps", "Deployment", "default", "web"),
        ),
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"}},
            "default",
            ObjectKey("apps", "Deployment", "apps", "web"),
        ),
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ""}},
            "fallback",
            ObjectKey("apps", "Deployment", "fallback", "web"),
        ),
        (
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "w.example.com"},
            },
            "",
            ObjectKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "w.example.com"),
        ),
        (
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "view"},
            },
            "",
            ObjectKey("rbac.authorization.k8s.io", "ClusterRole", "", "view"),
        ),
        ({}, "", ObjectKey("", "", "", "")),
        ({"kind": "Thing", "metadata": None}, "ns", ObjectKey("", "Thing", "ns", "")),
    ],
)
def test_key_of(obj: dict[str, Any], default: str, key: ObjectKey) -> None:
    assert key_of(obj, default) == key


def test_key_ignores_the_version() -> None:
    v1 = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "a"},
    }
    v2 = {**v1, "apiVersion": "autoscaling/v2"}
    assert key_of(v1) == key_of(v2)


def test_object_key_str_and_order() -> None:
    assert str(ObjectKey("apps", "Deployment", "apps", "web")) == "Deployment apps/web"
    assert str(ObjectKey("", "Namespace", "", "apps")) == "Namespace apps"
    keys = [
        ObjectKey("apps", "Deployment", "b", "x"),
        ObjectKey("", "Service", "a", "x"),
        ObjectKey("apps", "Deployment", "a", "x"),
    ]
    assert sorted(keys) == [keys[1], keys[2], keys[0]]


def test_a_parsed_manifest_is_remembered_but_each_caller_gets_its_own_copy() -> None:
    first = parse_manifest(HELM_MANIFEST)
    first[2]["spec"]["replicas"] = 9  # a caller changing what it got
    first.pop(0)
    again = parse_manifest(HELM_MANIFEST)
    assert [o["kind"] for o in again] == ["ServiceAccount", "Service", "Deployment"]
    assert again[2]["spec"] == {"replicas": 1}
    assert again == parse_manifest(HELM_MANIFEST)
    assert again is not parse_manifest(HELM_MANIFEST)


def test_the_parsed_manifests_kept_are_bounded_by_their_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import OrderedDict

    from moorage.engine import objects

    monkeypatch.setattr(objects, "_PARSED_MAX_CHARS", 2 * len(HELM_MANIFEST) + 50)
    monkeypatch.setattr(objects, "_PARSED", OrderedDict())
    monkeypatch.setattr(objects, "_parsed_chars", 0)
    texts = [HELM_MANIFEST + f"# {i}\n" for i in range(5)]
    for text in texts:
        parse_manifest(text)
    assert list(objects._PARSED) == texts[-2:]  # the least recently used went first
    assert objects._parsed_chars == sum(map(len, texts[-2:]))
    assert objects._parsed_chars <= objects._PARSED_MAX_CHARS
