"""The resource map layout: children to the right of their parent, no two nodes overlapping, parents
level with their children, and a 60-resource add-on laid out in one column of rows per leaf."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from moorage.server.ui.maplayout import NODE_HEIGHT, NODE_WIDTH, layout


def obj(kind: str, name: str, *children: dict[str, Any], health: str = "Healthy") -> dict[str, Any]:
    return {"kind": kind, "name": name, "namespace": "apps", "health": health, "children": list(children)}


def test_deployment_replicaset_pods_and_service_slices() -> None:
    tree = [
        obj("Deployment", "web", obj("ReplicaSet", "web-1", obj("Pod", "web-1-a"), obj("Pod", "web-1-b"))),
        obj("Service", "web", obj("EndpointSlice", "web-x")),
    ]
    out = layout(tree)
    at = {n.key: n for n in out.nodes}
    deployment, rs = at["Deployment/apps/web"], at["ReplicaSet/apps/web-1"]
    pods = [at["Pod/apps/web-1-a"], at["Pod/apps/web-1-b"]]
    assert deployment.x < rs.x < pods[0].x
    assert rs.y == (pods[0].y + pods[1].y) // 2
    assert at["Service/apps/web"].y > pods[1].y
    assert {(e.parent, e.child) for e in out.edges} == {
        ("Deployment/apps/web", "ReplicaSet/apps/web-1"),
        ("ReplicaSet/apps/web-1", "Pod/apps/web-1-a"),
        ("ReplicaSet/apps/web-1", "Pod/apps/web-1-b"),
        ("Service/apps/web", "EndpointSlice/apps/web-x"),
    }
    assert out.width == 3 * NODE_WIDTH + 2 * 60


def test_sixty_resources_take_one_row_each() -> None:
    tree = [obj("ConfigMap", f"cm-{i}") for i in range(60)]
    out = layout(tree)
    assert len(out.nodes) == 60
    assert len({n.y for n in out.nodes}) == 60
    assert out.height < 60 * (NODE_HEIGHT + 20)


def test_malformed_entries_and_repeats_are_skipped() -> None:
    out = layout([{"kind": "Pod"}, "nonsense", obj("Pod", "a"), obj("Pod", "a")])  # type: ignore[list-item]
    assert [n.key for n in out.nodes] == ["Pod//?", "Pod/apps/a"]


names = st.text("abc", min_size=1, max_size=3)
trees: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.builds(lambda n: obj("Pod", n), names),
    lambda inner: st.builds(lambda n, kids: obj("ReplicaSet", n, *kids), names, st.lists(inner, max_size=4)),
    max_leaves=30,
)


@given(st.lists(trees, max_size=8))
def test_nodes_never_overlap_and_children_sit_right_of_parents(forest: list[dict[str, Any]]) -> None:
    out = layout(forest)
    boxes = [(n.x, n.y) for n in out.nodes]
    assert len(boxes) == len(set(boxes))
    for a in out.nodes:
        for b in out.nodes:
            if a is not b and a.x == b.x:
                assert abs(a.y - b.y) >= NODE_HEIGHT
    at = {n.key: n for n in out.nodes}
    for e in out.edges:
        assert at[e.child].x > at[e.parent].x
    assert all(0 <= n.x <= out.width and 0 <= n.y <= out.height for n in out.nodes)
