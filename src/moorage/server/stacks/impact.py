"""What a Stack Builder edit changes in the cluster, from the definition before and after it: the Helm
releases created, changed (chart version, namespace, values, settings) or removed, and the objects of
manifest entries created, changed or removed. The objects a chart renders need helm, which the server
does not run: a preview asks the cluster's agent for them (stacks/render.py, agent/render.py) and adds
them to these releases.

Pure; answers names, kinds and what changed, never a value."""

import json
from typing import Any

from moorage.spec.content import ResolvedAddon, ResolvedCluster, ResolvedManifest

ObjectKey = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def _digest(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _release_changes(old: ResolvedAddon, new: ResolvedAddon) -> list[str]:
    what = []
    if (old.chart_name, old.chart_version) != (new.chart_name, new.chart_version):
        what.append(f"chart {old.chart_name} {old.chart_version} → {new.chart_name} {new.chart_version}")
    if old.namespace != new.namespace:
        what.append(f"namespace {old.namespace} → {new.namespace}")
    if (old.registry_url, old.registry_name) != (new.registry_url, new.registry_name):
        what.append("registry")
    if _digest(old.values.reveal()) != _digest(new.values.reveal()):
        what.append("values")
    if old.settings != new.settings:
        what.append("settings")
    return what


def releases(before: ResolvedCluster | None, after: ResolvedCluster) -> list[dict[str, Any]]:
    old = before.addons if before is not None else {}
    out: list[dict[str, Any]] = []
    for name in sorted(set(old) | set(after.addons)):
        a, b = old.get(name), after.addons.get(name)
        if a is None and b is not None:
            out.append({"release": name, "namespace": b.namespace, "change": "created",
                        "chart": f"{b.chart_name} {b.chart_version}"})  # fmt: skip
        elif b is None and a is not None:
            out.append({"release": name, "namespace": a.namespace, "change": "removed",
                        "chart": f"{a.chart_name} {a.chart_version}"})  # fmt: skip
        elif a is not None and b is not None:
            what = _release_changes(a, b)
            if what:
                out.append({"release": name, "namespace": b.namespace, "change": "changed",
                            "chart": f"{b.chart_name} {b.chart_version}", "what": what})  # fmt: skip
    return out


def _objects(manifests: dict[str, ResolvedManifest]) -> dict[ObjectKey, tuple[str, str]]:
    found: dict[ObjectKey, tuple[str, str]] = {}
    for entry in manifests.values():
        objects = entry.objects.reveal()
        for obj in objects if isinstance(objects, list) else []:
            if not isinstance(obj, dict):
                continue
            found_meta = obj.get("metadata")
            meta: dict[str, Any] = found_meta if isinstance(found_meta, dict) else {}
            key = (
                str(obj.get("apiVersion") or ""),
                str(obj.get("kind") or ""),
                str(meta.get("namespace") or entry.namespace or ""),
                str(meta.get("name") or ""),
            )
            found[key] = (entry.name, _digest(obj))
    return found


def objects(before: ResolvedCluster | None, after: ResolvedCluster) -> list[dict[str, Any]]:
    old = _objects(before.manifests) if before is not None else {}
    new = _objects(after.manifests)
    out: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        change = "created" if a is None else "removed" if b is None else "changed" if a[1] != b[1] else ""
        if change:
            api_version, kind, namespace, name = key
            entry = (b or a or ("", ""))[0]
            out.append({"kind": kind, "api_version": api_version, "namespace": namespace or None,
                        "name": name, "manifest": entry, "change": change})  # fmt: skip
    return out


def impact(before: ResolvedCluster | None, after: ResolvedCluster | None) -> dict[str, list[dict[str, Any]]]:
    if after is None:
        return {"releases": [], "objects": []}
    return {"releases": releases(before, after), "objects": objects(before, after)}
