"""What each raw-manifest entry applied, kept in the cluster (one ConfigMap per entry), so that an object
dropped from a manifest, or a whole entry removed from Git, can be pruned with its ownership proven."""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from moorage.engine.objects import ObjectKey
from moorage.kube.client import KubeClient

NAMESPACE = "moorage-system"
LABEL = "moorage.dev/inventory"
OWNER_ANNOTATION = "moorage.dev/owner"  # on every object Moorage applies: "<definition>/manifest/<entry>"


@dataclass(frozen=True)
class Item:
    api_version: str
    key: ObjectKey
    uid: str


def configmap_name(entry: str, cluster: str = "") -> str:
    """One ConfigMap per (definition, entry): several definitions may share a Kubernetes cluster."""
    slug = re.sub(r"[^a-z0-9-]+", "-", entry.lower()).strip("-")[:40]
    key = f"{cluster}/{entry}" if cluster else entry
    return f"inventory-{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def owner_value(entry: str, cluster: str = "") -> str:
    return f"{cluster}/manifest/{entry}" if cluster else f"manifest/{entry}"


def _encode(items: list[Item]) -> str:
    return json.dumps(
        [[i.api_version, i.key.group, i.key.kind, i.key.namespace, i.key.name, i.uid] for i in items],
        separators=(",", ":"),
    )


def _decode(text: str) -> list[Item]:
    items = []
    for api_version, group, kind, namespace, name, uid in json.loads(text):
        items.append(Item(api_version, ObjectKey(group, kind, namespace, name), uid))
    return items


async def ensure_namespace(kube: KubeClient, field_manager: str) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    await kube.apply(namespace, field_manager=field_manager)


async def read(kube: KubeClient, cluster: str) -> dict[str, list[Item]]:
    """Every inventory stored for definition `cluster`, by manifest entry name."""
    found: dict[str, list[Item]] = {}
    for cm in await kube.list("v1", "ConfigMap", NAMESPACE, label_selector=LABEL):
        data = cm.get("data") or {}
        if "entry" in data and "objects" in data and data.get("cluster", "") == cluster:
            found[data["entry"]] = _decode(data["objects"])
    return found


async def write(kube: KubeClient, cluster: str, entry: str, items: list[Item], field_manager: str) -> None:
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(entry, cluster),
            "namespace": NAMESPACE,
            "labels": {LABEL: "true"},
        },
        "data": {"cluster": cluster, "entry": entry, "objects": _encode(items)},
    }
    await kube.apply(cm, field_manager=field_manager, force=True)


async def remove(kube: KubeClient, cluster: str, entry: str) -> None:
    await kube.delete("v1", "ConfigMap", configmap_name(entry, cluster), NAMESPACE)
