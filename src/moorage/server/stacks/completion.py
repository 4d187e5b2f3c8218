"""What the values editor proposes at each YAML path: a chart's values.schema.json and its default
values folded into one small tree that the page's script walks by the path at the cursor.

A node is a plain JSON mapping:

    {"type": "object" | "array" | "string" | "integer|null" …,   (the schema's, else the default's)
     "description": "…",            (the schema's description or title, shortened)
     "enum": [...],                 (enum, const, or true/false for a boolean: values to propose)
     "default": scalar,             (the schema's default, else the chart's default value)
     "keys": {name: node},          (the mapping's keys: the schema's properties, then the defaults')
     "any_key": node,               (additionalProperties: what any other key holds)
     "items": node}                 (an array's items)

Local `$ref`s are followed, `allOf` / `anyOf` / `oneOf` are merged (every key any branch allows is
proposed), and the tree is bounded (depth, nodes, text) so a huge chart cannot make the answer huge.
Pure: no I/O, nothing kept."""

from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 12
MAX_NODES = 3000
MAX_TEXT = 240
MAX_ENUM = 50
_SCALARS = (str, int, float, bool)


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0

    def take(self) -> bool:
        self.nodes += 1
        return self.nodes <= MAX_NODES


def completion_tree(schema: Any, defaults: Any) -> dict[str, Any]:
    """The completion tree of a chart: its `schema` (values.schema.json as data, or None) and its
    `defaults` (values.yaml as data, or None)."""
    budget = _Budget()
    root = schema if isinstance(schema, Mapping) else {}
    node = _from_schema(root, root, 0, budget, ())
    _add_defaults(node, defaults, 0, budget)
    if "type" not in node:
        node["type"] = "object"
    return node


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _resolve(ref: Any, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A local JSON pointer (`#/definitions/x`, `#/$defs/x`); other documents are not fetched."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    if isinstance(schema.get("properties"), Mapping):
        return ["object"]
    if isinstance(schema.get("items"), Mapping):
        return ["array"]
    return []


def _join(a: str | None, b: list[str]) -> str | None:
    names = [*(a.split("|") if a else []), *b]
    unique = list(dict.fromkeys(names))
    return "|".join(unique) if unique else None


def _from_schema(
    schema: Mapping[str, Any], root: Mapping[str, Any], depth: int, budget: _Budget, seen: tuple[str, ...]
) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if not budget.take() or depth > MAX_DEPTH:
        return node
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        target = _resolve(ref, root)
        if target is not None:
            _merge(node, _from_schema(target, root, depth, budget, (*seen, ref)))
    for key in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(key)
        for branch in branches if isinstance(branches, list) else []:
            if isinstance(branch, Mapping):
                _merge(node, _from_schema(branch, root, depth, budget, seen))
    kind = _join(node.get("type"), _types(schema))
    if kind:
        node["type"] = kind
    description = _text(schema.get("description")) or _text(schema.get("title"))
    if description:
        node["description"] = description
    enum = schema.get("enum")
    if isinstance(enum, list):
        node["enum"] = [v for v in enum if v is None or isinstance(v, _SCALARS)][:MAX_ENUM]
    elif "const" in schema and (schema["const"] is None or isinstance(schema["const"], _SCALARS)):
        node["enum"] = [schema["const"]]
    elif "boolean" in (kind or "").split("|") and "enum" not in node:
        node["enum"] = [True, False]
    default = schema.get("default")
    if "default" in schema and (default is None or isinstance(default, _SCALARS)):
        node["default"] = default
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        keys = node.setdefault("keys", {})
        for name, sub in properties.items():
            if budget.nodes >= MAX_NODES:
                break
            if isinstance(sub, Mapping):
                child = _from_schema(sub, root, depth + 1, budget, seen)
                keys[str(name)] = _merge(keys[str(name)], child) if str(name) in keys else child
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping) and extra:
        node["any_key"] = _from_schema(extra, root, depth + 1, budget, seen)
    items = schema.get("items")
    if isinstance(items, Mapping):
        node["items"] = _from_schema(items, root, depth + 1, budget, seen)
    return node


def _merge(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """`other` folded into `into` (keys of both; the first description, default and enum kept)."""
    for field, value in other.items():
        if field == "type":
            into["type"] = _join(into.get("type"), value.split("|")) or value
        elif field == "keys":
            keys = into.setdefault("keys", {})
            for name, child in value.items():
                keys[name] = _merge(keys[name], child) if name in keys else child
        elif field in ("items", "any_key"):
            into[field] = _merge(into[field], value) if field in into else value
        else:
            into.setdefault(field, value)
    return into


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _add_defaults(node: dict[str, Any], value: Any, depth: int, budget: _Budget) -> None:
    """The chart's default `value` at `node`: its keys added where the schema has none, its type
    where the schema says none, and a scalar as the default shown."""
    if depth > MAX_DEPTH:
        return
    if "type" not in node and value is not None:
        node["type"] = _kind_of(value)
    if isinstance(value, _SCALARS) and "default" not in node:
        node["default"] = value
    if value is True or value is False:
        node.setdefault("enum", [True, False])
    if isinstance(value, Mapping):
        keys = node.setdefault("keys", {})
        for name, sub in value.items():
            name = str(name)
            if name not in keys:
                if not budget.take():
                    return
                keys[name] = {}
            _add_defaults(keys[name], sub, depth + 1, budget)
    elif isinstance(value, list):
        items = node.setdefault("items", {})
        for sub in value[:5]:
            _add_defaults(items, sub, depth + 1, budget)
