"""Resource browsing beyond list/get: the events of an object, and the resource map of an add-on
(its release's objects with what they own: Deployment → ReplicaSet → Pod, Service → EndpointSlice)."""

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import yaml

from moorage.engine import objects
from moorage.engine.context import ADDON_LABEL, CLUSTER_LABEL
from moorage.engine.health import assess
from moorage.helm.storage import Release, latest, read_releases
from moorage.kube.client import KubeClient
from moorage.spec.content import MASK

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


# --------------------------------------------------------------------------- Helm releases


def _mask_manifest(manifest: str) -> str:
    """A release manifest with the values of every Secret's data and stringData masked."""
    docs = []
    for obj in objects.parse_manifest(manifest):
        if obj.get("kind") == "Secret":
            obj = dict(obj)
            for key in ("data", "stringData"):
                if isinstance(obj.get(key), dict):
                    obj[key] = dict.fromkeys(obj[key], MASK)
        docs.append(yaml.safe_dump(obj, sort_keys=False))
    return "---\n".join(docs)


async def release_history(kube: KubeClient, release: str, namespace: str) -> list[dict[str, Any]]:
    stored, _ = await read_releases(kube, namespace, release)
    rows = sorted((r for r in stored if r.namespace == namespace), key=lambda r: r.revision, reverse=True)
    return [
        {
            "revision": r.revision,
            "chart": r.chart_name,
            "chart_version": r.chart_version,
            "app_version": r.app_version,
            "status": r.status,
            "updated": r.last_deployed.isoformat() if r.last_deployed else None,
            "description": r.description,
        }
        for r in rows
    ]


async def release_revision(
    kube: KubeClient, release: str, namespace: str, revision: int | None
) -> Release | None:
    stored, _ = await read_releases(kube, namespace, release)
    mine = [r for r in stored if r.namespace == namespace]
    if revision is None:
        return latest(mine).get((namespace, release))
    return next((r for r in mine if r.revision == revision), None)


def manifest_of(release: Release) -> str:
    return _mask_manifest(release.manifest)


async def helm_releases(kube: KubeClient) -> list[dict[str, Any]]:
    """Every Helm release in the cluster (its newest revision), with the add-on that manages it."""
    stored, _ = await read_releases(kube)
    return [
        {
            "name": r.name,
            "namespace": r.namespace,
            "chart": r.chart_name,
            "chart_version": r.chart_version,
            "revision": r.revision,
            "status": r.status,
            "updated": r.last_deployed.isoformat() if r.last_deployed else None,
            "cluster_label": r.labels.get(CLUSTER_LABEL),
            "addon_label": r.labels.get(ADDON_LABEL),
        }
        for r in sorted(latest(stored).values(), key=lambda r: (r.namespace, r.name))
    ]


async def addon_events(kube: KubeClient, release: Release) -> list[dict[str, Any]]:
    """Events of the release's objects (one LIST of events per namespace, matched by kind/name)."""
    desired = await objects.with_namespaces(kube, objects.parse_manifest(release.manifest), release.namespace)
    wanted = {(o.get("kind"), o["metadata"].get("name")) for o in desired}
    namespaces = sorted({o["metadata"].get("namespace") or "" for o in desired} | {release.namespace})
    rows: list[dict[str, Any]] = []
    for ns in namespaces:
        for e in await kube.list("v1", "Event", ns or None):
            involved = e.get("involvedObject") or {}
            owner_match = (involved.get("kind"), involved.get("name")) in wanted
            child_match = involved.get("kind") in ("Pod", "ReplicaSet") and any(
                str(involved.get("name", "")).startswith(f"{n}-")
                for k, n in wanted
                if k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
            )
            if not (owner_match or child_match):
                continue
            rows.append(
                {
                    "object": f"{involved.get('kind')}/{involved.get('name')}",
                    "namespace": involved.get("namespace") or "",
                    "type": e.get("type"),
                    "reason": e.get("reason"),
                    "message": e.get("message"),
                    "count": e.get("count") or 1,
                    "last_seen": e.get("lastTimestamp") or e.get("eventTime"),
                }
            )
    return sorted(rows, key=lambda r: str(r["last_seen"] or ""))[-500:]
