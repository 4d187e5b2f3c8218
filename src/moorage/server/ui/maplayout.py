"""The resource map of an add-on laid out as a left-to-right tree (pure: no I/O, no HTML).

Each object of the release is a root; what it owns (Deployment → ReplicaSet → Pod, Service →
EndpointSlice) follows to its right. Every leaf gets its own row and a parent sits level with the
middle of its children, so edges never cross and an add-on of 60 resources stays legible: the map
grows downwards, one row per leaf, and scrolls."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NODE_WIDTH = 230
NODE_HEIGHT = 46
COLUMN_GAP = 60
ROW_GAP = 12
MAX_DEPTH = 4


@dataclass(frozen=True)
class Node:
    key: str  # unique in the map: "Kind/namespace/name"
    kind: str
    name: str
    namespace: str
    api_version: str
    health: str
    reason: str
    x: int
    y: int
    depth: int


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass
class Layout:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = 0
    height: int = 0


def key_of(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind') or '?'}/{obj.get('namespace') or ''}/{obj.get('name') or '?'}"


def layout(resources: Sequence[Mapping[str, Any]]) -> Layout:
    """Positions for every node of the agent's resource map (`agent/browse.py::resource_map`)."""
    out = Layout()
    row = 0
    seen: set[str] = set()

    def place(obj: Mapping[str, Any], depth: int) -> int | None:
        """Lay out `obj` and its subtree; returns the node's y, or None when already placed."""
        nonlocal row
        key = key_of(obj)
        kind, name = str(obj.get("kind") or "?"), str(obj.get("name") or "?")
        namespace = str(obj.get("namespace") or "")
        if key in seen:
            return None
        seen.add(key)
        x = depth * (NODE_WIDTH + COLUMN_GAP)
        children = obj.get("children") if depth < MAX_DEPTH else None
        child_ys: list[tuple[str, int]] = []
        for child in children if isinstance(children, list) else []:
            if isinstance(child, Mapping):
                y = place(child, depth + 1)
                if y is not None:
                    child_ys.append((key_of(child), y))
        if child_ys:
            y = (child_ys[0][1] + child_ys[-1][1]) // 2
        else:
            y = row * (NODE_HEIGHT + ROW_GAP)
            row += 1
        out.nodes.append(
            Node(
                key=key,
                kind=kind,
                name=name,
                namespace=namespace,
                api_version=str(obj.get("api_version") or ""),
                health=str(obj.get("health") or "Unknown"),
                reason=str(obj.get("health_reason") or ""),
                x=x,
                y=y,
                depth=depth,
            )
        )
        for child_key, child_y in child_ys:
            out.edges.append(
                Edge(
                    key,
                    child_key,
                    x + NODE_WIDTH,
                    y + NODE_HEIGHT // 2,
                    x + NODE_WIDTH + COLUMN_GAP,
                    child_y + NODE_HEIGHT // 2,
                )
            )
        return y

    for resource in resources:
        if isinstance(resource, Mapping):
            place(resource, 0)
    depth = max((n.depth for n in out.nodes), default=0)
    out.width = (depth + 1) * NODE_WIDTH + depth * COLUMN_GAP
    out.height = max(row, 1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    out.nodes.sort(key=lambda n: (n.depth, n.y))
    return out
