"""Resource browsing beyond list/get: the events of an object, and the resource map of an add-on
(its release's objects with what they own: Deployment → ReplicaSet → Pod, Service → EndpointSlice)."""

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from moorage.engine import objects
from moorage.engine.health import assess
from moorage.helm.storage import latest, read_releases
from moorage.kube.client import KubeClient

# kinds whose children the map looks for, and where (all namespaced, listed once per namespace)
_CHILD_KINDS = (("apps/v1", "ReplicaSet"), ("v1", "Pod"), ("discovery.k8s.io/v1", "EndpointSlice"))


async def events(kube: KubeClient, kind: str, name: str, namespace: str | None) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    found = await kube.list("v1", "Event", namespace, field_selector=selector)
    rows = [
        {
            "type": e.get("type"),
            "reason": e.get("reason"),
            "message": e.get("message"),
            "count": e.get("count") or 1,
            "first_seen": e.get("firstTimestamp") or e.get("eventTime"),
            "last_seen": e.get("lastTimestamp") or e.get("eventTime"),
            "source": (e.get("source") or {}).get("component") or e.get("reportingComponent"),
        }
        for e in found
    ]
    return sorted(rows, key=lambda r: str(r["last_seen"] or ""))


def _node(obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    health = assess(obj, now)
    return {
        "api_version": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace") or "",
        "health": str(health.status),
        "health_reason": health.reason,
        "children": [],
    }


async def resource_map(kube: KubeClient, release: str, namespace: str) -> dict[str, Any]:
    stored, _ = await read_releases(kube, namespace, release)
    current = latest(stored).get((namespace, release))
    if current is None:
        return {"release": None, "resources": []}
    desired = await objects.with_namespaces(kube, objects.parse_manifest(current.manifest), namespace)
    live = await objects.fetch_live(kube, desired)
    namespaces = {o["metadata"].get("namespace") for o in desired if o["metadata"].get("namespace")}
    candidates: list[dict[str, Any]] = []
    for ns in sorted(namespaces):
        for api_version, kind in _CHILD_KINDS:
            candidates += await kube.list(api_version, kind, ns)
    owned_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    slices_of: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for child in candidates:
        meta = child.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            owned_by[ref.get("uid", "")].append(child)
        if child.get("kind") == "EndpointSlice":
            service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
            if service:
                slices_of[(meta.get("namespace", ""), service)].append(child)
    now = datetime.now(UTC)

    def tree(obj: dict[str, Any], depth: int = 0) -> dict[str, Any]:
        node = _node(obj, now)
        meta = obj.get("metadata") or {}
        children = [] if depth > 3 else list(owned_by.get(meta.get("uid", ""), []))
        if obj.get("kind") == "Service":
            children += slices_of.get((meta.get("namespace", ""), meta.get("name", "")), [])
        seen = set()
        for child in children:
            uid = (child.get("metadata") or {}).get("uid")
            if uid not in seen:
                seen.add(uid)
                node["children"].append(tree(child, depth + 1))
        return node

    resources = []
    for obj in desired:
        found = live.get(objects.key_of(obj))
        if found is None:
            node = _node(obj, now) | {"health": "Missing", "health_reason": "not found in the cluster"}
            resources.append(node)
        else:
            resources.append(tree(found))
    return {
        "release": f"{namespace}/{release} rev {current.revision} {current.status}",
        "resources": resources,
    }
