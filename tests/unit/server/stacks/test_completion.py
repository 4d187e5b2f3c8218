"""The values editor's completion tree: a chart's values.schema.json (refs, allOf/anyOf, enums,
additionalProperties, items) and its default values folded into keys with type, description,
enum and default; bounded for huge charts."""

import json
from pathlib import Path

from fastapi.testclient import TestClient

from moorage.server.app import create_app
from moorage.server.db import SessionFactory
from moorage.server.settings import ServerSettings
from moorage.server.stacks import completion
from moorage.server.stacks.completion import completion_tree
from tests.unit.server.conftest import ADMIN_TOKEN, Clock, FakeBus
from tests.unit.server.stacks.test_stacks_api import chart_url

CHARTS = Path(__file__).resolve().parents[3] / "charts"
__all__ = ["chart_url"]  # a fixture


def test_the_strict_charts_schema_gives_its_keys_with_types_and_enums() -> None:
    schema = json.loads((CHARTS / "strict" / "values.schema.json").read_text())
    tree = completion_tree(schema, {"replicas": 1, "logLevel": "info"})
    assert tree["type"] == "object"
    assert tree["keys"] == {
        "replicas": {"type": "integer", "default": 1},
        "logLevel": {"type": "string", "enum": ["debug", "info", "warn", "error"], "default": "info"},
    }


def test_without_a_schema_the_default_values_give_the_keys_and_their_types() -> None:
    defaults = {
        "replicaCount": 2,
        "image": {"repository": "registry.example/nginx", "tag": "1.27.0"},
        "debug": False,
        "nodeSelector": {},
        "tolerations": [{"key": "a", "effect": "NoSchedule"}],
        "note": None,
    }
    tree = completion_tree(None, defaults)
    keys = tree["keys"]
    assert list(keys) == ["replicaCount", "image", "debug", "nodeSelector", "tolerations", "note"]
    assert keys["image"] == {
        "type": "object",
        "keys": {
            "repository": {"type": "string", "default": "registry.example/nginx"},
            "tag": {"type": "string", "default": "1.27.0"},
        },
    }
    assert keys["debug"] == {"type": "boolean", "default": False, "enum": [True, False]}
    assert keys["nodeSelector"] == {"type": "object", "keys": {}}
    assert keys["tolerations"]["type"] == "array"
    assert list(keys["tolerations"]["items"]["keys"]) == ["key", "effect"]
    assert keys["note"] == {}  # null: nothing known but the key


def test_refs_combinators_and_additional_properties_are_followed() -> None:
    schema = {
        "$defs": {
            "resources": {
                "type": "object",
                "description": "  Requests and\n limits. ",
                "properties": {"limits": {"type": "object", "additionalProperties": {"type": "string"}}},
            },
            "loop": {"type": "object", "properties": {"next": {"$ref": "#/$defs/loop"}}},
        },
        "type": "object",
        "properties": {
            "resources": {"$ref": "#/$defs/resources"},
            "service": {
                "allOf": [
                    {"properties": {"type": {"enum": ["ClusterIP", "NodePort"]}}},
                    {"properties": {"port": {"type": ["integer", "string"], "title": "Port"}}},
                ]
            },
            "mode": {"anyOf": [{"const": "a"}, {"type": "null"}]},
            "enabled": {"type": "boolean", "default": True},
            "hosts": {
                "type": "array",
                "items": {"type": "object", "properties": {"host": {"type": "string"}}},
            },
            "loop": {"$ref": "#/$defs/loop"},
            "elsewhere": {"$ref": "other.json#/x"},
        },
    }
    keys = completion_tree(schema, {"service": {"type": "ClusterIP", "extra": 1}})["keys"]
    assert keys["resources"]["description"] == "Requests and limits."
    assert keys["resources"]["keys"]["limits"]["any_key"] == {"type": "string"}
    assert keys["service"]["keys"]["type"] == {
        "enum": ["ClusterIP", "NodePort"],
        "default": "ClusterIP",
        "type": "string",
    }
    assert keys["service"]["keys"]["port"] == {"type": "integer|string", "description": "Port"}
    assert keys["service"]["keys"]["extra"] == {"type": "integer", "default": 1}  # from the defaults
    assert keys["mode"] == {"enum": ["a"], "type": "null"}
    assert keys["enabled"] == {"type": "boolean", "enum": [True, False], "default": True}
    assert keys["hosts"]["items"]["keys"] == {"host": {"type": "string"}}
    assert keys["loop"] == {"type": "object", "keys": {"next": {}}}  # a cycle stops
    assert keys["elsewhere"] == {}  # other documents are not fetched


def test_a_huge_chart_gives_a_bounded_tree_with_short_texts() -> None:
    many = {f"key{i}": {"type": "string", "description": "x" * 1000} for i in range(completion.MAX_NODES * 2)}
    tree = completion_tree({"type": "object", "properties": many}, None)
    assert len(tree["keys"]) == completion.MAX_NODES - 1  # (the root is a node too)
    described = [k for k in tree["keys"].values() if "description" in k]
    assert described
    assert all(len(k["description"]) == completion.MAX_TEXT for k in described)
    deep: dict[str, object] = {}
    node = deep
    for _ in range(50):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    depth, at = 0, completion_tree(None, deep)
    while "keys" in at and "a" in at["keys"]:
        depth, at = depth + 1, at["keys"]["a"]
    assert depth <= completion.MAX_DEPTH + 1


def test_the_catalog_answers_the_tree_with_the_charts_version(
    tmp_path: Path, db_url: str, factory: SessionFactory, chart_url: str
) -> None:
    registries = tmp_path / "registries.yaml"
    registries.write_text(f"registries:\n  - name: repo\n    url: {chart_url}\n")
    settings = ServerSettings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        bootstrap_token=ADMIN_TOKEN,
        nats_url="nats://127.0.0.1:4222",
        egress_allow="loopback",
        global_registries_file=registries,
    )
    app = create_app(settings, factory, FakeBus(), clock=Clock(), expire_jobs=False)
    client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    r = client.get("/api/v1/charts/repo/strict/1.0.0")
    assert r.status_code == 200, r.text
    assert r.json()["completion"]["keys"]["logLevel"]["enum"] == ["debug", "info", "warn", "error"]
